"""Cheaper analysis frames (issue 13): keyframe-only decode against real loopback RTSP cameras (used when the
camera's keyframe interval fits its analysis fps, refused with the reason in the health when it does not), the
sub-stream analysed while the main stream is recorded, and the per-camera analysis width.

No timing goals here: frame-rate checks are loose bounds (the host is shared); the costs live in
``benchmarks.ingest`` (``--decode``)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis

from pipeline.config import ConfigError, parse_config
from pipeline.ingest.capture import CameraCapture, CameraState, choose_decode, keyframe_interval
from pipeline.ingest.framebus import FrameBus
from pipeline.ingest.health import read_camera_health
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.secrets import expand_url
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"  # 640x360 main stream, 320x180 sub-stream, a keyframe every second



def health(client: redis.Redis, camera_id: str) -> dict[str, object]:
    found = read_camera_health(client, camera_id)
    return found[0] if found else {}


# -- decisions and command lines (no camera) ------------------------------------------------------------------
def test_choose_decode_fits_refuses_and_respects_settings() -> None:
    assert choose_decode("auto", 1.0, 1.0, 1.2)[0] == "keyframes"
    assert choose_decode("keyframes", 0.5, 2.0, 1.2)[0] == "keyframes"
    mode, reason = choose_decode("keyframes", 5.0, 1.0, 1.2)  # 1 keyframe/s cannot give 5 fps
    assert mode == "all" and "not used" in reason and "analysis_fps 5" in reason
    assert choose_decode("auto", 1.0, 1.3, 1.2)[0] == "all"  # just outside the tolerance
    assert choose_decode("all", 1.0, 1.0, 1.2)[0] == "all"
    assert choose_decode("auto", 1.0, None, 1.2)[0] == "all"  # not measurable: decode everything
    assert choose_decode("auto", 5.0, None, 1.2, measured=False)[0] == "all"
    assert keyframe_interval([0.0, 1.0, 2.0, 3.04]) == pytest.approx(1.0)
    assert keyframe_interval([4.0]) is None


def test_keyframe_command_skips_non_keyframes_on_the_analysis_decode_only(tmp_path: Path) -> None:
    config = parse_config("ingest: {max_width: 640}\ncameras:\n"
                          "  - {id: cam, name: C, url: 'rtsp://10.0.0.9/main', analysis_fps: 1, analysis_width: 320}\n")  # fmt: skip
    cap = CameraCapture(config.cameras[0], config.ingest, CameraState("cam", ""), threading.Event(),
                        "rtsp://10.0.0.9/main", bus=object(), recordings_dir=tmp_path)  # fmt: skip
    input_args, _ = cap.input_args("rtsp://10.0.0.9/main", None)
    everything = cap.build_command(input_args, 5, 6)
    all_vf = everything[everything.index("-vf") + 1]
    assert "-skip_frame" not in everything and ",select=" in all_vf and "floor(t*1)" in all_vf  # every frame: 1 fps
    cap.decode_mode = "keyframes"
    cmd = cap.build_command(input_args, 5, 6)
    assert cmd.index("-skip_frame") < cmd.index("-i") and cmd[cmd.index("-skip_frame") + 1] == "nokey"
    vf = cmd[cmd.index("-vf") + 1]
    assert ",select=" in vf and ",fps=" not in vf and "min(320,iw)" in vf  # per-camera analysis width
    segment = cmd.index("segment")
    assert cmd[segment - 5 : segment] == ["-map", "0:v:0", "-c", "copy", "-f"]  # recording stays a stream copy


def test_no_keyframe_measurement_after_a_refused_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera that refused the login is not logged into twice per attempt (account lock-outs)."""
    config = parse_config("cameras:\n  - {id: cam, name: C, url: 'rtsp://10.0.0.9/m', analysis_fps: 1, decode: keyframes}\n")
    state = CameraState("cam", "")
    cap = CameraCapture(config.cameras[0], config.ingest, state, threading.Event(), "rtsp://10.0.0.9/m", bus=object())
    probes: list[str] = []
    monkeypatch.setattr(cap, "probe_keyframe_interval", lambda url: probes.append(url) or 2.0)
    cap._choose_decode("rtsp://10.0.0.9/m", login_refused=True)
    assert probes == [] and cap.decode_mode == "all" and "refused login" in state.decode_reason
    cap._choose_decode("rtsp://10.0.0.9/m")  # measured at the next connection: 2 s GOP cannot give 1 fps
    assert len(probes) == 1 and cap.decode_mode == "all" and "not used" in state.decode_reason


def test_keyframe_measurement_hides_the_password_like_the_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """ffprobe gets the URL in the ffconcat script on a pipe: not on its command line, not in its environment."""
    password = "kf-probe-S3cret@/#"
    monkeypatch.setenv("CAM_KF_PASSWORD", password)
    url = "rtsp://admin:${CAM_KF_PASSWORD}@10.0.0.9/main"
    config = parse_config(f"cameras:\n  - {{id: cam, name: C, url: '{url}', analysis_fps: 1}}\n")
    cap = CameraCapture(config.cameras[0], config.ingest, CameraState("cam", url), threading.Event(), url, bus=object())
    seen: dict[str, object] = {}

    class Started(Exception):
        pass

    def fake_popen(cmd: list[str], **kwargs: object) -> None:
        (fd,) = kwargs["pass_fds"]  # type: ignore[misc]
        seen.update(cmd=cmd, env=kwargs["env"], script=os.read(fd, 65536).decode())
        raise Started

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    with pytest.raises(Started):
        cap.probe_keyframe_interval(expand_url(url))
    cmd = " ".join(seen["cmd"])  # type: ignore[arg-type]
    assert cmd.startswith("ffprobe") and "-f concat" in cmd and "pipe:" in cmd and "kf-probe" not in cmd
    assert "CAM_KF_PASSWORD" not in seen["env"]  # type: ignore[operator]
    assert "@10.0.0.9/main" in str(seen["script"]) and "admin:" in str(seen["script"])


