"""`python -m pipeline check-config` as a real subprocess: exit code and line-numbered output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
cameras:
  - id: cam-1
    name: Cam 1
    url: rtsp://admin:${CLI_TEST_CAM_PASSWORD}@10.0.0.3/stream1
"""


def check_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "CLI_TEST_CAM_PASSWORD"} | env
    return subprocess.run([sys.executable, "-m", "pipeline", "check-config", str(path)], capture_output=True,
                          text=True, cwd=REPO, env=environment, timeout=60)  # fmt: skip


def test_repository_cameras_yaml_is_valid() -> None:
    result = check_config(REPO / "cameras.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK (3 cameras)" in result.stdout


def test_good_file_warns_about_unset_secret(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(GOOD)
    result = check_config(path)
    assert result.returncode == 0 and "CLI_TEST_CAM_PASSWORD is referenced but not set" in result.stderr
    assert check_config(path, CLI_TEST_CAM_PASSWORD="x").stderr == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "    analysis_fps: 90\n", ":5: cameras[0].analysis_fps: Input should be less than or equal to 30"),
        (GOOD + "    location: {lat: 200, lon: 100}\n", ":5: cameras[0].location.lat: Input should be less than or equal to 90"),
        (GOOD + "    colour: red\n", ":5: cameras[0].colour: unknown key"),
        (GOOD + "  - {id: cam-1, name: Again, url: 'rtsp://h/x'}\n", ":5: cameras[1].id: duplicate camera id 'cam-1'"),
        (GOOD.replace("rtsp://admin", "ftp://admin"), ":4: cameras[0].url: unsupported URL scheme"),
        (GOOD + "  - id: [\n", ":6: <root>: invalid YAML"),
    ],
)
def test_broken_file_exits_1_with_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(text)
    result = check_config(path)
    assert result.returncode == 1
    assert f"{path}{expected}" in result.stderr, result.stderr
    assert "s3cret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("s3cret", ":4: cameras[0].url: warning: password written in clear"),
        ("Adm!n@2024#x", ":4: cameras[0].url: warning: the URL holds an '@' after a '#'"),
        ("Adm%21n%402024%23x", ":4: cameras[0].url: warning: password written in clear"),
    ],
)
def test_literal_password_is_accepted_with_a_warning_never_echoed(tmp_path: Path, password: str, expected: str) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(GOOD.replace("${CLI_TEST_CAM_PASSWORD}", password))
    result = check_config(path)
    assert result.returncode == 0 and "OK (1 cameras)" in result.stdout
    assert f"{path}{expected}" in result.stderr, result.stderr
    for part in (password, "s3cret", "2024", "Adm"):
        assert part not in result.stderr + result.stdout


def test_variable_holding_any_character_needs_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(GOOD)
    assert check_config(path, CLI_TEST_CAM_PASSWORD="Adm!n@2024#x/:% ก").stderr == ""
    result = check_config(path, CLI_TEST_CAM_PASSWORD="Adm%21n%402024")
    assert "CLI_TEST_CAM_PASSWORD looks percent-encoded" in result.stderr and "Adm" not in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = check_config(tmp_path / "nope.yaml")
    assert result.returncode == 1 and "cannot read file" in result.stderr


@pytest.mark.parametrize("argv", [["serve-cameras", "--port", "99999"], ["run", "--port", "-1"],
                                  ["run", "--port", "http"]])
def test_a_bad_port_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port:" in err and "Traceback" not in err


@pytest.mark.parametrize("when", ["nan", "inf", "-inf", "-5", "1e300"])
def test_export_times_out_of_range_are_refused(when: str) -> None:
    from pipeline.recording.export import ExportError, parse_time

    with pytest.raises(ExportError, match="epoch seconds must lie between 1970 and 9999"):
        parse_time(when)
    assert parse_time("1700000000.5") == 1700000000.5 and parse_time("2024-11-20T10:00:00Z") == 1732096800.0


def test_run_refuses_a_gpu_that_no_runtime_reaches_before_starting_anything(tmp_path: Path) -> None:
    """`engine.device: cuda` on a machine where neither ONNX Runtime nor torch reaches a GPU: one line, exit 2,
    before Redis or any child process (the engine used to fail in its child and restart)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() or Path("/proc/driver/nvidia/version").exists():
        pytest.skip("this machine has a GPU runtime")
    path = tmp_path / "cams.yaml"
    path.write_text(GOOD + "engine:\n  device: cuda\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_REDIS")} | {
        "CLI_TEST_CAM_PASSWORD": "x", "CCTV_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing there: never reached
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(path), "--no-api"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "error: engine.device cuda" in result.stderr and "pip install .[gpu]" in result.stderr
    assert "Traceback" not in result.stderr and "Redis" not in result.stderr


def test_run_stops_with_one_line_when_redis_refuses_the_password(tmp_path: Path, own_redis: RedisServer) -> None:
    """A wrong Redis password stops `pipeline run` before any child starts: one line naming the cause, exit 2, no
    traceback and no password (it used to pass as 'Redis unreachable' and start spooling)."""
    path = tmp_path / "cams.yaml"
    path.write_text(GOOD)
    wrong = f"wrong-{own_redis.password}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_REDIS")} | {
        "CLI_TEST_CAM_PASSWORD": "x", "CCTV_REDIS_URL": f"redis://:{wrong}@127.0.0.1:{own_redis.port}/0"}
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(path), "--no-api"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "error: " in result.stderr and "refused the service's credentials" in result.stderr
    assert "Traceback" not in result.stderr and wrong not in result.stderr + result.stdout


def test_a_second_redis_gets_its_own_log(tmp_path) -> None:
    """``redis-setup`` with ``CCTV_REDIS_DATA_DIR`` elsewhere: its log lies beside that data, not in the project
    Redis's ``var/log/redis.log`` (before, every server set up here wrote that one file)."""
    from pipeline.cli import redis_log_file
    from pipeline.settings import PROJECT_ROOT

    assert redis_log_file(PROJECT_ROOT / "var" / "redis") == PROJECT_ROOT / "var" / "log" / "redis.log"
    assert redis_log_file(tmp_path / "redis2") == tmp_path / "redis2" / "redis.log"


