"""Scheduled event retention: index upkeep after the stream cap and deletion by age (real redis-server)."""

from __future__ import annotations

import json
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


def test_alerts_trimmed_by_the_stream_cap_leave_the_dedup_index_and_the_acks(redis_url: str) -> None:
    """``alerts:idx`` (one entry per alert ever raised, for idempotency) and ``alerts:acks`` grew without bound
    while the alert stream is capped: the retention pass now drops the entries of alerts the cap trimmed, keeps the
    rest (and an index entry that is not a stream id: never taken as older), and a trimmed alert's index entry is
    what let a replay store it again only after it left the stream."""
    from pipeline.events import Alert

    client = redis.Redis.from_url(redis_url)
    store = EventStore(client)
    alerts = [Alert(kind="plate", watchlist_id="w1", entry_id=f"e{i}", event_id=f"ev{i}", camera_id="cam",
                    severity="high", label="1กข1234", reason="stolen") for i in range(12)]
    for alert in alerts:
        assert store.publish_alert(alert)
    for alert in (alerts[0], alerts[11]):
        client.hset(keys.ALERT_ACKS, alert.alert_id, json.dumps({"by": "op", "note": "seen", "at": 1.0}))
    client.hset(keys.ALERT_INDEX, "damaged", "not-a-stream-id")
    client.xtrim(keys.ALERT_STREAM, maxlen=5, approximate=False)  # what the MAXLEN cap does to a long stream

    stats = prune_events(client, parse_config(CONFIG.format(days=0)))
    assert stats["alerts_unindexed"] == 7
    assert set(client.hkeys(keys.ALERT_INDEX)) == {a.alert_id.encode() for a in alerts[7:]} | {b"damaged"}
    assert client.hkeys(keys.ALERT_ACKS) == [alerts[11].alert_id.encode()]
    assert not store.publish_alert(alerts[11])  # kept alerts stay de-duplicated
    assert prune_events(client, parse_config(CONFIG.format(days=0)))["alerts_unindexed"] == 0
