"""The supervisor (`python -m pipeline run`) as a real process tree: a killed capture worker is restarted, SIGTERM
stops everything cleanly and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from pipeline.ingest.health import read_camera_health
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[3]
CLIP = "short_hamilton_clip"



@pytest.mark.timeout(150)
def test_supervisor_restarts_a_killed_worker_and_stops_cleanly(
    h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        "ingest: {stall_timeout_s: 3, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n"
        "cameras:\n"
        f"  - {{id: sup-cam, name: S, url: '{h264_cameras.url(CLIP)}', analytics: {{plates: false, faces: false}}}}\n"
    )
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}
    log = (tmp_path / "service.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    tree: list[psutil.Process] = []
    try:
        wait_for(lambda: (h := read_camera_health(client, "sup-cam")) and h[0]["status"] == "online", 60, "online")
        first_pid = read_camera_health(client, "sup-cam")[0]["worker_pid"]
        os.kill(first_pid, signal.SIGKILL)  # a crashed capture worker
        wait_for(
            lambda: (h := read_camera_health(client, "sup-cam")) and h[0]["worker_pid"] != first_pid
            and h[0]["status"] == "online", 60, "worker restarted and camera online again",
        )  # fmt: skip
        wait_for(lambda: client.zcard("cctv:rec:sup-cam") >= 1, 30, "a segment recorded")
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("ffmpeg" in p.name() for p in tree)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, f"processes left behind: {alive}"
    text = (tmp_path / "service.log").read_text()
    assert "capture-0 exited with code -9; restarting" in text and "service stopped" in text
    assert read_camera_health(client, "sup-cam")[0]["status"] == "stopped"


@pytest.mark.timeout(120)
def test_children_exit_when_the_supervisor_is_killed(h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(  # record-only: no engine process to load models in this test
        f"cameras:\n  - {{id: orphan-cam, name: O, url: '{h264_cameras.url(CLIP)}', "
        "analytics: {plates: false, faces: false}}\n"
    )
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: (h := read_camera_health(client, "orphan-cam")) and h[0]["status"] == "online", 60, "online")
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("ffmpeg" in p.name() for p in tree)
    finally:
        proc.kill()  # no clean shutdown possible
        proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=30)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"orphans left behind: {alive}"