def test_analysis_width_above_the_frame_bus_slot_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.analysis_width: must not exceed ingest.max_width"):
        parse_config("ingest: {max_width: 320}\ncameras:\n  - {id: a, name: A, url: 'rtsp://h/x', analysis_width: 640}\n")


# -- real loopback cameras -------------------------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_keyframes_decode_sub_stream_and_analysis_width_on_real_cameras(
    h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path
) -> None:
    main, sub = h264_cameras.url(CLIP), h264_cameras.sub_url(CLIP)
    config = parse_config(
        "ingest: {stall_timeout_s: 5, connect_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2,"
        " segment_seconds: 2, max_width: 320, queue_size: 4}\ncameras:\n"
        f"  - {{id: keys, name: K, url: '{main}', analysis_fps: 1, decode: keyframes, recording: {{enabled: false}}}}\n"
        f"  - {{id: fast, name: F, url: '{main}', analysis_fps: 5, decode: keyframes, recording: {{enabled: false}}}}\n"
        f"  - {{id: subcam, name: S, url: '{main}', sub_stream: '{sub}', analysis_fps: 2, decode: all,"
        " analysis_width: 240}\n"
    )
    ids = [c.id for c in config.cameras]
    client = redis.Redis.from_url(redis_url)
    with FrameBus(ids, queue_size=4, max_width=320) as bus:
        worker = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, tmp_path).start()
        seen: dict[str, tuple[int, ...]] = {}
        stop = threading.Event()

        def consume() -> None:  # drains the bus like the engine, remembering each camera's frame shape
            while not stop.is_set():
                for item in bus.get_batch(8, 0.2, copy=True):
                    seen[item.camera_id] = item.frame.shape
                    item.release()

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        try:
            wait_for(lambda: all(health(client, c).get("status") == "online" for c in ids), 90, "cameras online")
            keys, fast = health(client, "keys"), health(client, "fast")
            assert keys["decode"] == "keyframes" and keys["keyframe_interval_s"] == pytest.approx(1.0, abs=0.1)
            assert fast["decode"] == "all" and "not used" in str(fast["decode_reason"])
            assert fast["keyframe_interval_s"] == pytest.approx(1.0, abs=0.1)
            ffmpegs = [" ".join(p.cmdline()) for p in psutil.Process(worker.process.pid).children(recursive=True)
                       if p.name() == "ffmpeg"]  # fmt: skip
            assert sum("-skip_frame nokey" in c for c in ffmpegs) == 1  # only the keyframe camera's decode

            published0 = {c: bus.published(c) for c in ids}
            t0 = time.monotonic()
            time.sleep(10)
            rate = {c: (bus.published(c) - published0[c]) / (time.monotonic() - t0) for c in ids}
            # about one frame per GOP (1 s) from keyframes only; loose bounds, the host is shared
            assert 0.4 <= rate["keys"] <= 1.3, rate
            assert rate["fast"] > 2.0, rate  # refused: every frame decoded, analysis fps served

            wait_for(lambda: "subcam" in seen, 10, "a sub-stream frame")
            assert seen["subcam"][1] == 240 and seen["subcam"][0] <= 136  # sub-stream 320x180, fitted to 240
            assert seen["keys"][1] == 320  # main stream 640x360, fitted to ingest.max_width
            sub_health = health(client, "subcam")
            assert sub_health["url"] == sub and sub_health["recording"] == "on"
            wait_for(lambda: client.zcard("cctv:rec:subcam") >= 1, 30, "a main-stream segment indexed")
        finally:
            stop.set()
            consumer.join(5)
            assert worker.stop() == 0
    segments = sorted(p for p in (tmp_path / "subcam").rglob("*.mkv") if "incoming" not in p.parts)
    assert segments, "no recorded segment"
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", str(segments[0])], capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    assert probe.stdout.strip() == "640,360"  # the main stream is what is recorded


def test_a_capture_reuses_the_keyframe_interval_its_camera_s_previous_capture_measured(redis_url: str) -> None:
    """A camera taken over by another worker host (or restarted) starts without measuring its keyframe interval
    again when its health hash holds one measured on the same URL; another URL, or decode: all, measures anew."""
    from pipeline.ingest.health import write_camera_health
    from pipeline.ingest.worker import _reuse_keyframe_intervals
    from pipeline.secrets import redact_url

    config = parse_config("cameras:\n"
                          "  - {id: a, name: A, url: 'rtsp://10.0.0.9/main', analysis_fps: 1}\n"
                          "  - {id: b, name: B, url: 'rtsp://10.0.0.9/other', analysis_fps: 1}\n"
                          "  - {id: c, name: C, url: 'rtsp://10.0.0.9/main', analysis_fps: 1, decode: all}\n")  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    for cam in ("a", "b", "c"):  # what the previous captures wrote, all on the same URL
        write_camera_health(client, cam, {"url": redact_url("rtsp://10.0.0.9/main"), "keyframe_interval_s": "1.000"})
    captures = [CameraCapture(cam, config.ingest, CameraState(cam.id, cam.url), threading.Event(), cam.url,
                              bus=object()) for cam in config.cameras]  # fmt: skip
    captures.append(CameraCapture(config.cameras[0], config.ingest, CameraState("a", ""), threading.Event(),
                                  config.cameras[0].url))  # record-only: no analysis decode to choose
    _reuse_keyframe_intervals(client, captures)
    assert [c.keyframe_interval_s for c in captures] == [1.0, None, None, None]
    client.close()