@pytest.fixture()
def cli_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI's settings pointed at the test Redis (the settings cache cleared before and after)."""
    from pipeline.settings import get_settings

    monkeypatch.setenv("CCTV_REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield redis_url
    get_settings.cache_clear()


def _fake_cut(cuts: list[tuple]) -> Callable[..., object]:
    """Stands in for ``export_clip``: records the call and writes an empty clip and manifest."""
    from pipeline.recording.export import ExportResult

    def cut(client: object, camera_id: str, start: float, end: float, requester: str, out_dir: Path | None = None,
            **_: object) -> ExportResult:
        assert out_dir is not None
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "c.mp4").write_bytes(b"")
        (out_dir / "c.json").write_text("{}")
        cuts.append((camera_id, start, end, requester))
        return ExportResult(out_dir / "c.mp4", out_dir / "c.json", "0" * 64, 0, 1.0)

    return cut


def test_export_clip_writes_an_audit_record_like_the_api(cli_redis: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`export-clip --requester X` leaves an ``export`` record in the API's audit trail (it left none)."""
    import json

    import redis

    from pipeline.cli import main

    cuts: list[tuple] = []
    monkeypatch.setattr("pipeline.recording.export.export_clip", _fake_cut(cuts))
    argv = ["export-clip", "walkway-01", "2026-12-01T03:00:00Z", "1796094060", "--requester", "Desk 3",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    assert cuts == [("walkway-01", 1796094000.0, 1796094060.0, "Desk 3")]
    records = redis.Redis.from_url(cli_redis).xrange("audit")
    assert len(records) == 1
    fields = {k.decode(): v.decode() for k, v in records[0][1].items()}
    assert (fields["user"], fields["action"], fields["ip"]) == ("Desk 3", "export", "cli")
    params = json.loads(fields["params"])
    assert params["camera_id"] == "walkway-01" and (params["start"], params["end"]) == (1796094000.0, 1796094060.0)
    assert params["via"] == "cli" and params["os_user"] and params["host"]


def test_export_clip_cuts_nothing_when_the_audit_record_cannot_be_written(cli_redis: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    from pipeline.cli import main

    def refuse(*_: object, **__: object) -> None:
        raise redis.ConnectionError("Redis went away")

    cuts: list[tuple] = []
    monkeypatch.setattr("pipeline.recording.export.export_clip", _fake_cut(cuts))
    monkeypatch.setattr("pipeline.store.audit.append_audit", refuse)
    argv = ["export-clip", "walkway-01", "1796094000", "1796094060", "--requester", "Desk 3",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    assert cuts == [] and "cannot write the audit record" in capsys.readouterr().err


@pytest.mark.parametrize("role", ["all", "api"])
def test_run_refuses_an_api_port_in_use_before_starting_anything(tmp_path: Path, role: str) -> None:
    """The API's port already taken (README's fixed 8000, another program there): one line naming the address and
    `--port`, exit 2, before Redis or any child (the API child used to crash-loop on uvicorn's bind error while the
    rest of the service ran without a control room)."""
    import socket

    path = tmp_path / "cams.yaml"
    path.write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_REDIS")} | {
        "CLI_TEST_CAM_PASSWORD": "x", "CCTV_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing there: never reached
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--role", role, "--config", str(path),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"error: cannot serve the API on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr and "Redis" not in result.stderr


def test_api_address_problem_names_a_foreign_address_and_passes_a_free_port() -> None:
    """An address this machine does not have names --host; a free port is no problem."""
    import socket

    from pipeline.cli import api_address_problem

    problem = api_address_problem("192.0.2.1", 8000)  # TEST-NET-1: never a local address
    assert problem is not None and "192.0.2.1:8000" in problem and "--host" in problem
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert api_address_problem("127.0.0.1", free) is None


def test_backup_in_a_plain_shell_uses_the_projects_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`backup` / `restore` without the credentials loaded take the project's Redis from its secrets file (saying
    so), not redis://127.0.0.1:6379/0: a backup of the machine's Redis would have looked like a good one."""
    import pipeline.store.connection as connection
    from pipeline.cli import _admin_client
    from pipeline.settings import get_settings

    secrets_file = tmp_path / "redis.env"
    secrets_file.write_text("CCTV_REDIS_URL=redis://cctv-workers:w@127.0.0.1:6390/0\n"
                            "CCTV_REDIS_ADMIN_URL=redis://default:adm@127.0.0.1:6390/0\n")
    for name in ("CCTV_REDIS_URL", "CCTV_API_REDIS_URL", "CCTV_REDIS_ADMIN_URL", "CCTV_REDIS_SENTINELS"):
        monkeypatch.setenv(name, "")  # set then removed: monkeypatch also removes what the command loads
        monkeypatch.delenv(name)
    monkeypatch.setenv("CCTV_REDIS_SECRETS_FILE", str(secrets_file))
    urls: list[str] = []
    monkeypatch.setattr(connection, "redis_client", lambda url, **_: urls.append(url))  # connects nowhere
    get_settings.cache_clear()
    try:
        _admin_client()
    finally:
        get_settings.cache_clear()
    assert urls == ["redis://default:adm@127.0.0.1:6390/0"]
    assert f"using the project's Redis of {secrets_file}" in capsys.readouterr().err
