"""How a capture hands its URL to ffmpeg (never on the command line when it holds a secret) and how it reads the
way a session ended (refused login, refused transport), without a camera."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.config import Camera, IngestConfig
from pipeline.ingest.capture import AUTH_FAILED_MESSAGE, CameraCapture, CameraState
from pipeline.ingest.health import health_key, read_camera_health
from pipeline.secrets import clear_registered_secrets, expand_url

PASSWORD = "Adm!n@2024#x/:% ก'"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    clear_registered_secrets()
    yield
    clear_registered_secrets()


def capture_for(url: str) -> CameraCapture:
    camera = Camera(id="cam", name="Cam", url=url)
    return CameraCapture(camera, IngestConfig(connect_timeout_s=7), CameraState("cam", url), threading.Event(), url)


def test_url_with_a_secret_goes_through_a_pipe_not_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PW", PASSWORD)
    capture = capture_for("rtsp://admin:${CAM_PW}@10.0.0.3:554/Streaming/Channels/101")
    opened = expand_url(capture.url)
    args, script = capture.input_args(opened, 9)
    assert args == ["-f", "concat", "-safe", "0", "-protocol_whitelist", args[5], "-i", "pipe:9"]
    assert script is not None and "rtsp" in args[5] and "tcp" in args[5] and "udp" in args[5]
    assert script.decode().splitlines() == [
        "ffconcat version 1.0", f"file '{opened}'", "option rtsp_transport tcp", "option timeout 7000000"]
    command = " ".join(capture.build_command(args, 5, None))
    assert "Adm" not in command and "%21" not in command and "ก" not in command
    capture.transport = "udp"
    assert b"option rtsp_transport udp" in (capture.input_args(opened, 9)[1] or b"")


def test_url_without_secret_is_passed_as_before() -> None:
    capture = capture_for("rtsp://10.0.0.3/stream1")
    assert capture.secrets == []
    assert capture.input_args("rtsp://10.0.0.3/stream1", None) == (
        ["-rtsp_transport", "tcp", "-timeout", "7000000", "-i", "rtsp://10.0.0.3/stream1"], None)
    with pytest.raises(ValueError, match="control characters"):
        capture.input_args("rtsp://10.0.0.3/a\nfile '/etc/passwd'", 9)


def test_ffmpeg_reads_the_script_with_quotes_and_spaces_in_the_path(tmp_path: Path) -> None:
    """The ffconcat quoting holds for a path with a quote and spaces: ffmpeg opens the right file from the pipe."""
    clip = tmp_path / "it's a clip.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5",
                    "-t", "1", "-c:v", "ffv1", str(clip)], check=True, timeout=60)  # fmt: skip
    capture = capture_for(str(clip))
    read_fd, write_fd = os.pipe()
    args, script = capture.input_args(str(clip), read_fd)
    assert script is not None
    os.write(write_fd, script)
    os.close(write_fd)
    try:
        result = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", *args, "-f", "null", "-"], pass_fds=(read_fd,),
                                capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    finally:
        os.close(read_fd)
    assert result.returncode == 0, result.stderr[-500:]
    assert "Video: ffv1" in result.stderr


def test_refused_login_is_reported_clearly_and_never_echoes_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PW", PASSWORD)
    capture = capture_for("rtsp://admin:${CAM_PW}@10.0.0.3:554/Streaming/Channels/101")
    tail = ["[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized",
            f"[concat @ 0x2] Impossible to open '{expand_url(capture.url)}'",
            "pipe:5: Server returned 401 Unauthorized (authorization failed)"]  # fmt: skip
    message = capture.ended_with(tail, 1)
    assert capture.auth_failed and message == (
        f"{AUTH_FAILED_MESSAGE} (rtsp://admin:***@10.0.0.3:554/Streaming/Channels/101)")
    capture._fail(message)
    assert capture.state.last_error == message


def test_percent_encoded_variable_gets_a_hint_on_401(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PW", "Adm%21n%402024")
    capture = capture_for("rtsp://admin:${CAM_PW}@10.0.0.3/s")
    message = capture.ended_with(["Server returned 401 Unauthorized (authorization failed)"], 1)
    assert "CAM_PW looks percent-encoded" in message and "Adm" not in message


def test_refused_transport_switches_between_tcp_and_udp() -> None:
    capture = capture_for("rtsp://10.0.0.3/s")
    tail = ["[rtsp @ 0x1] method SETUP failed: 461 Unsupported transport", "rtsp://10.0.0.3/s: Protocol not supported"]
    assert capture.ended_with(tail, 1).startswith("461 Unsupported transport: the camera refused RTSP over TCP")
    assert capture.transport == "udp" and not capture.auth_failed
    capture.ended_with(tail, 1)
    assert capture.transport == "tcp"
    assert capture.ended_with(["Connection refused"], 1) == "stream ended: Connection refused"


def test_health_read_back_is_redacted_even_if_an_old_worker_leaked(redis_url: str) -> None:
    """A hash written before the fix (the issue's '***@2024#x@...') is cleaned on the way to the API."""
    client = redis.Redis.from_url(redis_url)
    leaked = "stream ended: rtsp://***@2024#x@127.0.0.1:8654/Streaming/Channels/101: Invalid data"
    client.hset(health_key("old"), mapping={"status": "offline", "last_error": leaked, "updated_at": "0"})
    client.sadd("cctv:health:cameras", "old")
    health = read_camera_health(client, "old")[0]
    assert "2024" not in health["last_error"] and "127.0.0.1:8654/Streaming" in health["last_error"]
    client.close()
