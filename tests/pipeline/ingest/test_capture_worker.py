"""Capture workers against real RTSP cameras on loopback: online, broken cameras, stream killed and restarted,
H.265, credentials never leaking. A real redis-server (fixture) holds the health."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from pipeline.config import Config, parse_config
from pipeline.ingest.framebus import FrameBus
from pipeline.ingest.health import read_camera_health
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.testcams import GarbageServer, SilentServer, TestCameraServer
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"
PASSWORD = "pw-Zq81-never-logged"


def make_config(cameras_yaml: str) -> Config:
    return parse_config(
        "ingest: {stall_timeout_s: 2, connect_timeout_s: 2, backoff_initial_s: 0.5, backoff_max_s: 2,"
        " segment_seconds: 2, max_width: 320, queue_size: 4}\ncameras:\n" + cameras_yaml
    )



def status_of(client: redis.Redis, camera_id: str) -> str | None:
    health = read_camera_health(client, camera_id)
    return health[0]["status"] if health else None


@pytest.mark.timeout(120)
def test_good_camera_online_while_broken_ones_retry_and_restart_recovers(
    h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("CAM_TEST_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    good = h264_cameras.url(CLIP).replace("rtsp://", "rtsp://admin:${CAM_TEST_PASSWORD}@")
    with GarbageServer() as garbage, SilentServer() as silent:
        config = make_config(
            f'  - {{id: good, name: Good, url: "{good}", analysis_fps: 3}}\n'
            f'  - {{id: garbage, name: Garbage, url: "{garbage.url}", analysis_fps: 3, recording: {{enabled: false}}}}\n'
            f'  - {{id: silent, name: Silent, url: "{silent.url}", analysis_fps: 3, recording: {{enabled: false}}}}\n'
        )
        client = redis.Redis.from_url(redis_url)
        with FrameBus([c.id for c in config.cameras], queue_size=4, max_width=320) as bus:
            worker = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, tmp_path).start()
            try:
                wait_for(lambda: status_of(client, "good") == "online", 30, "good camera online")
                items = bus.get_batch(4, timeout_s=5, copy=True)
                assert items and items[0].camera_id == "good" and items[0].frame.shape == (180, 320, 3)
                assert items[0].frame.std() > 5  # real picture, not a blank buffer
                wait_for(lambda: read_camera_health(client, "good")[0].get("snapshot_path"), 10, "latest snapshot")
                snapshot = tmp_path / read_camera_health(client, "good")[0]["snapshot_path"]
                assert snapshot.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG of the live picture
                for broken in ("garbage", "silent"):
                    wait_for(lambda b=broken: status_of(client, b) in ("reconnecting", "offline"), 30, f"{broken} down")
                wait_for(lambda: read_camera_health(client, "garbage")[0]["last_error"] != "", 10, "garbage error")
                wait_for(lambda: (read_camera_health(client, "good")[0]["input_fps"] or 0) > 10, 10, "input fps measured")
                health = {h["camera_id"]: h for h in read_camera_health(client)}
                assert health["good"]["status"] == "online" and health["good"]["analysed_fps"] > 0
                assert health["good"]["input_fps"] > 10 and health["good"]["stale"] is False
                assert health["silent"]["last_error"] and health["garbage"]["reconnects"] >= 1

                h264_cameras.stop_stream(CLIP)  # the camera dies
                wait_for(lambda: status_of(client, "good") in ("reconnecting", "offline"), 20, "good camera down")
                assert read_camera_health(client, "good")[0]["last_error"]
                h264_cameras.start_stream(CLIP)  # and comes back: no action needed
                wait_for(lambda: status_of(client, "good") == "online", 30, "good camera back online")
            finally:
                h264_cameras.start_stream(CLIP)
                assert worker.stop() == 0
        assert status_of(client, "good") == "stopped"
        dump = b" ".join(v for key in client.keys("*") if client.type(key) == b"hash" for v in client.hgetall(key).values())
        assert b"${CAM_TEST_PASSWORD}" not in dump and PASSWORD.encode() not in dump
        assert b"admin:***@" in dump  # the redacted URL is there, so the check above looked at the right data
        out, err = capfd.readouterr()
        assert PASSWORD not in out + err + caplog.text
        assert "camera good" in err  # the worker's log really was captured


@pytest.mark.timeout(120)
def test_h265_camera_is_decoded(shared_dir: Path, redis_url: str, tmp_path: Path) -> None:
    with TestCameraServer(shared_dir / "data" / "videos", 0, codec="h265", names=[CLIP]) as cams:
        config = make_config(f'  - {{id: hevc, name: HEVC, url: "{cams.url(CLIP)}", analysis_fps: 3}}\n')
        client = redis.Redis.from_url(redis_url)
        with FrameBus(["hevc"], queue_size=4, max_width=320) as bus:
            worker = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, tmp_path).start()
            try:
                wait_for(lambda: status_of(client, "hevc") == "online", 40, "H.265 camera online")
                items = bus.get_batch(2, timeout_s=5, copy=True)
                assert items and items[0].frame.shape == (180, 320, 3) and items[0].frame.std() > 5
                wait_for(lambda: client.zcard("cctv:rec:hevc") >= 1, 20, "an H.265 segment recorded")
            finally:
                assert worker.stop() == 0
