"""Health hash layout in a real Redis, the stale flag, and the capped exponential backoff."""

from __future__ import annotations

import time

import redis

from pipeline.ingest.capture import backoff_delay
from pipeline.ingest.health import STALE_AFTER_S, health_key, read_camera_health, write_camera_health


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, 1.0, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(1, 0.5, 2.0) == 0.5 and backoff_delay(10, 0.5, 2.0) == 2.0


def test_health_round_trip_and_stale_flag(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    write_camera_health(client, "cam-b", {"status": "online", "input_fps": "25.00", "reconnects": 2, "last_error": ""})
    write_camera_health(client, "cam-a", {"status": "offline", "last_error": "stream ended: 404"})
    client.hset(health_key("cam-a"), "updated_at", f"{time.time() - STALE_AFTER_S - 5:.3f}")  # worker gone
    everything = read_camera_health(client)
    assert [h["camera_id"] for h in everything] == ["cam-a", "cam-b"]
    a, b = everything
    assert a["stale"] is True and a["status"] == "offline" and a["last_error"] == "stream ended: 404"
    assert b["stale"] is False and b["input_fps"] == 25.0 and b["reconnects"] == 2
    assert read_camera_health(client, "cam-b") == [b | {"updated_at": read_camera_health(client, "cam-b")[0]["updated_at"]}]
    assert read_camera_health(client, "never-seen") == []
