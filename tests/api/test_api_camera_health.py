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
                    "cameras": {"total": 3, "online": 1, "offline": 1, "stale": 1, "unknown": 0,
                                "recording_failed": 0}, "clock_skewed_hosts": 0, "webhook_dead_letters": 0}
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
                    "cameras": {"total": 3, "online": 3, "offline": 0, "stale": 0, "unknown": 0,
                                "recording_failed": 0}, "clock_skewed_hosts": 0, "webhook_dead_letters": 0}


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
    assert r.json() == {"status": "down", "redis": False, "cameras": None, "clock_skewed_hosts": 0, "webhook_dead_letters": 0}


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
    Prometheus; once its last frame is older than the grace it is offline in both."""
    from pipeline.ingest.health import RECONNECT_GRACE_S

    for camera in CAMERAS:
        report(rclient, camera, "online")
    rclient.hset(health_key("walkway-01"), mapping={"status": "reconnecting", "status_since": f"{time.time() - 2:.3f}"})
    metrics = EngineMetrics("engine-test")
    metrics.export_redis(rclient)
    assert client.get("/api/health").json()["status"] == "ok"
    assert 'cctv_camera_up{camera="walkway-01"} 1.0' in generate_latest(metrics.registry).decode()
    rclient.hset(health_key("walkway-01"), mapping={"status_since": f"{time.time() - RECONNECT_GRACE_S - 5:.3f}",
                                                    "last_frame_time": f"{time.time() - RECONNECT_GRACE_S - 6:.3f}"})
    body = client.get("/api/health").json()
    assert body["status"] == "degraded" and body["cameras"]["offline"] == 1
    assert 'cctv_camera_up{camera="walkway-01"} 0.0' in generate_latest(metrics.registry).decode()


def _metric(text: str, name: str) -> dict[str, float]:
    """Samples of one per-camera gauge family in a Prometheus exposition text, by camera."""
    return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(name + "{")}


def test_a_camera_whose_recording_failed_degrades_health_and_shows_in_prometheus(client: TestClient,
                                                                                 rclient: redis.Redis) -> None:
    """A full disk stops recording while analysis goes on (status online): /api/health counts the camera under
    ``recording_failed`` and says degraded (still 200, no names); ``cctv_camera_recording`` is 0 for it, 1 for the
    recording ones, absent for a camera whose recording is disabled."""
    for camera in CAMERAS:
        report(rclient, camera, "online")
        rclient.hset(health_key(camera), "recording", "on")
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["cameras"]["recording_failed"] == 0
    rclient.hset(health_key("walkway-01"), mapping={"recording": "failed",
                                                    "recording_error": "disk full (No space left on device)"})
    report(rclient, "unrecorded-cam", "online")  # not in cameras.yaml: Prometheus only
    rclient.hset(health_key("unrecorded-cam"), "recording", "disabled")
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "degraded", "redis": True,
                        "cameras": {"total": 3, "online": 3, "offline": 0, "stale": 0, "unknown": 0,
                                    "recording_failed": 1}, "clock_skewed_hosts": 0, "webhook_dead_letters": 0}
    assert not any(camera in r.text for camera in CAMERAS)
    metrics = EngineMetrics("engine-test")
    metrics.export_redis(rclient)
    recording = _metric(generate_latest(metrics.registry).decode(), "cctv_camera_recording")
    assert recording == {"bkk-night-01": 1.0, "walkway-01": 0.0, "stage-01": 1.0}  # disabled: absent
    rclient.hset(health_key("walkway-01"), mapping={"recording": "on", "recording_error": ""})  # space again
    assert client.get("/api/health").json()["status"] == "ok"
    assert _metric(generate_latest(metrics.registry).decode(), "cctv_camera_recording")["walkway-01"] == 1.0


def test_a_refused_connection_within_the_grace_is_not_an_outage_but_a_refused_login_is(client: TestClient,
                                                                                      rclient: redis.Redis) -> None:
    """The worker says ``offline`` after three refused connections (3-4 s of back-off): while its last frame is
    younger than RECONNECT_GRACE_S the camera still counts as online on both surfaces; a refused login does not,
    nor a camera that was never online, nor one whose last frame is older than the grace."""
    from pipeline.ingest.health import RECONNECT_GRACE_S

    for camera in CAMERAS:
        report(rclient, camera, "online")
    now = time.time()
    rclient.hset(health_key("walkway-01"), mapping={
        "status": "offline", "status_since": f"{now - 1:.3f}", "last_frame_time": f"{now - 4:.3f}",
        "last_error": "ffmpeg ended (code 1): Connection refused", "last_error_time": f"{now - 1:.3f}"})
    metrics = EngineMetrics("engine-test")
    metrics.export_redis(rclient)
    assert client.get("/api/health").json()["status"] == "ok"
    assert _metric(generate_latest(metrics.registry).decode(), "cctv_camera_up")["walkway-01"] == 1.0
    rclient.hset(health_key("walkway-01"), mapping={  # the camera refuses the login: no outage to wait out
        "last_error": "401 Unauthorized: check the camera's user and password (rtsp://u:***@h/x)",
        "last_error_time": f"{now - 1:.3f}"})
    body = client.get("/api/health").json()
    assert body["status"] == "degraded" and body["cameras"]["offline"] == 1
    assert _metric(generate_latest(metrics.registry).decode(), "cctv_camera_up")["walkway-01"] == 0.0
    rclient.hset(health_key("walkway-01"), mapping={"last_error": "Connection refused",
                                                    "last_frame_time": f"{now - RECONNECT_GRACE_S - 1:.3f}"})
    body = client.get("/api/health").json()
    assert body["status"] == "degraded" and body["cameras"]["offline"] == 1
    rclient.hset(health_key("walkway-01"), mapping={"status": "reconnecting", "last_frame_time": "0.000"})
    assert client.get("/api/health").json()["cameras"]["offline"] == 1  # never online: no grace


def test_camera_state_grace_follows_the_last_frame_whatever_the_status() -> None:
    """The rule itself, on hashes as read_camera_health returns them."""
    from pipeline.ingest.health import RECONNECT_GRACE_S, camera_state

    now = 1_000_000.0

    def record(status: str, frame_age: float | None, error: str = "Connection refused") -> dict:
        return {"status": status, "stale": False, "status_since": now - 2,
                "last_frame_time": None if frame_age is None else now - frame_age,
                "last_error": error, "last_error_time": now - 1}

    for status in ("reconnecting", "offline", "connecting"):
        assert camera_state(record(status, 3.0), now) == "online", status
        assert camera_state(record(status, RECONNECT_GRACE_S + 1), now) == "offline", status
        assert camera_state(record(status, None), now) == "offline", status
        assert camera_state(record(status, 3.0, "403 Forbidden: the camera refused this user"), now) == "offline"
    assert camera_state(record("stopped", 3.0), now) == "offline"
    record_only = {**record("offline", None), "last_segment_end": now - 3}  # no analysis frames, segments
    assert camera_state(record_only, now) == "online"
    assert camera_state({**record_only, "last_segment_end": now - RECONNECT_GRACE_S - 1}, now) == "offline"
    assert camera_state({**record("offline", 3.0), "stale": True}, now) == "stale"
