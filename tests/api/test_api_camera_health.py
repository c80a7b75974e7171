"""Camera health for monitoring: counts (no names) on the unauthenticated /api/health, ``degraded`` but still 200
while a camera is down (503 only without Redis), and per-camera up / frame-age gauges on the Prometheus endpoint."""

from __future__ import annotations

import time

import redis
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from api.deps import get_redis
from pipeline.engine.metrics import EngineMetrics
from pipeline.ingest.health import health_key, write_camera_health

# the enabled cameras of the repository's cameras.yaml (the API fixture's configuration)
CAMERAS = ("bkk-night-01", "walkway-01", "stage-01")


def report(client: redis.Redis, camera_id: str, status: str, age_s: float = 0.0, frame_age_s: float = 0.5) -> None:
    """A health report of ``camera_id`` written ``age_s`` seconds ago, its last frame ``frame_age_s`` before now."""
    write_camera_health(client, camera_id, {"status": status, "last_frame_time": f"{time.time() - frame_age_s:.3f}",
                                            "last_error": "" if status == "online" else "Connection refused"})
    if age_s:
        client.hset(health_key(camera_id), "updated_at", f"{time.time() - age_s:.3f}")


def test_health_counts_cameras_and_says_degraded_without_names(client: TestClient, rclient: redis.Redis) -> None:
    report(rclient, "bkk-night-01", "online")
    report(rclient, "walkway-01", "offline", frame_age_s=700)  # offline for 10+ minutes
    report(rclient, "stage-01", "online", age_s=600)  # its worker died while online: the report went stale
    r = client.get("/api/health")
    assert r.status_code == 200  # a dead camera must not take the API out of a load balancer
    body = r.json()
    assert body == {"status": "degraded", "redis": True,
                    "cameras": {"total": 3, "online": 1, "offline": 1, "stale": 1, "unknown": 0}}
    assert not any(camera in r.text for camera in CAMERAS)  # unauthenticated: counts only


def test_health_ok_when_every_camera_is_online_and_unknown_counts(client: TestClient, rclient: redis.Redis) -> None:
    report(rclient, "bkk-night-01", "online")
    report(rclient, "walkway-01", "online")
    body = client.get("/api/health").json()
    assert body["status"] == "degraded" and body["cameras"]["unknown"] == 1  # stage-01 never reported
    report(rclient, "stage-01", "online")
    report(rclient, "removed-cam", "offline")  # not in cameras.yaml any more: not counted
    body = client.get("/api/health").json()
    assert body == {"status": "ok", "redis": True,
                    "cameras": {"total": 3, "online": 3, "offline": 0, "stale": 0, "unknown": 0}}


def test_health_without_redis_is_503_down(client: TestClient) -> None:
    class DeadRedis:
        def ping(self) -> bool:
            raise redis.ConnectionError("refused")

    client.app.dependency_overrides[get_redis] = DeadRedis
    try:
        r = client.get("/api/health")
    finally:
        client.app.dependency_overrides.clear()
    assert r.status_code == 503
    assert r.json() == {"status": "down", "redis": False, "cameras": None}


def test_prometheus_shows_camera_up_and_last_frame_age(rclient: redis.Redis) -> None:
    report(rclient, "bkk-night-01", "online", frame_age_s=1.0)
    report(rclient, "walkway-01", "offline", frame_age_s=700)
    report(rclient, "stage-01", "online", age_s=600, frame_age_s=610)  # stale: down, whatever it said last
    metrics = EngineMetrics("engine-test")
    metrics.export_redis(rclient)  # the engine's periodic export hands over its Redis client
    text = generate_latest(metrics.registry).decode()
    assert 'cctv_camera_up{camera="bkk-night-01"} 1.0' in text
    assert 'cctv_camera_up{camera="walkway-01"} 0.0' in text
    assert 'cctv_camera_up{camera="stage-01"} 0.0' in text
    ages = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("cctv_camera_last_frame_age_seconds{")}
    assert 0.5 < ages["bkk-night-01"] < 30 and 690 < ages["walkway-01"] < 760 and ages["stage-01"] > 600
    metrics.export_redis(rclient)  # registered once: a second export must not raise a duplicate registration


def test_a_brief_reconnect_is_not_an_outage_on_either_surface(client: TestClient, rclient: redis.Redis) -> None:
    """One rule for both: a camera reconnecting for a few seconds counts as online in /api/health and is up in
    Prometheus; past the grace it is offline in both."""
    from pipeline.ingest.health import RECONNECT_GRACE_S

    for camera in CAMERAS:
        report(rclient, camera, "online")
    rclient.hset(health_key("walkway-01"), mapping={"status": "reconnecting", "status_since": f"{time.time() - 2:.3f}"})
    metrics = EngineMetrics("engine-test")
    metrics.export_redis(rclient)
    assert client.get("/api/health").json()["status"] == "ok"
    assert 'cctv_camera_up{camera="walkway-01"} 1.0' in generate_latest(metrics.registry).decode()
    rclient.hset(health_key("walkway-01"), "status_since", f"{time.time() - RECONNECT_GRACE_S - 5:.3f}")
    body = client.get("/api/health").json()
    assert body["status"] == "degraded" and body["cameras"]["offline"] == 1
    assert 'cctv_camera_up{camera="walkway-01"} 0.0' in generate_latest(metrics.registry).decode()
