"""`python -m pipeline serve-cameras` (scripts/run.sh's demo cameras) on a port another program holds."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from pipeline.testcams import serve_forever


def test_a_port_in_use_is_named_with_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Exit 1 with the address, the folder and what to do (it said only "cannot serve test cameras: [Errno 98]
    Address already in use", into var/log/cameras.log, where run.sh's user had to guess which address)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=5",
                    "-t", "1", "-pix_fmt", "yuv420p", str(videos / "tiny.mp4")], check=True, timeout=120)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with caplog.at_level(logging.ERROR, logger="pipeline.testcams"):
                assert serve_forever(videos, port=port) == 1
        finally:  # serve_forever installs its own SIGINT/SIGTERM handlers
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert f"cannot serve test cameras on 127.0.0.1:{port} from {videos}" in message
    assert "another program listens there" in message and "--port" in message
