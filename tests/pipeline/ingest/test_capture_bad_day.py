"""A capture on a bad day: failures before ffmpeg even starts (recordings volume gone, no ffmpeg to start) must be
reported and retried without leaking a file descriptor per attempt; a camera whose RTP clock jumps ahead must not
flood the frame bus with copies of one picture. Real ffmpeg, real loopback RTSP cameras, real Redis."""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path

import pytest
import redis

from pipeline import testcams
from pipeline.config import parse_config
from pipeline.ingest.capture import CameraCapture, CameraState
from pipeline.ingest.framebus import FrameBus
from pipeline.recording.recorder import SegmentFinalizer
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"
PASSWORD = "pw-Fd77-never-logged"


def open_fds() -> int:
    """File descriptors this (test) process holds now."""
    return len(os.listdir("/proc/self/fd"))


def run_until_attempts(capture: CameraCapture, attempts: int, timeout_s: float) -> None:
    """Run ``capture`` in a thread until it has retried ``attempts`` times, then stop it and wait for it."""
    thread = threading.Thread(target=capture.run, name="capture-under-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: capture.state.reconnects >= attempts, timeout_s, f"{attempts} reconnect attempts")
    finally:
        capture.stop_event.set()
        thread.join(30)
    assert not thread.is_alive(), "the capture thread did not stop"


@pytest.mark.timeout(120)
def test_a_recordings_folder_that_cannot_be_made_is_reported_and_leaks_no_descriptor(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The recordings volume is gone (its mount point replaced by a file): every attempt fails before ffmpeg starts,
    the error reaches the health, and the pipes made for that ffmpeg are closed again (one leaked fd set per retry
    would end the whole worker with EMFILE after a night of retries)."""
    monkeypatch.setenv("CAM_FD_PASSWORD", PASSWORD)
    blocker = tmp_path / "recordings"
    blocker.write_text("not a folder")  # mkdir of anything below it fails, even for root
    recordings = blocker / "cams"
    config = parse_config("ingest: {backoff_initial_s: 0.1, backoff_max_s: 1}\ncameras:\n"
                          "  - {id: cam, name: C, url: 'rtsp://admin:${CAM_FD_PASSWORD}@127.0.0.1:9/main',"
                          " analysis_fps: 1}\n")  # fmt: skip
    camera = config.cameras[0]
    client = redis.Redis.from_url(redis_url)
    state = CameraState(camera.id, camera.url)
    capture = CameraCapture(camera, config.ingest, state, threading.Event(), camera.url,
                            finalizer=SegmentFinalizer(client, recordings, camera.id), recordings_dir=recordings)
    with pytest.raises(NotADirectoryError):
        capture._session()  # noqa: SLF001 - warm up (imports, lazily opened files) before counting
    before = open_fds()
    run_until_attempts(capture, 6, 60)
    assert open_fds() - before <= 1, f"{open_fds() - before} file descriptors leaked over {state.reconnects} attempts"
    assert "Not a directory" in state.last_error and PASSWORD not in state.last_error
    assert state.status == "stopped"
    client.close()


@pytest.mark.timeout(120)
def test_an_ffmpeg_that_cannot_be_started_is_reported_and_leaks_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No ffmpeg to start (a broken install, or fork refused under memory pressure): reported, retried, no leak."""
    config = parse_config("ingest: {backoff_initial_s: 0.1, backoff_max_s: 1}\ncameras:\n"
                          "  - {id: cam, name: C, url: 'rtsp://127.0.0.1:9/main', analysis_fps: 1,"
                          " recording: {enabled: false}}\n")  # fmt: skip
    camera = config.cameras[0]
    state = CameraState(camera.id, camera.url)
    capture = CameraCapture(camera, config.ingest, state, threading.Event(), camera.url)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(FileNotFoundError):
        capture._session()  # noqa: SLF001 - warm up before counting
    before = open_fds()
    run_until_attempts(capture, 6, 60)
    assert open_fds() - before <= 1, f"{open_fds() - before} file descriptors leaked over {state.reconnects} attempts"
    assert "ffmpeg" in state.last_error and state.reconnects >= 6


JUMP_S = 600  # the camera's RTP clock jumps ten minutes ahead (NTP sync, a clock set by hand, a lying camera)
JUMP_AFTER_S = 3.0


def jump_rtp_clock(monkeypatch: pytest.MonkeyPatch, jump_s: int) -> None:
    """Make the test cameras' RTP timestamps jump ``jump_s`` (ahead, or back when negative) :data:`JUMP_AFTER_S`
    into each session."""
    original = testcams._Viewer.offer
    started: dict[int, float] = {}

    def offer(self: testcams._Viewer, packet: bytes, key: bool) -> None:
        first = started.setdefault(id(self), time.monotonic())
        if time.monotonic() - first > JUMP_AFTER_S and len(packet) >= 12:
            stamp = (struct.unpack_from(">I", packet, 4)[0] + jump_s * 90_000) % 2**32
            packet = packet[:4] + struct.pack(">I", stamp) + packet[8:]
        original(self, packet, key)

    monkeypatch.setattr(testcams._Viewer, "offer", offer)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("jump_s", [JUMP_S, -JUMP_S], ids=["ahead", "back"])
def test_a_camera_whose_clock_jumps_neither_floods_the_bus_with_copies_nor_stalls(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch, jump_s: int,
) -> None:  # fmt: skip
    """ffmpeg's ``fps`` filter fills a timestamp gap with copies of the last picture: a ten-minute jump ahead would
    put ~1200 copies of one frame on the bus at once (CPU, drops that hide real frames, detections repeated); a
    jump back would starve it of frames until the stall watchdog reconnects. The analysis rate must stay about
    ``analysis_fps`` of wall-clock time across the jump, and the video must go on without a reconnection."""
    jump_rtp_clock(monkeypatch, jump_s)
    with TestCameraServer(shared_dir / "data" / "videos", 0, codec="h264", names=[CLIP], sub_streams=False) as cams:
        config = parse_config("ingest: {stall_timeout_s: 15, connect_timeout_s: 10, max_width: 320}\ncameras:\n"
                              f"  - {{id: cam, name: C, url: '{cams.url(CLIP)}', analysis_fps: 2, decode: all,"
                              " recording: {enabled: false}}\n")  # fmt: skip
        camera = config.cameras[0]
        state = CameraState(camera.id, camera.url)
        with FrameBus([camera.id], queue_size=4, max_width=320) as bus:
            capture = CameraCapture(camera, config.ingest, state, threading.Event(), camera.url, bus=bus)
            thread = threading.Thread(target=capture.run, name="capture-jump", daemon=True)
            thread.start()
            try:
                wait_for(lambda: state.published > 0, 60, "first frame")
                first = time.monotonic()
                time.sleep(JUMP_AFTER_S + 6)  # the jump happens, then frames go on for a few seconds
                published, elapsed = state.published, time.monotonic() - first
                reconnects = state.reconnects
            finally:
                capture.stop_event.set()
                thread.join(30)
        assert not thread.is_alive()
        # 2 fps over ~9 s is ~18 frames; generous for a loaded host, far below the ~1200 copies of the gap
        assert published <= 2 * elapsed * 2 + 10, f"{published} frames in {elapsed:.0f} s at analysis_fps 2"
        assert published >= 8, f"the video stopped after the jump ({published} frames, {reconnects} reconnects)"
        assert reconnects == 0, f"the jump cost {reconnects} reconnections ({state.last_error})"
