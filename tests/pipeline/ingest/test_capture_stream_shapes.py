"""Streams whose shape differs from a plain camera's: a resolution change mid-stream, a camera slower than
analysis_fps, MJPEG over HTTP (no timestamps), an audio-only stream. Real ffmpeg on real (generated) media."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.ingest import capture as capture_module
from pipeline.ingest.capture import CameraCapture, CameraState, _SessionLoop
from tests.conftest import wait_for

X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-pix_fmt", "yuv420p"]


def _ffmpeg(*args: str) -> None:
    import subprocess

    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120)


class _ShapeBus:
    """A frame bus stand-in that records the shape of each published frame."""

    camera_ids = ("cam",)

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.times: list[float] = []

    def publish(self, camera_id: str, frame: np.ndarray, capture_time: float) -> None:
        self.shapes.append(frame.shape)
        self.times.append(time.monotonic())


def _capture(url: str, extra: str = "", ingest: str = "") -> tuple[CameraCapture, CameraState, _ShapeBus]:
    config = parse_config(f"ingest: {{stall_timeout_s: 5, connect_timeout_s: 10, backoff_initial_s: 0.5, "
                          f"backoff_max_s: 1, max_width: 640{ingest}}}\ncameras:\n"
                          f"  - {{id: cam, name: C, url: '{url}', recording: {{enabled: false}}{extra}}}\n")  # fmt: skip
    camera = config.cameras[0]
    state = CameraState(camera.id, camera.url)
    bus = _ShapeBus()
    return CameraCapture(camera, config.ingest, state, threading.Event(), camera.url, bus=bus), state, bus


def _run_until(capture: CameraCapture, predicate: Any, timeout_s: float, what: str) -> None:
    thread = threading.Thread(target=capture.run, name="capture-test", daemon=True)
    thread.start()
    try:
        wait_for(predicate, timeout_s, what)
    finally:
        capture.stop_event.set()
        thread.join(30)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    # 640x360 (16:9) for 3 s, then 1280x960 (4:3) for 3 s, continuous timestamps, in one MPEG-TS
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=10", "-t", "3", *X264, "-g", "10", "-f", "mpegts",
            str(folder / "a.ts"))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x960:rate=10", "-t", "3", *X264, "-g", "10",
            "-output_ts_offset", "3", "-f", "mpegts", str(folder / "b.ts"))  # fmt: skip
    (folder / "reschange.ts").write_bytes((folder / "a.ts").read_bytes() + (folder / "b.ts").read_bytes())
    # a camera sending a frame every 2 s (5 frames)
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=0.5", "-t", "10", *X264, "-g", "1", "-f", "mpegts",
            str(folder / "slow.ts"))  # fmt: skip
    # audio only
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "3", "-c:a", "aac", "-f", "mpegts",
            str(folder / "audio.ts"))  # fmt: skip
    return folder


@pytest.mark.timeout(180)
def test_analysis_frames_follow_a_resolution_change_and_keep_its_aspect_ratio(media: Path) -> None:
    """640x360 then 1280x960 (4:3): the later frames are 640x480 (fitted in the 640 square), not stretched to 640x360;
    the change is in the health (analysis_size)."""
    capture, state, bus = _capture(str(media / "reschange.ts"), ", analysis_fps: 2, decode: all")
    _run_until(capture, lambda: state.reconnects >= 1, 120, "the file's session to end")
    shapes = [shape[:2] for shape in bus.shapes]
    assert shapes and shapes[0] == (360, 640), shapes
    assert shapes.count((480, 640)) >= 3, shapes  # the 4:3 part, aspect kept
    assert set(shapes) == {(360, 640), (480, 640)}, shapes
    assert state.analysis_size == "640x480" and state.health_fields()["analysis_size"] == "640x480"


@pytest.mark.timeout(180)
def test_a_camera_slower_than_analysis_fps_is_never_given_repeated_frames(media: Path) -> None:
    """5 frames over 10 s at analysis_fps 5: 5 frames published (fps=5 made ~50, repeating each one)."""
    capture, state, bus = _capture(str(media / "slow.ts"), ", analysis_fps: 5, decode: all")
    _run_until(capture, lambda: state.reconnects >= 1, 120, "the file's session to end")
    assert 4 <= len(bus.shapes) <= 5, len(bus.shapes)


def test_the_measured_input_rate_of_a_slow_camera_and_its_health_note() -> None:
    """ffmpeg reports progress every 0.5 s; a camera sending a frame every 2 s reads 0.5 fps (not 2 fps), and the
    health says it is slower than analysis_fps."""
    capture, state, _ = _capture("rtsp://10.0.0.9/main", ", analysis_fps: 5")
    loop = _SessionLoop.__new__(_SessionLoop)
    loop.o, loop.progress_frames, loop.progress_time = capture, None, 0.0
    clock = [100.0]
    real = time.monotonic
    try:
        time.monotonic = lambda: clock[0]  # type: ignore[assignment]
        for step in range(13):  # 6 s: a report every 0.5 s, a new frame every 2 s
            clock[0] = 100.0 + step * 0.5
            loop._on_progress(f"frame={step // 4}")
    finally:
        time.monotonic = real  # type: ignore[assignment]
    assert state.input_fps == pytest.approx(0.5, rel=0.01)
    note = state.health_fields()["analysis_rate_note"]
    assert "0.50 fps" in note and "analysis_fps 5" in note, note
    state.input_fps = 25.0
    assert state.health_fields()["analysis_rate_note"] == ""


@pytest.mark.timeout(180)
def test_an_audio_only_stream_is_reported_as_having_no_video(media: Path) -> None:
    capture, state, bus = _capture(str(media / "audio.ts"), ", analysis_fps: 1, decode: all")
    _run_until(capture, lambda: state.reconnects >= 1, 120, "the first attempt to end")
    assert state.last_error.startswith("no video track in the stream"), state.last_error
    assert not bus.shapes


# -- MJPEG over HTTP (multipart, no timestamps) ----------------------------------------------------------------------
class _MjpegHandler(BaseHTTPRequestHandler):
    fps = 4.0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        n = 0
        try:
            while not self.server.stopping:  # type: ignore[attr-defined]
                image = np.full((240, 320, 3), (n * 37) % 256, np.uint8)
                cv2.putText(image, str(n), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
                jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                 + jpeg + b"\r\n")  # fmt: skip
                n += 1
                time.sleep(1 / self.fps)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def mjpeg_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MjpegHandler)
    server.daemon_threads = True
    server.stopping = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    finally:
        server.stopping = True  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(240)
def test_mjpeg_over_http_is_timed_by_the_wall_clock_and_decoded_whole(mjpeg_url: str) -> None:
    """4 fps MJPEG without timestamps at analysis_fps 1: about one frame a second (ffmpeg's assumed 25 fps gave one
    every 6 s), never "keyframes only"."""
    capture, state, bus = _capture(mjpeg_url, ", analysis_fps: 1", ", keyframe_probe_s: 2")
    _run_until(capture, lambda: len(bus.times) >= 6, 150, "six analysis frames")
    assert bus.times[5] - bus.times[0] < 12, bus.times  # 5 frame gaps of ~1 s (6.25 s each before)
    assert capture.wallclock and capture.video_codec == "mjpeg"
    assert state.decode == "all" and "every frame" in state.decode_reason and "keyframe" in state.decode_reason
    assert state.keyframe_interval_s is None
    assert "-use_wallclock_as_timestamps" in capture.input_args(mjpeg_url, None)[0]


def test_which_inputs_are_timed_by_the_wall_clock() -> None:
    untimed_input, choose_decode = capture_module.untimed_input, capture_module.choose_decode
    assert untimed_input("mpjpeg", "mjpeg", "http://cam/video")
    assert untimed_input("concat", "mjpeg", "http://u:p@cam/video")  # the URL behind the concat script
    assert not untimed_input("concat", "mjpeg", "rtsp://u:p@cam/video")  # RTP timestamps
    assert not untimed_input("mpegts", "h264", "http://cam/ts")
    assert not untimed_input("rtsp", "mjpeg", "rtsp://cam/video")
    _, script = capture_module.ffmpeg_input_args("http://u:p@cam/video", 7, wallclock=True)
    assert script is not None and b"option use_wallclock_as_timestamps 1" in script
    assert choose_decode("keyframes", 1.0, 0.04, 1.2, codec="mjpeg")[0] == "all"
    assert choose_decode("auto", 1.0, 0.04, 1.2, codec="h264")[0] == "keyframes"
