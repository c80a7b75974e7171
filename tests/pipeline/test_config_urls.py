"""check-config warns about a stream that is neither a known URL nor an existing file (a mistyped URL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import parse_config


def _warnings(url: str) -> list:
    text = f"cameras:\n  - id: cam1\n    name: A\n    url: {url}\n"
    return parse_config(text, source="c.yaml").warnings(environ={})


def test_mistyped_url_is_a_warning_with_line_and_field() -> None:
    issues = _warnings("htp//admin:s3cret@cam/not a url")
    assert [(i.path, i.line) for i in issues] == [("cameras[0].url", 4)]
    assert "mistyped URL" in issues[0].message and "s3cret" not in issues[0].message


@pytest.mark.parametrize("url", ["rtsp://cam1/stream", "https://cam1/x.m3u8", "${CAM_URL}/x.mp4"])
def test_urls_and_templates_are_not_judged_as_files(url: str) -> None:
    assert not [i for i in _warnings(url) if "mistyped" in i.message]


def test_existing_file_is_fine_and_missing_file_url_warns(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert _warnings(str(clip)) == [] and _warnings(f"file://{clip}") == []
    assert [i.path for i in _warnings(f"file://{tmp_path}/gone.mp4")] == ["cameras[0].url"]


@pytest.mark.parametrize("url", ["rtsp//${CAM_USER}:${CAM_PW}@cam/Streaming/Channels/101",
                                 "rtsp//admin:${CAM_PW}@cam/101", "htp//${CAM_USER}:${CAM_PW}@cam/x"])  # fmt: skip
def test_a_mistyped_scheme_is_judged_even_when_the_url_holds_variables(url: str) -> None:
    """The text before the first ${VAR} is known: 'rtsp//' lacks its ':' (ffmpeg would open 'file:rtsp//...')."""
    environ = {"CAM_USER": "admin", "CAM_PW": "pw-s3cret"}
    text = f"cameras:\n  - id: cam1\n    name: A\n    url: '{url}'\n"
    issues = [i for i in parse_config(text, source="c.yaml").warnings(environ=environ) if "mistyped" in i.message]
    assert [(i.path, i.line) for i in issues] == [("cameras[0].url", 4)], issues
    assert "pw-s3cret" not in issues[0].message and "admin" not in issues[0].message
    assert ("'rtsp'" in issues[0].message) == url.startswith("rtsp") and "write rtsp://" in issues[0].message
