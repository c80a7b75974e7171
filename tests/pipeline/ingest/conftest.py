"""Fixtures for ingest tests: real loopback RTSP cameras serving the real footage."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.testcams import TestCameraServer

CLIP = "short_hamilton_clip"  # 640x360, 10 s: the cheapest sample to decode


@pytest.fixture(scope="module")
def h264_cameras(shared_dir: Path) -> Iterator[TestCameraServer]:
    """RTSP server (H.264) for the short sample clip, per test module (its source stops afterwards)."""
    with TestCameraServer(shared_dir / "data" / "videos", 0, codec="h264", names=[CLIP]) as server:
        yield server


@pytest.fixture(scope="session")
def gst_rtsp_server() -> None:
    """GStreamer's RTSP server is usable (:func:`pipeline.gstcams.gst_rtsp_server_missing`).

    Skips only where it cannot be installed at all (no ``apt-cache`` or no such package); where the package exists
    but is not installed the tests fail, so that CI, which runs ``scripts/install.sh``, never skips them silently.
    """
    from pipeline.gstcams import gst_rtsp_server_missing

    reason = gst_rtsp_server_missing()
    if reason is None:
        return
    apt_cache = shutil.which("apt-cache")
    installable = apt_cache is not None and subprocess.run(
        [apt_cache, "show", "gir1.2-gst-rtsp-server-1.0"], capture_output=True, check=False, timeout=60
    ).returncode == 0  # fmt: skip
    if installable:
        pytest.fail(f"{reason} (the packages are installable here)")
    pytest.skip(f"GStreamer's RTSP server cannot be installed on this machine: {reason}")
