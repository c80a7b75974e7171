"""cameras.yaml validation: every broken file is reported with the offending key path and its line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline import config as config_module
from pipeline.config import ConfigError, load_config, parse_config

GOOD = """\
version: 1
ingest:
  stall_timeout_s: 5
cameras:
  - id: cam-1
    name: Sukhumvit 21
    url: rtsp://admin:${CAM1_PASSWORD}@10.0.0.3/stream1
    location: {lat: 13.7377, lon: 100.5606}
    analysis_fps: 5
  - id: cam-2
    name: Silom
    url: rtsp://10.0.0.4/main
    sub_stream: rtsp://10.0.0.4/sub
"""


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="cams.yaml")
    return [str(issue) for issue in err.value.issues]


def test_good_file_parses() -> None:
    config = parse_config(GOOD)
    assert [c.id for c in config.cameras] == ["cam-1", "cam-2"]
    assert config.camera("cam-2").analysis_url == "rtsp://10.0.0.4/sub"
    assert config.ingest.stall_timeout_s == 5 and config.ingest.cameras_per_worker == 8


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (GOOD.replace("    analysis_fps: 5", "    analysis_fps: 90"), "line 9: cameras[0].analysis_fps: Input should be less than or equal to 30"),
        (GOOD.replace("lat: 13.7377", "lat: 200"), "line 8: cameras[0].location.lat: Input should be less than or equal to 90"),
        (GOOD.replace("    analysis_fps: 5", "    analysis_fsp: 5"), "line 9: cameras[0].analysis_fsp: unknown key"),
        (GOOD.replace("id: cam-2", "id: cam-1"), "line 10: cameras[1].id: duplicate camera id 'cam-1'"),
        (GOOD.replace("rtsp://10.0.0.4/main", "ftp://10.0.0.4/main"), "line 12: cameras[1].url: unsupported URL scheme 'ftp'"),
        (GOOD.replace("  stall_timeout_s: 5", "  stall_timeout_s: 0"), "line 3: ingest.stall_timeout_s: Input should be greater than or equal to 1"),
    ],
)
def test_each_error_names_key_and_line(broken: str, expected: str) -> None:
    issues = issues_of(broken)
    assert any(issue.startswith(expected) for issue in issues), issues


def test_clear_text_password_is_a_warning_with_its_line_never_echoed() -> None:
    config = parse_config(GOOD.replace("${CAM1_PASSWORD}", "hunter2"))  # percent-encoded, it works: not an error
    warnings = [str(w) for w in config.warnings({})]
    assert any(w.startswith("line 7: cameras[0].url: password written in clear") for w in warnings), warnings
    assert "hunter2" not in " ".join(warnings)


def test_userinfo_parsed_differently_is_warned_and_a_bad_port_never_echoes_the_password() -> None:
    config = parse_config(GOOD.replace("${CAM1_PASSWORD}", "Adm!n@2024#x"))  # the issue's password, typed in
    warnings = [str(w) for w in config.warnings({})]
    assert any("line 7: cameras[0].url: the URL holds an '@' after a '#'" in w for w in warnings), warnings
    issues = issues_of(GOOD.replace("${CAM1_PASSWORD}", "pa#ss"))  # the parser takes "pa" for a port
    assert any(i.startswith("line 7: cameras[0].url: bad port in URL") for i in issues), issues
    assert "pa#ss" not in " ".join(issues + warnings) and "2024" not in " ".join(warnings)


def test_warnings_judge_the_environment() -> None:
    config = parse_config(GOOD)
    assert [str(w) for w in config.warnings({})] == [
        "line 7: cameras[0].url: environment variable CAM1_PASSWORD is referenced but not set"]
    assert config.warnings({"CAM1_PASSWORD": "Adm!n@2024#x/:% ก"}) == []
    assert "looks percent-encoded" in str(config.warnings({"CAM1_PASSWORD": "Adm%21n"})[0])


def test_invalid_yaml_reports_its_line() -> None:
    issues = issues_of(GOOD.replace("    name: Silom", "    name: [Silom"))
    assert len(issues) == 1 and "invalid YAML" in issues[0]
    assert issues[0].startswith("line 12:")


def test_alias_bomb_is_refused_quickly_with_its_line() -> None:
    """A file of a few hundred bytes whose nested anchors name a billion values (the "billion laughs")."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]
    text = "version: 1\nbomb:\n" + "".join(f"  {line}\n" for line in levels) + "cameras: *a8\n"
    assert len(text) < 1000
    issues = issues_of(text)
    assert len(issues) == 1 and "aliases expand it to more than 100000 values" in issues[0], issues
    assert issues[0].startswith("line ")


def test_alias_loop_and_non_scalar_keys_are_issues_not_crashes() -> None:
    assert issues_of("version: 1\ncameras: &a\n  - *a\n") == [
        "line 2: <root>: an alias refers to a node that contains it (a loop)"]
    issues = issues_of(GOOD.replace("    analysis_fps: 5", "    ? [a, b]\n    : c"))
    assert issues == ["line 9: cameras[0]: keys must be plain scalars, not a list or a mapping"]
    assert issues_of("{[1, 2]: x}: 3\n") == ["line 1: <root>: keys must be plain scalars, not a list or a mapping"]


def test_anchors_and_merge_keys_still_work() -> None:
    text = GOOD.replace("location: {lat", "location: &loc {lat").replace(
        "    sub_stream: rtsp://10.0.0.4/sub", "    sub_stream: rtsp://10.0.0.4/sub\n    location: {<<: *loc, lat: 13.8}")
    config = parse_config(text)
    first, second = (c.location for c in config.cameras)
    assert (second.lat, second.lon) == (13.8, first.lon)


