"""Fencing: a worker whose lease was taken cannot write for that camera; what it saw while it held the camera is
kept, even when it reaches Redis late from the spool, and nothing is stored twice. Real Redis, real spool."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from pipeline.cluster.fencing import MERGE_WINDOW_S, FencedEventStore, FencedPublisher, HandoverMerger
from pipeline.cluster.leases import LeaseStore, lease_key
from pipeline.engine.spool import EventSpool
from pipeline.engine.watchmatch import alert_id_for
from pipeline.events import Alert, PlateEvent
from pipeline.store import keys
from pipeline.store.codec import decode
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


def test_a_vehicle_in_view_at_the_hand_over_stays_one_event(client: redis.Redis, tmp_path: Path) -> None:
    """a published a vehicle (and its watchlist alert) before b took the camera; b's tracker sees the same
    vehicle as a new track: b's versions update a's event, its alert is a's alert, other plates stay b's own."""
    leases = LeaseStore(client)
    token_a = leases.acquire("cam", "w-a", 60_000)
    a = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-a", 1 << 20), {"cam": token_a}.get)
    seen = plate("cam", time.time() - 2, "1กข1234")
    seen = seen.model_copy(update={"confidence": 0.95})
    assert a.publish("plate", seen)
    a_alert = Alert(kind="plate", watchlist_id="wl", entry_id="e1", event_id=seen.event_id, camera_id="cam",
                    alert_id=alert_id_for(seen.event_id, "wl", "e1"))  # fmt: skip
    assert a.publish("alert", a_alert)
    elsewhere = plate("other-cam", time.time() - 2, "1กข1234")  # the same car on another camera: not a's
    assert a.publish("plate", elsewhere)
    token_b, issued_b = hand_over(client, "cam")

    merger = HandoverMerger(client)
    b = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-b", 1 << 20), {"cam": token_b}.get,
                        merger=merger)  # fmt: skip
    again = PlateEvent(camera_id="cam", track_id=7, started_at=issued_b + 0.5, ended_at=issued_b + 1,
                       frame_time=issued_b + 1, plate_text="1กข1234", confidence=0.8)  # fmt: skip
    assert b.publish("plate", again)
    b_alert = Alert(kind="plate", watchlist_id="wl", entry_id="e1", event_id=again.event_id, camera_id="cam",
                    alert_id=alert_id_for(again.event_id, "wl", "e1"))  # fmt: skip
    assert b.publish("alert", b_alert)
    later = again.model_copy(update={"version": 2, "ended_at": issued_b + 4, "confidence": 0.97,
                                     "frame_time": issued_b + 3})  # fmt: skip
    assert b.publish("plate", later)
    other = PlateEvent(camera_id="cam", track_id=8, started_at=issued_b + 1, ended_at=issued_b + 2,
                       frame_time=issued_b + 2, plate_text="7ขค5555", confidence=0.9)  # fmt: skip
    assert b.publish("plate", other)
    much_later = PlateEvent(camera_id="cam", track_id=9, started_at=issued_b + MERGE_WINDOW_S + 5,
                            ended_at=issued_b + MERGE_WINDOW_S + 6, frame_time=issued_b + MERGE_WINDOW_S + 6,
                            plate_text="1กข1234", confidence=0.9)  # the same car back a minute later: a new visit
    assert b.publish("plate", much_later)

    assert stored_ids(client) == {seen.event_id, elsewhere.event_id, other.event_id, much_later.event_id}
    assert merger.merged == 1
    records = {ev.event_id: ev for ev in (decode(PlateEvent, f) for _sid, f in client.xrange(keys.PLATE_STREAM))}
    assert client.xlen(keys.PLATE_STREAM) == 4  # one entry per event
    kept = records[seen.event_id]
    assert kept.version == 3 and kept.started_at == seen.started_at and kept.ended_at == issued_b + 4
    assert kept.confidence == 0.97  # b's later read was the better one
    assert client.xlen(keys.ALERT_STREAM) == 1  # b's alert for the vehicle is a's alert: raised once


def test_a_less_confident_read_after_the_hand_over_keeps_the_old_read(client: redis.Redis, tmp_path: Path) -> None:
    leases = LeaseStore(client)
    token_a = leases.acquire("cam", "w-a", 60_000)
    a = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-a", 1 << 20), {"cam": token_a}.get)
    seen = plate("cam", time.time() - 2).model_copy(update={"confidence": 0.95, "snapshot_path": "a.jpg"})
    assert a.publish("plate", seen)
    token_b, issued_b = hand_over(client, "cam")
    b = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-b", 1 << 20), {"cam": token_b}.get,
                        merger=HandoverMerger(client))  # fmt: skip
    again = PlateEvent(camera_id="cam", track_id=3, started_at=issued_b + 0.2, ended_at=issued_b + 2,
                       frame_time=issued_b + 1, plate_text=seen.plate_text, confidence=0.6, snapshot_path="b.jpg")
    assert b.publish("plate", again)
    (_sid, fields), = client.xrange(keys.PLATE_STREAM)
    kept = decode(PlateEvent, fields)
    assert (kept.event_id, kept.version, kept.confidence, kept.snapshot_path, kept.ended_at) == (
        seen.event_id, 2, 0.95, "a.jpg", issued_b + 2)


def test_a_read_one_character_off_is_the_same_vehicle_two_are_not(client: redis.Redis, tmp_path: Path) -> None:
    leases = LeaseStore(client)
    token_a = leases.acquire("cam", "w-a", 60_000)
    a = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-a", 1 << 20), {"cam": token_a}.get)
    seen = plate("cam", time.time() - 2, "1กข1234")
    assert a.publish("plate", seen)
    token_b, issued_b = hand_over(client, "cam")
    b = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-b", 1 << 20), {"cam": token_b}.get,
                        merger=HandoverMerger(client))  # fmt: skip

    def track(text: str, n: int) -> PlateEvent:
        return PlateEvent(camera_id="cam", track_id=n, started_at=issued_b + 0.2 * n, ended_at=issued_b + 2,
                          frame_time=issued_b + 1, plate_text=text, confidence=0.9)  # fmt: skip

    off_by_one, far = track("1กข1284", 1), track("1กข5678", 2)
    assert b.publish("plate", off_by_one) and b.publish("plate", far)
    assert stored_ids(client) == {seen.event_id, far.event_id}  # 1234 / 1284: one vehicle; 5678: another
