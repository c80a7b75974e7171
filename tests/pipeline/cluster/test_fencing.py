"""Fencing: a worker whose lease was taken cannot write for that camera; what it saw while it held the camera is
kept, even when it reaches Redis late from the spool, and nothing is stored twice. Real Redis, real spool."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from pipeline.cluster.fencing import FencedEventStore, FencedPublisher
from pipeline.cluster.leases import LeaseStore, lease_key
from pipeline.engine.spool import EventSpool
from pipeline.events import Alert, PlateEvent
from pipeline.store import keys
from tests.conftest import RedisServer


def plate(camera_id: str, frame_time: float, text: str = "1กข1234") -> PlateEvent:
    return PlateEvent(camera_id=camera_id, track_id=1, started_at=frame_time - 1, ended_at=frame_time,
                      frame_time=frame_time, plate_text=text, confidence=0.9)  # fmt: skip


def stored_ids(client: redis.Redis) -> set[str]:
    return {k.decode() for k in client.hkeys(keys.PLATE_EVENTS)}


def hand_over(client: redis.Redis, camera_id: str) -> tuple[int, float]:
    """w-a's lease ran out (deleted here, as expiry would) and w-b took the camera: (b's token, when issued)."""
    leases = LeaseStore(client)
    client.delete(lease_key(camera_id))
    token = leases.acquire(camera_id, "w-b", 60_000)
    assert token is not None
    issued = leases.token_issued_at(camera_id, token)
    assert issued is not None
    return token, issued


def test_a_write_under_a_lost_lease_is_refused_atomically(client: redis.Redis) -> None:
    leases = LeaseStore(client)
    store = FencedEventStore(client)
    token_a = leases.acquire("cam", "w-a", 60_000)
    seen_by_a = time.time()
    first = plate("cam", seen_by_a)
    store.fence = ("cam", token_a, first.frame_time)
    assert store.publish_plate_event(first)
    token_b, issued_b = hand_over(client, "cam")
    assert token_b == token_a + 1

    late = plate("cam", issued_b + 0.5, "2ขค5678")  # a kept analysing after b took over (a cut-off worker)
    store.fence = ("cam", token_a, late.frame_time)
    assert not store.publish_plate_event(late)
    assert store.refused == 1 and late.event_id not in stored_ids(client)
    alert = Alert(kind="plate", watchlist_id="wl", entry_id="e", event_id=late.event_id, camera_id="cam")
    assert not store.publish_alert(alert)  # alerts are fenced the same way
    assert client.xlen(keys.ALERT_STREAM) == 0 and store.refused == 2

    spooled = plate("cam", issued_b - 0.5, "3คง9012")  # seen by a while it held the camera, delivered late
    store.fence = ("cam", token_a, spooled.frame_time)
    assert store.publish_plate_event(spooled)
    store.fence = ("cam", token_b + 3, time.time())  # a token that was never issued
    assert not store.publish_plate_event(plate("cam", time.time()))
    by_b = plate("cam", issued_b + 1, "4งจ3456")
    store.fence = ("cam", token_b, by_b.frame_time)
    assert store.publish_plate_event(by_b)
    store.fence = None  # one machine (role all): no fence, writes as before
    unfenced = plate("other-cam", time.time())
    assert store.publish_plate_event(unfenced)
    assert stored_ids(client) == {first.event_id, spooled.event_id, by_b.event_id, unfenced.event_id}
    assert store.refused == 3


def test_spooled_records_cross_a_hand_over_exactly_once(own_redis: RedisServer, tmp_path: Path) -> None:
    """Redis goes away while worker a publishes; meanwhile b takes the camera. When Redis is back, a's spool
    delivers what a saw before the hand-over, refuses what it saw after, and a second delivery stores nothing."""
    client = redis.Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=0.5)
    leases = LeaseStore(client)
    tokens = {"cam": leases.acquire("cam", "w-a", 60_000)}
    store = FencedEventStore(client)
    publisher = FencedPublisher(store, EventSpool(tmp_path / "spool", 1 << 20), tokens.get)
    before = [plate("cam", time.time(), f"1กข{1000 + i}") for i in range(3)]
    assert publisher.publish("plate", before[0])
    own_redis.kill()
    for event in before[1:]:
        assert not publisher.publish("plate", event)  # spooled on disk with a's token and capture time
    own_redis.start()
    token_b, issued_b = hand_over(client, "cam")
    after = plate("cam", issued_b + 0.2, "9ฮฮ9999")  # a did not notice and analysed one more frame
    assert not publisher.publish("plate", after)  # queued behind the spool, in order
    publisher.flush(force=True)
    assert publisher.pending == 0
    assert stored_ids(client) == {e.event_id for e in before}
    assert store.refused == 1
    by_b = plate("cam", issued_b + 1, "5จฉ1111")
    b_publisher = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-b", 1 << 20),
                                  {"cam": token_b}.get)  # fmt: skip
    assert b_publisher.publish("plate", by_b)
    for event in before:  # a crash between a write and its spool commit: the same record delivered again
        publisher.publish("plate", event)
    assert client.xlen(keys.PLATE_STREAM) == 4
    assert stored_ids(client) == {e.event_id for e in before} | {by_b.event_id}
    client.close()
