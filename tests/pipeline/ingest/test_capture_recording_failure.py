"""A recordings disk that fills up (or a segment folder that disappears) must not stop the analysis of the camera:
recording and analysis share one ffmpeg per camera, and ffmpeg ends as a whole when its segment output cannot write.
The capture must go on analysis-only, say in the health that recording failed and why, and record again once the
disk has room. A snapshot that cannot be written is counted in the health too.

Real ffmpeg, a real loopback RTSP camera, real Redis. The full disk is a real one: a small tmpfs mounted for the test
(``No space left on device`` from the kernel); where no tmpfs can be mounted (no CAP_SYS_ADMIN) that case skips and
the ``folder_replaced`` case (the segment folder replaced by a file mid-run: the next segment cannot be opened) covers
the same path everywhere."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.config import parse_config
from pipeline.ingest import capture as capture_module
from pipeline.ingest.capture import CameraCapture, CameraState
from pipeline.ingest.framebus import FrameBus
from pipeline.ingest.health import read_camera_health, write_camera_health
from pipeline.recording.recorder import SegmentFinalizer, incoming_dir
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"  # 640x360 H.264: about 50 kB of recording per second
TMPFS_SIZE = "400k"  # a few segments, then the disk is full


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 kB tmpfs (a real file system that fills up), unmounted afterwards; skips where none can be mounted."""
    mount_point = tmp_path / "recordings"
    mount_point.mkdir()
    mount = shutil.which("mount")
    result = subprocess.run([mount or "mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
                            capture_output=True, text=True, check=False, timeout=30) if mount else None  # fmt: skip
    if result is None or result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() if result else 'no mount'}); "
                    "the folder_replaced case covers the same code")  # fmt: skip
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False, timeout=30)


def start_capture(cams: TestCameraServer, recordings: Path, client: redis.Redis,
                  bus: FrameBus) -> tuple[CameraCapture, threading.Thread]:  # fmt: skip
    """An analysed and recorded camera (one ffmpeg: segments + analysis frames), capturing in a thread."""
    config = parse_config("ingest: {stall_timeout_s: 20, connect_timeout_s: 15, max_width: 320, segment_seconds: 2,"
                          " backoff_initial_s: 0.5, backoff_max_s: 2}\ncameras:\n"
                          f"  - {{id: cam, name: C, url: '{cams.url(CLIP)}', analysis_fps: 2, decode: all}}\n")
    camera = config.cameras[0]
    state = CameraState(camera.id, camera.url)
    capture = CameraCapture(camera, config.ingest, state, threading.Event(), camera.url, bus=bus,
                            finalizer=SegmentFinalizer(client, recordings, camera.id, host="test"),
                            recordings_dir=recordings)  # fmt: skip
    thread = threading.Thread(target=capture.run, name="capture-recording-failure", daemon=True)
    thread.start()
    return capture, thread


def health(client: redis.Redis, state: CameraState) -> dict:
    """The camera's health as the API reads it, after the worker's write of ``state``."""
    write_camera_health(client, state.camera_id, state.health_fields())
    return read_camera_health(client, state.camera_id)[0]


def frames_keep_flowing(state: CameraState, frames: int, timeout_s: float) -> None:
    """Wait for ``frames`` more analysis frames."""
    start = state.published
    wait_for(lambda: state.published >= start + frames, timeout_s, f"{frames} more analysis frames")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["disk_full", "folder_replaced"])
