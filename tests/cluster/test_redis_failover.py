"""Redis Sentinel on namespace hosts: the primary is SIGKILLed while the engine's publisher writes events, Sentinel
promotes a replica, the publisher (Sentinel-discovered client, spool) carries on, and every event made before,
during and after the failover is in Redis exactly once."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.cluster.netns import Cluster, wait_until
from tests.cluster.redisgroup import SentinelGroup

REPO_ROOT = Path(__file__).resolve().parents[2]


def agent_env(group: SentinelGroup, tmp_path: Path) -> dict[str, str]:
    """Environment of an agent process on a client host."""
    return os.environ | group.client_env() | {"PYTHONPATH": str(REPO_ROOT), "CCTV_RECORDINGS_DIR": str(tmp_path)}


def progress(path: Path) -> dict:
    """The publisher's last progress file (empty until it wrote one)."""
    try:
        return json.loads(path.with_suffix(".progress").read_text())
    except (OSError, ValueError):
        return {}


def count(group: SentinelGroup, client_host, prefix: str, tmp_path: Path) -> dict:
    """The agent's count of the prefix's events, through Sentinel, from ``client_host``."""
    done = client_host.run([sys.executable, "-m", "tests.cluster.agent", "count", "--prefix", prefix],
                           env=agent_env(group, tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_publisher_rides_through_a_sentinel_failover_without_loss_or_duplicates(cluster: Cluster,
                                                                                tmp_path: Path) -> None:
    redis_hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    worker = cluster.add_host("worker")
    group = SentinelGroup(redis_hosts, tmp_path / "redis")
    group.start()
    old_primary = group.primary_ip()
    assert old_primary == redis_hosts[0].ip

    out = tmp_path / "publish.json"
    publisher = worker.popen([sys.executable, "-m", "tests.cluster.agent", "publish", "--prefix", "ha",
                              "--rate", "25", "--spool", str(tmp_path / "spool"), "--out", str(out)],
                             log=tmp_path / "publisher.log", env=agent_env(group, tmp_path), cwd=REPO_ROOT)
    wait_until(lambda: progress(out).get("made", 0) >= 100, 120, "100 events published before the kill")

    killed_host, killed_at = group.kill_primary()
    made_at_kill = progress(out)["made"]
    new_primary = group.wait_failover(old_primary)
    failover_s = time.time() - killed_at
    assert new_primary != old_primary
    # the service keeps publishing: events made after the failover reach the new primary, not only the spool
    wait_until(lambda: progress(out).get("back_at") is not None, 120, "publisher writing to Redis again")
    wait_until(lambda: progress(out)["made"] >= made_at_kill + 200, 120, "200 more events after the kill")

    publisher.send_signal(signal.SIGTERM)
    assert publisher.wait(timeout=120) == 0, (tmp_path / "publisher.log").read_text()[-3000:]
    summary = json.loads(out.read_text())
    assert summary["pending"] == 0 and summary["dropped"] == 0
    assert summary["spooled_total"] > 0, "the kill went unnoticed: nothing was spooled"

    counted = count(group, worker, "ha", tmp_path)
    assert counted["duplicated"] == []
    assert counted["entries"] == counted["ids"] == summary["made"], (counted, summary)

    # the old primary comes back (its AOF) and Sentinel turns it into a replica of the new one: nothing lost
    group.start_redis(killed_host, None)
    wait_until(lambda: group.replica_in_sync(killed_host), 120, "old primary rejoined as a replica in sync")
    again = count(group, worker, "ha", tmp_path)
    assert again["entries"] == again["ids"] == summary["made"]
    print(f"failover: {failover_s:.1f} s from SIGKILL to a new primary named by every Sentinel; "
          f"{summary['spooled_total']} events spooled, {summary['made']} stored once each")
