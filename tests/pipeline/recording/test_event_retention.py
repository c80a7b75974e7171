"""Scheduled event retention: index upkeep after the stream cap and deletion by age (real redis-server)."""

from __future__ import annotations

import time

import redis

from pipeline.config import parse_config
from pipeline.events import PlateEvent
from pipeline.recording.retention import prune_events
from pipeline.store import EventStore, keys

CONFIG = """
engine:
  events_maxlen: 1000
  events_retention_days: {days}
cameras:
  - id: cam1
    name: gate
    url: rtsp://127.0.0.1:8554/x
"""


def _plates(n: int) -> list[PlateEvent]:
    return [PlateEvent(camera_id="cam1", track_id=i, started_at=1, ended_at=2, frame_time=1.5,
                       plate_text=f"1กข{i:04d}", confidence=0.9) for i in range(n)]


def test_prune_events_follows_the_cap_and_the_retention_days(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keep_forever = parse_config(CONFIG.format(days=0))
    EventStore(client, events_maxlen=1000).publish_plate_events(_plates(3000))
    kept = client.xlen(keys.PLATE_STREAM)
    assert client.hlen(keys.PLATE_EVENTS) == 3000 > kept
    stats = prune_events(client, keep_forever)
    assert stats["plate_events"] == 3000 - kept and client.hlen(keys.PLATE_EVENTS) == kept
    assert prune_events(client, keep_forever, now=time.time() + 10 * 86400)["plate_events"] == 0  # days: 0

    seven_days = parse_config(CONFIG.format(days=7))
    assert prune_events(client, seven_days)["plate_events"] == 0  # nothing is a week old yet
    stats = prune_events(client, seven_days, now=time.time() + 8 * 86400)  # eight days later
    assert stats["plate_events"] == kept
    assert client.xlen(keys.PLATE_STREAM) == 0 and client.hlen(keys.PLATE_EVENTS) == 0
    assert client.zcard(keys.PLATE_LAST_SEEN) == 0
