"""Real worker processes (`pipeline run --role worker`) sharing real RTSP cameras through leases in a real Redis.

Cameras are record-only here (analytics off: no engine and no models to load), so the tests stay light on CPU; the
analysed path (lane bus, fenced engine) is covered by test_lanebus.py and test_fencing.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from pipeline.cluster.configstore import push_config
from pipeline.cluster.leases import LeaseStore
from pipeline.cluster.measure import wait_handover
from pipeline.ingest.health import read_camera_health
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for
from tests.pipeline.cluster.conftest import CLIP, REPO, Workers

CLUSTER = "cluster: {lease_ttl_s: 5, renew_interval_s: 1, rebalance_interval_s: 2, orphan_grace_s: 1, config_poll_s: 1}\n"
INGEST = "ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n"


def cameras_yaml(url: str, ids: list[str], names: dict[str, str] | None = None) -> str:
    lines = [CLUSTER, INGEST, "cameras:\n"]
    for cam in ids:
        name = (names or {}).get(cam, cam.upper())
        lines.append(f"  - {{id: {cam}, name: {name}, url: '{url}', analytics: {{plates: false, faces: false}}}}\n")
    return "".join(lines)


def holders(client: redis.Redis, cams: list[str]) -> dict[str, str]:
    """Camera -> worker holding its lease ('' when free)."""
    return {cam: (h.worker_id if h else "") for cam, h in LeaseStore(client).holders(cams).items()}


def online_on(client: redis.Redis, cam: str, worker: str) -> bool:
    health = read_camera_health(client, cam)
    return bool(health) and health[0].get("status") == "online" and health[0].get("worker") == worker \
        and not health[0]["stale"]  # fmt: skip


@pytest.mark.timeout(300)
def test_a_killed_workers_cameras_move_to_the_others_within_15s(
    h264_cameras: TestCameraServer, workers: Workers, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    cams = ["k-1", "k-2", "k-3", "k-4"]
    push_config(client, cameras_yaml(h264_cameras.url(CLIP), cams))
    workers.start("w-a", 4)
    workers.start("w-b", 4)
    wait_for(lambda: all(holders(client, cams).values()), 90, "every camera leased")
    wait_for(lambda: sorted(holders(client, cams).values()) == ["w-a", "w-a", "w-b", "w-b"], 60, "a 2/2 split")
    wait_for(lambda: all(online_on(client, cam, held) for cam, held in holders(client, cams).items()), 90,
             "every camera online on its holder")  # fmt: skip
    victims = [cam for cam, held in holders(client, cams).items() if held == "w-a"]
    health = {cam: read_camera_health(client, cam)[0] for cam in cams}
    assert {health[cam]["host"] for cam in victims} == {"host-w-a"}  # health says which host holds which camera
    tokens = {cam: LeaseStore(client).current_token(cam) for cam in victims}
    workers.kill("w-a")
    killed = time.monotonic()
    seconds = wait_handover(client, victims, "w-a", timeout_s=60, started=killed)
    assert sorted(seconds) == sorted(victims), f"not handed over within 60 s: {set(victims) - set(seconds)}"
    handover_s = max(seconds.values())
    print(f"\nhand-over after SIGKILL: {handover_s:.1f} s (lease TTL 5 s)")
    assert handover_s < 15, f"cameras of the killed worker were taken after {handover_s:.1f}s"
    assert set(holders(client, cams).values()) == {"w-b"}
    assert all(LeaseStore(client).current_token(cam) == tokens[cam] + 1 for cam in victims)  # one move each
    online = wait_handover(client, victims, "w-a", online=True, timeout_s=90, started=killed)
    assert sorted(online) == sorted(victims), "not online on w-b within 90 s"
    print(f"online again on w-b after: {max(online.values()):.1f} s")
    wait_for(lambda: all(online_on(client, cam, "w-b") for cam in cams), 90, "every camera online on w-b")
    assert {read_camera_health(client, cam)[0]["host"] for cam in cams} == {"host-w-b"}
    client.close()


def _release_times(log: str) -> list[float]:
    """Monotonic-free check of the churn: the times (from the log's timestamps) at which w-a released a camera."""
    out = []
    for line in log.splitlines():
        if "releasing" in line and "fair share" in line:
            stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
            if stamp:
                out.append(time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) + int(stamp.group(2)) / 1000)
    return out


