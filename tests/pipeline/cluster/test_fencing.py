"""Fencing: a worker whose lease was taken cannot write for that camera; what it saw while it held the camera is
kept, even when it reaches Redis late from the spool, and nothing is stored twice. Real Redis, real spool."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from pipeline.cluster.fencing import MERGE_HOLD_S, MERGE_WINDOW_S, FencedEventStore, FencedPublisher, HandoverMerger
from pipeline.cluster.leases import LeaseStore, lease_key
from pipeline.engine.spool import EventSpool
from pipeline.engine.watchmatch import alert_id_for
from pipeline.events import Alert, PlateCandidate, PlateEvent
from pipeline.store import keys
from pipeline.store.codec import decode
from tests.conftest import RedisServer


def plate(camera_id: str, frame_time: float, text: str = "1กข1234") -> PlateEvent:
    return PlateEvent(camera_id=camera_id, track_id=1, started_at=frame_time - 1, ended_at=frame_time,
                      frame_time=frame_time, plate_text=text, confidence=0.9)  # fmt: skip


class Clock:
    """A monotonic clock the test moves by hand (the merger's hold-back deadlines)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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

    clock = Clock()
    merger = HandoverMerger(client, clock=clock)
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
    assert not b.publish("plate", other)  # may still read as a's plate: held back for a few seconds
    assert other.event_id not in stored_ids(client)
    clock.now += MERGE_HOLD_S
    b.flush()
    assert other.event_id in stored_ids(client) and merger.released == 1
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
    assert b.publish("plate", off_by_one)
    assert not b.publish("plate", far)  # held back: its read may still change
    b.flush(force=True)
    assert stored_ids(client) == {seen.event_id, far.event_id}  # 1234 / 1284: one vehicle; 5678: another


def handed_over_with(client: redis.Redis, tmp_path: Path, clock: Clock) -> tuple[PlateEvent, FencedPublisher, float]:
    """a published 1กข1234 on "cam" with a watchlist alert (entry e1), then b took the camera: (a's event, b's
    publisher with a merger on ``clock``, when b's token was issued)."""
    leases = LeaseStore(client)
    token_a = leases.acquire("cam", "w-a", 60_000)
    a = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-a", 1 << 20), {"cam": token_a}.get)
    seen = plate("cam", time.time() - 2, "1กข1234").model_copy(update={"confidence": 0.95})
    assert a.publish("plate", seen)
    assert a.publish("alert", watch_alert(seen, "e1"))
    token_b, issued_b = hand_over(client, "cam")
    b = FencedPublisher(FencedEventStore(client), EventSpool(tmp_path / "spool-b", 1 << 20), {"cam": token_b}.get,
                        merger=HandoverMerger(client, clock=clock))  # fmt: skip
    return seen, b, issued_b


def watch_alert(event: PlateEvent, entry_id: str) -> Alert:
    return Alert(kind="plate", watchlist_id="wl", entry_id=entry_id, event_id=event.event_id,
                 camera_id=event.camera_id, alert_id=alert_id_for(event.event_id, "wl", entry_id))  # fmt: skip


def b_track(issued_b: float, text: str, version: int = 1, **fields: object) -> PlateEvent:
    """Version ``version`` of b's track 5, begun half a second after b's token."""
    return PlateEvent(event_id="b-track-5", version=version, camera_id="cam", track_id=5, started_at=issued_b + 0.5,
                      ended_at=issued_b + 1 + version, frame_time=issued_b + version, plate_text=text,
                      confidence=0.8 if text else 0.0, **fields)  # fmt: skip


def stored(client: redis.Redis) -> dict[str, PlateEvent]:
    return {ev.event_id: ev for ev in (decode(PlateEvent, f) for _sid, f in client.xrange(keys.PLATE_STREAM))}


def alerts(client: redis.Redis) -> list[Alert]:
    import json

    return [Alert.model_validate(json.loads(f[b"alert"])) for _sid, f in client.xrange(keys.ALERT_STREAM)]


def test_a_track_whose_first_version_had_no_read_merges_at_a_later_one(client: redis.Redis, tmp_path: Path) -> None:
    """b's first version of the vehicle has no plate yet; its second reads one character off a's: one event, and
    b's alert for it is a's alert."""
    clock = Clock()
    seen, b, issued_b = handed_over_with(client, tmp_path, clock)
    assert not b.publish("plate", b_track(issued_b, ""))  # nothing to match by yet: held, nothing stored
    assert stored_ids(client) == {seen.event_id}
    clock.now += MERGE_HOLD_S / 2
    b.flush()
    assert stored_ids(client) == {seen.event_id}  # still within the hold
    second = b_track(issued_b, "1กข1284", version=2)
    assert b.publish("plate", second)
    assert b.publish("alert", watch_alert(second, "e1"))
    clock.now += MERGE_HOLD_S
    b.flush()
    third = b_track(issued_b, "1กข1284", version=3).model_copy(update={"confidence": 0.97})
    assert b.publish("plate", third)
    records = stored(client)
    assert set(records) == {seen.event_id} and client.xlen(keys.PLATE_STREAM) == 1
    kept = records[seen.event_id]
    assert (kept.version, kept.plate_text, kept.started_at, kept.ended_at) == (
        3, "1กข1284", seen.started_at, third.ended_at)  # b's later, more confident read; a's start
    assert [(a.event_id, a.alert_id) for a in alerts(client)] == [(seen.event_id, alert_id_for(seen.event_id, "wl",
                                                                                                "e1"))]


def test_alerts_held_with_a_track_follow_it_onto_the_merged_event(client: redis.Redis, tmp_path: Path) -> None:
    """b's first read is two characters off (not merged) and raised an alert of another watchlist entry; a
    later version lists a's plate among its alternative reads: the track and its held alert go onto a's event."""
    clock = Clock()
    seen, b, issued_b = handed_over_with(client, tmp_path, clock)
    first = b_track(issued_b, "1กข1884")
    assert not b.publish("plate", first)
    assert not b.publish("alert", watch_alert(first, "e2"))  # held with its track
    assert len(alerts(client)) == 1
    second = b_track(issued_b, "1กข1884", version=2, candidates=[PlateCandidate(text="1กข1884", score=0.5),
                                                                 PlateCandidate(text="1กข1234", score=0.4)])
    assert b.publish("plate", second)
    assert set(stored(client)) == {seen.event_id}
    assert {(a.entry_id, a.event_id, a.alert_id) for a in alerts(client)} == {
        (entry, seen.event_id, alert_id_for(seen.event_id, "wl", entry)) for entry in ("e1", "e2")}
    b.flush(force=True)
    assert set(stored(client)) == {seen.event_id} and len(alerts(client)) == 2


def test_another_vehicle_after_the_hand_over_stays_its_own_event(client: redis.Redis, tmp_path: Path) -> None:
    """A plate far from a's is published as b's own event with its own alert once its hold is up (or at once when
    its read settled); a track released as its own is never merged afterwards."""
    clock = Clock()
    seen, b, issued_b = handed_over_with(client, tmp_path, clock)
    other = b_track(issued_b, "7ขค5555")
    assert not b.publish("plate", other)
    assert not b.publish("alert", watch_alert(other, "e3"))
    clock.now += MERGE_HOLD_S - 0.5
    b.flush()
    assert stored_ids(client) == {seen.event_id}
    clock.now += 0.5
    b.flush()
    assert stored_ids(client) == {seen.event_id, other.event_id}
    assert {(a.event_id, a.entry_id) for a in alerts(client)} == {(seen.event_id, "e1"), (other.event_id, "e3")}
    later = b_track(issued_b, "1กข1234", version=2)  # released as its own: a later read no longer joins a's event
    assert b.publish("plate", later)
    assert stored(client)[other.event_id].version == 2 and stored(client)[seen.event_id].version == 1

    settled = PlateEvent(camera_id="cam", track_id=6, started_at=issued_b + 2, ended_at=issued_b + 3,
                         frame_time=issued_b + 3, plate_text="2คง4321", confidence=0.9, agreeing_frames=3)
    assert b.publish("plate", settled)  # a settled read matching nothing: not held
    first_holder = PlateEvent(camera_id="new-cam", track_id=1, started_at=time.time(), ended_at=time.time(),
                              frame_time=time.time(), plate_text="", confidence=0.0)  # fmt: skip
    LeaseStore(client).acquire("new-cam", "w-b", 60_000)
    b.fence_for = {"cam": b.fence_for("cam"), "new-cam": 1}.get
    assert b.publish("plate", first_holder)  # a camera nobody held before: nothing to merge with, never held
    assert b.merger is not None and b.merger.merged == 0 and b.merger.holding == 0


def test_the_merger_remembers_a_bounded_number_of_merged_tracks(client: redis.Redis, tmp_path: Path,
                                                                 monkeypatch: object) -> None:
    """A long-running worker merges a track at every hand-over: what the merger keeps per merged track (its target
    and the target's version counter) is bounded, the oldest dropped first; the newest still merges."""
    import pipeline.cluster.fencing as fencing

    monkeypatch.setattr(fencing, "MERGED_KEPT", 2)  # type: ignore[attr-defined]
    seen, b, issued_b = handed_over_with(client, tmp_path, Clock())
    merger = b.merger
    assert merger is not None
    for track in range(5):
        event = b_track(issued_b, "1กข1234").model_copy(update={"event_id": f"b-track-{track}", "track_id": track})
        assert b.publish("plate", event)
    assert merger.merged == 5
    assert len(merger._targets) == 2 and set(merger._targets) == {"b-track-3", "b-track-4"}
    assert len(merger._next_version) == 1  # one target: a's event
    assert stored_ids(client) == {seen.event_id}


class CountingClient:
    """The real Redis client, counting the sightings look-ups the merger makes (one per plate it tries)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.sighting_lookups = 0

    def zrevrangebyscore(self, *args: object, **kwargs: object) -> object:
        self.sighting_lookups += 1
        return self._client.zrevrangebyscore(*args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)


def test_an_alternative_read_merges_only_exactly_and_reads_are_looked_up_once(client: redis.Redis,
                                                                               tmp_path: Path) -> None:
    """An alternative read one character off a's plate does not merge (a weak alternative of another vehicle must
    not make it disappear into a's event); a read already looked up is not looked up again at the next version."""
    clock = Clock()
    seen, b, issued_b = handed_over_with(client, tmp_path, clock)
    assert b.merger is not None
    counting = CountingClient(client)
    b.merger.client = counting
    near = [PlateCandidate(text="7ขค5555", score=0.6), PlateCandidate(text="1กข1284", score=0.1)]
    assert not b.publish("plate", b_track(issued_b, "7ขค5555", candidates=near))
    first = counting.sighting_lookups
    assert first >= 2  # the voted read and the alternative
    assert not b.publish("plate", b_track(issued_b, "7ขค5555", version=2, candidates=near))
    assert counting.sighting_lookups == first  # nothing new to look up
    clock.now += MERGE_HOLD_S
    b.flush()
    assert stored_ids(client) == {seen.event_id, "b-track-5"} and b.merger.merged == 0


def test_a_failing_merge_look_up_leaves_the_track_unmatched_not_lost(client: redis.Redis, tmp_path: Path) -> None:
    """Whatever goes wrong in the look-up (here a stored event that does not decode), the track is held and then
    published as its own event; publishing never raises."""
    clock = Clock()
    seen, b, issued_b = handed_over_with(client, tmp_path, clock)
    assert b.merger is not None

    def broken(*_args: object) -> None:
        raise KeyError("plate_text")

    b.merger._old_event = broken  # type: ignore[method-assign]
    assert not b.publish("plate", b_track(issued_b, "1กข1234"))
    clock.now += MERGE_HOLD_S
    b.flush()
    assert stored_ids(client) == {seen.event_id, "b-track-5"}
