"""`python -m pipeline check-config` as a real subprocess: exit code and line-numbered output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        (GOOD.replace("${CLI_TEST_CAM_PASSWORD}", "s3cret"), ":4: cameras[0].url: password written in clear"),
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


def test_missing_file(tmp_path: Path) -> None:
    result = check_config(tmp_path / "nope.yaml")
    assert result.returncode == 1 and "cannot read file" in result.stderr