@pytest.mark.timeout(300)
def test_a_joining_worker_gets_cameras_one_at_a_time_and_config_changes_reach_running_workers(
    h264_cameras: TestCameraServer, workers: Workers, redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    url = h264_cameras.url(CLIP)
    cams = ["j-1", "j-2", "j-3", "j-4"]
    push_config(client, cameras_yaml(url, cams))
    a = workers.start("w-a", 8)
    wait_for(lambda: set(holders(client, cams).values()) == {"w-a"}, 90, "w-a alone to hold every camera")
    b = workers.start("w-b", 8)
    wait_for(lambda: sorted(holders(client, cams).values()) == ["w-a", "w-a", "w-b", "w-b"], 120, "a 2/2 rebalance")
    tokens = {cam: LeaseStore(client).current_token(cam) for cam in cams}
    assert sorted(tokens.values()) == [1, 1, 2, 2]  # two cameras moved, once each: no ping-pong
    released = _release_times(workers.log("w-a"))
    assert len(released) == 2, workers.log("w-a")
    assert released[1] - released[0] >= 2 - 0.01  # one camera per rebalance period (2 s)
    wait_for(lambda: all(online_on(client, cam, held) for cam, held in holders(client, cams).items()), 90,
             "every camera online on its holder")  # fmt: skip

    # a new configuration: j-4 removed, j-5 added, j-1 renamed; nobody restarts
    changed = [c for c in cams if c != "j-4"] + ["j-5"]
    before_pid = read_camera_health(client, "j-1")[0]["worker_pid"]
    assert push_config(client, cameras_yaml(url, changed, names={"j-1": "Renamed"})).version == 2
    wait_for(lambda: holders(client, ["j-4"])["j-4"] == "", 60, "j-4 released by its worker")
    wait_for(lambda: holders(client, ["j-5"])["j-5"] in ("w-a", "w-b"), 60, "j-5 taken by a worker")
    wait_for(lambda: online_on(client, "j-5", holders(client, ["j-5"])["j-5"]), 90, "j-5 online")
    wait_for(lambda: read_camera_health(client, "j-4")[0].get("status") == "stopped", 60, "j-4 stopped")
    wait_for(lambda: read_camera_health(client, "j-1")[0]["worker_pid"] != before_pid, 60,
             "j-1's capture restarted with its new settings")  # fmt: skip
    assert LeaseStore(client).current_token("j-1") == tokens["j-1"]  # restarted under the same lease
    assert a.poll() is None and b.poll() is None  # the workers themselves kept running
    assert "now on configuration version 2" in workers.log("w-a") and "now on configuration version 2" in workers.log("w-b")
    # retention follows the new version too (per-camera retention of the added camera)
    wait_for(lambda: workers.log("w-a").count("started retention") == 2, 60, "w-a's retention on version 2")
    client.close()


def _frames_analysed(client: redis.Redis) -> int:
    total = 0
    for key in client.scan_iter("metrics:engine:*"):
        value = client.hget(key, "count_frames_analysed")
        total += int(float(value)) if value else 0
    return total


@pytest.mark.timeout(300)
def test_an_analysed_camera_goes_through_the_lane_bus_and_stops_when_its_lease_is_stolen(
    h264_cameras: TestCameraServer, workers: Workers, redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    push_config(client, CLUSTER + f"engine: {{metrics_port: 0, spool_dir: '{tmp_path / 'spool'}'}}\ncameras:\n"
                f"  - {{id: an-1, name: A, url: '{h264_cameras.url(CLIP)}', analysis_fps: 1, analysis_width: 320, "
                "analytics: {plates: true}}\n")  # fmt: skip
    workers.start("w-a", 2)
    wait_for(lambda: online_on(client, "an-1", "w-a"), 120, "an-1 online on w-a")
    wait_for(lambda: _frames_analysed(client) >= 3, 180, "the worker's engine to analyse frames of an-1")
    # another worker takes the lease behind w-a's back (as if w-a had stalled past the TTL)
    client.delete("cctv:cluster:lease:an-1")
    assert LeaseStore(client).acquire("an-1", "thief", 120_000) == 2
    wait_for(lambda: "camera an-1: lease (token 1) lost; stopping it" in workers.log("w-a"), 30, "w-a to notice")
    wait_for(lambda: "camera an-1 stopped on w-a (lost)" in workers.log("w-a"), 30, "w-a to stop an-1")
    # its capture's last health write ("stopped") is refused by the fence: the camera's health is the thief's now
    wait_for(lambda: "health of an-1 not written: the lease was handed over" in workers.log("w-a"), 30,
             "an-1's capture to stop, its health write fenced")  # fmt: skip
    assert read_camera_health(client, "an-1")[0].get("status") != "stopped"
    assert holders(client, ["an-1"]) == {"an-1": "thief"}  # w-a does not take it back while it is held
    client.close()


@pytest.mark.timeout(300)
def test_a_second_worker_under_a_live_workers_id_stops_with_one_line(
    h264_cameras: TestCameraServer, workers: Workers, redis_url: str, tmp_path: Path
) -> None:
    """The same --worker-id started twice (a unit file copied to a second host): the second process says which
    worker holds the id and exits 1, and the first keeps its camera."""
    client = redis.Redis.from_url(redis_url)
    push_config(client, cameras_yaml(h264_cameras.url(CLIP), ["d-1"]))
    workers.start("w-dup", 2)
    wait_for(lambda: holders(client, ["d-1"])["d-1"] == "w-dup", 90, "the first w-dup to lease d-1")
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(tmp_path / "twin"),
           "CCTV_HOST_NAME": "host-twin"}  # fmt: skip
    env.pop("CCTV_REDIS_SENTINELS", None)
    twin = subprocess.run([sys.executable, "-m", "pipeline", "run", "--role", "worker", "--worker-id", "w-dup"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert twin.returncode == 1, twin.stdout + twin.stderr
    assert "error: worker id 'w-dup' is in use by a live worker on host-w-dup" in twin.stderr, twin.stderr
    assert "Traceback" not in twin.stderr
    assert workers.procs["w-dup"].poll() is None and holders(client, ["d-1"])["d-1"] == "w-dup"
