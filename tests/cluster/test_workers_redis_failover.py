"""Worker hosts (``pipeline run --role worker``) on a Redis Sentinel group, all on network-namespace hosts: three
Redis with a Sentinel each, two worker hosts, a control host that pushes the configuration. The Redis primary is
SIGKILLed while the workers hold and record the cameras: Sentinel promotes a replica, the workers find it through
Sentinel and carry on (every camera held by one worker and online there, recording indexed on the new primary with
the host holding each segment). Worker loss and join across hosts: test_workers_across_hosts.py.

Each worker host serves the test cameras on its own loopback (``pipeline serve-cameras``), so a camera's URL
reaches the same looping footage from whichever host holds it; cameras are record-only (no models to load).
Times are printed, not asserted (the deadlines are generous: CI hosts are loaded).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cluster.netns import Cluster, Host, wait_until
from tests.cluster.redisgroup import SentinelGroup
from tests.conftest import SHARED_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIP = "short_hamilton_clip"
CAMERAS = ["c-1", "c-2", "c-3", "c-4"]
CONFIG = (
    "cluster: {lease_ttl_s: 8, renew_interval_s: 1.5, rebalance_interval_s: 3, orphan_grace_s: 2, config_poll_s: 1}\n"
    "ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n"
    "cameras:\n" + "".join(f"  - {{id: {c}, name: {c}, url: 'rtsp://127.0.0.1:8554/{CLIP}', "
                           "analytics: {plates: false, faces: false}}\n" for c in CAMERAS)
)


def env_of(group: SentinelGroup, tmp_path: Path, **extra: str) -> dict[str, str]:
    return os.environ | group.client_env() | {"PYTHONPATH": str(REPO_ROOT)} | extra


def state(ctl: Host, env: dict[str, str]) -> dict:
    done = ctl.run([sys.executable, "-m", "tests.cluster.agent", "cluster-state", "--cameras", ",".join(CAMERAS)],
                   env=env, timeout=60)
    if done.returncode != 0:
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def all_online(now: dict, workers: set[str]) -> bool:
    """Every camera leased by one of ``workers`` and online on that same worker (health fresh)."""
    return bool(now) and all(c["holder"] in workers and c["status"] == "online" and c["worker"] == c["holder"]
                             and not c["stale"] for c in now.values())


@pytest.mark.timeout(600)
def test_workers_carry_on_through_a_redis_failover(cluster: Cluster, tmp_path: Path) -> None:
    redis_hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    ctl = cluster.add_host("ctl")
    group = SentinelGroup(redis_hosts, tmp_path / "redis")
    group.start()
    env = env_of(group, tmp_path)
    config = tmp_path / "cameras.yaml"
    config.write_text(CONFIG)
    pushed = ctl.run([sys.executable, "-m", "pipeline", "cluster", "push-config", str(config)], env=env, timeout=120)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr

    workers: dict[str, tuple[Host, object]] = {}

    def start_worker(name: str) -> None:
        host = cluster.add_host(name)
        host.popen([sys.executable, "-m", "pipeline", "serve-cameras", "--videos", str(SHARED_DIR / "data" / "videos"),
                    "--port", "8554"], log=tmp_path / f"{name}-cams.log", env=env, cwd=REPO_ROOT)
        wenv = env_of(group, tmp_path, CCTV_RECORDINGS_DIR=str(tmp_path / f"{name}-rec"), CCTV_HOST_NAME=name)
        proc = host.popen([sys.executable, "-m", "pipeline", "run", "--role", "worker", "--worker-id", name,
                           "--slots", "4"], log=tmp_path / f"{name}.log", env=wenv, cwd=REPO_ROOT)
        workers[name] = (host, proc)

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    start_worker("w-1")
    start_worker("w-2")
    wait_until(lambda: all_online(state(ctl, env), {"w-1", "w-2"})
               and set(c["holder"] for c in state(ctl, env).values()) == {"w-1", "w-2"}, 300,
               "every camera online, split over w-1 and w-2", interval_s=1.0)

    # the Redis primary dies: Sentinel promotes a replica, the workers find it and carry on
    before = state(ctl, env)
    indexed = {cam: c["indexed"] for cam, c in before.items()}
    old_ip = group.primary_ip()
    _, failed_at = group.kill_primary()
    new_ip = group.wait_failover(old_ip or "")
    print(f"Redis failover: {time.time() - failed_at:.1f} s to a new primary ({old_ip} -> {new_ip})")
    wait_until(lambda: all_online(state(ctl, env), {"w-1", "w-2"}), 180, "every camera online after the failover")
    wait_until(lambda: all(c["indexed"] > indexed[cam] + 1 for cam, c in state(ctl, env).items()), 180,
               "recording indexed on the new primary")
    after = state(ctl, env)
    for name in ("w-1", "w-2"):
        assert workers[name][1].poll() is None, log(name)  # type: ignore[attr-defined]
    held = Counter(c["holder"] for c in after.values())
    assert sum(held.values()) == len(CAMERAS) and set(held) <= {"w-1", "w-2"}
    moved = [cam for cam in CAMERAS if after[cam]["holder"] != before[cam]["holder"]]
    print(f"cameras that changed worker across the failover (lease TTL 8 s): {moved or 'none'}")
    for cam, c in after.items():  # each segment is indexed with the host that recorded it
        assert set(c["segments"]) <= {"w-1", "w-2"} and c["segments"], (cam, c)