def test_analysis_goes_on_when_recording_cannot_write_and_recording_comes_back(
    how: str, request: pytest.FixtureRequest, h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Recording fails (full disk / segment folder gone): the health says ``recording: failed`` and why, analysis
    frames go on from one ffmpeg without reconnecting, and once the disk has room again recording resumes."""
    monkeypatch.setattr(capture_module, "RECORDING_RETRY_INITIAL_S", 2.0, raising=False)
    monkeypatch.setattr(capture_module, "RECORDING_RETRY_MAX_S", 3.0, raising=False)
    recordings = request.getfixturevalue("small_disk") if how == "disk_full" else tmp_path / "recordings"
    client = redis.Redis.from_url(redis_url)
    with FrameBus(["cam"], queue_size=4, max_width=320) as bus:
        capture, thread = start_capture(h264_cameras, recordings, client, bus)
        state = capture.state
        try:
            wait_for(lambda: capture.finalizer.count >= 1, 90, "a first recorded segment")
            incoming = incoming_dir(recordings, "cam")
            if how == "folder_replaced":
                shutil.rmtree(incoming)
                incoming.write_text("not a folder")  # the next segment cannot be opened
            wait_for(lambda: state.recording == "failed", 120, "recording reported as failed")
            expected = "disk full" if how == "disk_full" else "recordings folder gone"
            seen = health(client, state)
            assert seen["recording"] == "failed"
            assert expected in seen["recording_error"], seen["recording_error"]
            assert str(tmp_path) not in seen["recording_error"]
            # analysis goes on: frames keep coming, from one ffmpeg that is not restarted again and again
            frames_keep_flowing(state, 2, 60)  # the analysis-only ffmpeg runs
            reconnects = state.reconnects
            frames_keep_flowing(state, 10, 90)
            assert state.reconnects == reconnects, f"analysis-only capture reconnected: {state.last_error}"
            seen = health(client, state)
            assert seen["status"] == "online" and seen["recording"] == "failed", seen
            # room again: the retry (with backoff) finds the folder writable and records again
            count = capture.finalizer.count
            if how == "disk_full":
                subprocess.run(["mount", "-o", "remount,size=50m", str(recordings)], check=True, timeout=30)
            else:
                incoming.unlink()
                incoming.mkdir()
            wait_for(lambda: capture.finalizer.count > count, 90, "a segment recorded after the disk had room")
            wait_for(lambda: state.recording == "on" and not state.recording_error, 30, "recording back on")
            frames_keep_flowing(state, 4, 60)
        finally:
            capture.stop_event.set()
            thread.join(30)
    client.close()
    assert not thread.is_alive(), "the capture thread did not stop"


@pytest.mark.timeout(180)
def test_a_snapshot_that_cannot_be_written_is_counted_in_the_health(
    h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The camera's latest snapshot cannot be written (its folder is a file): frames go on, and the health counts
    the failures with the cause and the camera's own relative path only."""
    monkeypatch.setattr(capture_module, "SNAPSHOT_INTERVAL_S", 0.5)
    recordings = tmp_path / "recordings"
    (recordings / "snapshots").mkdir(parents=True)
    (recordings / "snapshots" / "cam").write_text("not a folder")
    config = parse_config("ingest: {stall_timeout_s: 20, connect_timeout_s: 15, max_width: 320}\ncameras:\n"
                          f"  - {{id: cam, name: C, url: '{h264_cameras.url(CLIP)}', analysis_fps: 2, decode: all,"
                          " recording: {enabled: false}}\n")  # fmt: skip
    camera = config.cameras[0]
    state = CameraState(camera.id, camera.url)
    client = redis.Redis.from_url(redis_url)
    with FrameBus([camera.id], queue_size=4, max_width=320) as bus:
        capture = CameraCapture(camera, config.ingest, state, threading.Event(), camera.url, bus=bus,
                                recordings_dir=recordings)  # fmt: skip
        thread = threading.Thread(target=capture.run, name="capture-snapshot-failure", daemon=True)
        thread.start()
        try:
            wait_for(lambda: getattr(state, "snapshot_errors", 0) >= 2, 90, "two failed snapshot writes")
        finally:
            capture.stop_event.set()
            thread.join(30)
    seen = health(client, state)
    client.close()
    assert seen["snapshot_errors"] >= 2
    assert "snapshots/cam/latest.jpg" in seen["snapshot_error"], seen["snapshot_error"]
    assert "File exists" in seen["snapshot_error"], seen["snapshot_error"]
    assert str(tmp_path) not in seen["snapshot_error"]
    assert seen["snapshot_error_time"] > time.time() - 300
    assert not thread.is_alive()