@pytest.mark.parametrize(("line", "expected"), [
    ("    url: !env rtsp://admin:Sup3rS3cret@10.0.0.9/s", "line 12: <root>: invalid YAML: could not determine a "
                                                          "constructor for the tag '!env'"),
    ("    url: !!binary Sup3rS3cretAAAAAAAAAAAAAAAAAAAAAAAAAA=", "line 12: <root>: invalid YAML: failed to decode base64"),
    ("    url: !!python/object/apply:os.system ['echo Sup3rS3cret']", "line 12: <root>: invalid YAML: could not "
                                                                        "determine a constructor"),
    ("    analysis_fps: " + "9" * 5000, "line 12: <root>: a value cannot be read: Exceeds the limit"),
    ("    name: Silom\x07Sup3rS3cret", "line 11: <root>: invalid YAML: character #x0007 is not allowed"),
])
def test_values_yaml_cannot_build_name_the_line_and_never_echo_the_file(line: str, expected: str) -> None:
    text = GOOD.replace("    url: rtsp://10.0.0.4/main", line) if "url:" in line or "fps" in line else \
        GOOD.replace("    name: Silom", line)
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="cams.yaml")
    issues = [str(issue) for issue in err.value.issues]
    assert len(issues) == 1 and issues[0].startswith(expected), issues
    assert "Sup3rS3cret" not in str(err.value) and "999999" not in str(err.value)


def test_an_id_yaml_reads_as_a_number_or_boolean_says_to_quote_it() -> None:
    for value, shown in (("12345", "12345"), ("no", "False"), ("1.5", "1.5")):
        issues = issues_of(GOOD.replace("id: cam-2", f"id: {value}"))
        assert any(i.startswith("line 10: cameras[1].id: Input should be a valid string") and f"(got {shown})" in i
                   and "write it in quotes" in i for i in issues), issues


def test_yaml_nested_too_deeply_is_an_issue_not_a_crash() -> None:
    assert issues_of("a: " + "[" * 3000 + "]" * 3000 + "\n") == ["line ?: <root>: the YAML is nested too deeply"]


@pytest.mark.parametrize(("line", "expected"), [
    ("    recording: {retention_days: yes}", "line 14: cameras[1].recording.retention_days: a number is expected, "
                                            "not a yes/no value (got True)"),
    ("    analysis_fps: true", "line 14: cameras[1].analysis_fps: a number is expected, not a yes/no value"),
    ("    location: {lat: no, lon: 100.5}", "line 14: cameras[1].location.lat: a number is expected"),
    ("    name: !!binary U3VwM3JTM2NyZXQ=", "line 11: cameras[1].name: a !!binary value is not text (got 11 bytes)"),
])
def test_a_yes_no_for_a_number_or_binary_for_text_is_refused(line: str, expected: str) -> None:
    """``retention_days: yes`` must not silently mean one day of recordings."""
    text = (GOOD.replace("    name: Silom", line) if "binary" in line else GOOD + line + "\n")
    issues = issues_of(text)
    assert any(issue.startswith(expected) for issue in issues), issues
    assert "Sup3rS3cret" not in " ".join(issues)


@pytest.mark.parametrize(("url", "expected"), [
    ("rtsp:/admin:Sup3rS3cret@10.0.0.4/main", "'rtsp:' is not followed by '//'"),
    ("concat:/etc/passwd|/etc/hosts", "unsupported URL scheme 'concat'"),
    ("pipe:0", "unsupported URL scheme 'pipe'"),
    ("subfile,,start,0,end,0,,:/etc/passwd", "unsupported URL scheme 'subfile'"),
    ('"rtsp://admin:Sup3rS3cret@10.0.0.4/main\\nx"', "the URL holds a control character"),
])
def test_a_url_ffmpeg_would_take_for_another_protocol_is_refused_without_its_password(url: str,
                                                                                       expected: str) -> None:
    issues = issues_of(GOOD.replace("rtsp://10.0.0.4/main", url))
    assert any(issue.startswith(f"line 12: cameras[1].url: {expected}") for issue in issues), issues
    assert "Sup3rS3cret" not in " ".join(issues)


def test_local_paths_still_work() -> None:
    config = parse_config(GOOD.replace("rtsp://10.0.0.4/main", "./clips/rtsp:1.mp4").replace(
        "rtsp://10.0.0.4/sub", "/srv/replays/cam 2.mp4"))
    assert config.camera("cam-2").url == "./clips/rtsp:1.mp4"


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    limit = getattr(config_module, "MAX_CONFIG_BYTES", 2 * 1024 * 1024)
    path = tmp_path / "cams.yaml"
    path.write_text(GOOD + "# padding\n" * (limit // 10))
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert time.monotonic() - started < 2
    assert [str(i) for i in err.value.issues] == [
        f"line ?: <root>: the file is larger than {limit // 1024} KiB (a configuration is a few hundred "
        "KiB at most)"]


def test_a_dense_file_stops_at_the_value_limit_while_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "MAX_YAML_VALUES", 1000)
    zones = ", ".join(["{name: z, points: [[0, 0], [1, 0], [1, 1]]}"] * 200)
    issues = issues_of(GOOD + f"    zones: [{zones}]\n")
    assert issues == ["line 14: <root>: the file holds more than 1000 values"]


def test_a_file_not_in_utf8_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_bytes(GOOD.replace("Silom", "Sil\xf4m").encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value.issues[0]).startswith("line 11: <root>: not UTF-8 text"), err.value.issues
    assert f"{path}:11: <root>: not UTF-8 text" in str(err.value)
