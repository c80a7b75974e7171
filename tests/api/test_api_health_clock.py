"""/api/health is degraded, counting the host (no names: it needs no sign-in), while a live worker's clock is off the Redis server's."""

from __future__ import annotations

import time

import redis
from fastapi.testclient import TestClient

from pipeline.cluster.clock import ClockWatch
from pipeline.cluster.leases import LeaseStore, WorkerInfo
from pipeline.config import ClusterConfig


def test_health_counts_a_worker_host_whose_clock_is_off(client: TestClient, rclient: redis.Redis) -> None:
    before = client.get("/api/health").json()
    assert before["clock_skewed_hosts"] == 0
    LeaseStore(rclient).heartbeat(WorkerInfo("w-late", "host-late", 10, 4, 0, time.time()), 60_000)
    ClockWatch(rclient, "host-late", now=lambda: time.time() - 120.0, settings=ClusterConfig()).check()
    ClockWatch(rclient, "host-gone", now=lambda: time.time() + 60.0, settings=ClusterConfig()).check()  # no worker
    reply = client.get("/api/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "degraded"
    assert body["clock_skewed_hosts"] == 1
    assert "host-late" not in reply.text
