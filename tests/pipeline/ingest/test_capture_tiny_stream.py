"""A camera that sends a 2x2 stream (misconfigured encoder, a placeholder stream) must be reported as such, not as
"no video after connecting". Real ffmpeg, a real loopback RTSP camera serving a real 2x2 H.264 clip."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from pipeline.config import parse_config
from pipeline.ingest.capture import CameraCapture, CameraState
from pipeline.ingest.framebus import FrameBus
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for


@pytest.mark.timeout(180)
def test_a_2x2_stream_is_reported_as_too_small(tmp_path: Path) -> None:
    """The error names the resolution, that it is too small, and the (redacted) stream URL."""
    videos = tmp_path / "videos"
    videos.mkdir()
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=2x2:rate=25",
                    "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(videos / "tiny.mp4")],
                   check=True, timeout=120)  # fmt: skip
    with TestCameraServer(videos, 0, names=["tiny"], cache_dir=tmp_path / "cache", sub_streams=False) as cams:
        config = parse_config("ingest: {stall_timeout_s: 5, connect_timeout_s: 10, backoff_initial_s: 0.5,"
                              " backoff_max_s: 1}\ncameras:\n"
                              f"  - {{id: cam, name: C, url: '{cams.url('tiny')}', analysis_fps: 2, decode: all,"
                              " recording: {enabled: false}}\n")  # fmt: skip
        camera = config.cameras[0]
        state = CameraState(camera.id, camera.url)
        with FrameBus([camera.id], queue_size=4, max_width=320) as bus:
            capture = CameraCapture(camera, config.ingest, state, threading.Event(), camera.url, bus=bus)
            thread = threading.Thread(target=capture.run, name="capture-tiny", daemon=True)
            thread.start()
            try:
                wait_for(lambda: state.reconnects >= 1, 120, "the first attempt to end")
                error = state.last_error
            finally:
                capture.stop_event.set()
                thread.join(30)
    assert not thread.is_alive()
    assert "2x2" in error and "too small" in error, error
    assert cams.url("tiny") in error, error
    assert state.published == 0
