"""EventStore against a real Redis: atomic indexes, idempotent versions, stale index removal, alerts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis

from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store import EventStore, keys
from pipeline.store.codec import decode
from pipeline.store.plates import index_keys, series_keys

pytestmark = pytest.mark.timeout(60)


def plate_event(**kw) -> PlateEvent:
    base = dict(camera_id="cam1", track_id=1, started_at=100.0, ended_at=101.0, frame_time=100.5,
                plate_text="1กข1234", province="กรุงเทพมหานคร", confidence=0.9)
    base.update(kw)
    return PlateEvent(**base)


def test_plate_event_is_stored_and_indexed(client: redis.Redis) -> None:
    store = EventStore(client)
    event = plate_event()
    assert store.publish_plate_event(event) is True
    members = client.zrange(keys.plate_sightings("1กข1234"), 0, -1, withscores=True)
    assert len(members) == 1 and members[0][1] == pytest.approx(100.5)
    sid, camera, conf, vclass, province = members[0][0].decode().split("|")
    names = [client.hget(keys.PLATE_CODES_REVERSE, f"{kind}{code}").decode()
             for kind, code in (("c", camera), ("v", vclass), ("p", province))]
    assert conf == "0.900" and names == ["cam1", "car", "กรุงเทพมหานคร"]
    assert client.hget(keys.PLATE_CODES, "ccam1").decode() == camera
    assert len(members[0][0]) <= 64  # small sighting sets stay in Redis' compact listpack encoding
    assert client.object("encoding", keys.plate_sightings("1กข1234")) == b"listpack"
    (_, fields), = client.xrange(keys.PLATE_STREAM, sid, sid)
    assert decode(PlateEvent, fields) == event
    for key in index_keys("1กข1234"):
        assert client.sismember(key, "1กข1234"), key
    assert client.sismember(keys.plate_gram("1234"[:3]), "1กข1234")


def test_republishing_same_version_is_a_noop(client: redis.Redis) -> None:
    store = EventStore(client)
    event = plate_event()
    assert store.publish_plate_event(event)
    assert store.publish_plate_event(event) is False
    assert store.publish_plate_event(event.model_copy(update={"plate_text": "9ฮฮ9999"})) is False
    assert client.xlen(keys.PLATE_STREAM) == 1
    assert client.zcard(keys.plate_sightings("1กข1234")) == 1
    assert not client.exists(keys.plate_sightings("9ฮฮ9999"))


def test_higher_version_moves_indexes_without_stale_entries(client: redis.Redis) -> None:
    store = EventStore(client)
    first = plate_event(plate_text="1ขข1234", confidence=0.5)
    other = plate_event(plate_text="5กก5555")
    assert store.publish_plate_event(first) and store.publish_plate_event(other)
    better = first.model_copy(update={"version": 2, "plate_text": "1กข1234", "confidence": 0.95})
    assert store.publish_plate_event(better)
    assert client.xlen(keys.PLATE_STREAM) == 2  # old version's entry deleted
    assert not client.exists(keys.plate_sightings("1ขข1234"))
    assert client.zscore(keys.PLATE_LAST_SEEN, "1ขข1234") is None
    for key in index_keys("1ขข1234"):
        assert not client.sismember(key, "1ขข1234"), key
    assert client.zscore(keys.PLATE_LAST_SEEN, "1กข1234") == pytest.approx(100.5)
    member = client.zrange(keys.plate_sightings("1กข1234"), 0, -1)[0].decode()
    assert member.split("|")[2] == "0.950"
    sid = member.split("|")[0]
    (_, fields), = client.xrange(keys.PLATE_STREAM, sid, sid)
    assert decode(PlateEvent, fields).version == 2
    assert store.publish_plate_event(first) is False  # replaying the older version changes nothing


def test_plate_shared_by_two_events_keeps_index_when_one_moves(client: redis.Redis) -> None:
    store = EventStore(client)
    a, b = plate_event(plate_text="1กข1234"), plate_event(plate_text="1กข1234", camera_id="cam2")
    assert store.publish_plate_event(a) and store.publish_plate_event(b)
    assert store.publish_plate_event(a.model_copy(update={"version": 3, "plate_text": "2กข1234"}))
    assert client.zcard(keys.plate_sightings("1กข1234")) == 1
    assert all(client.sismember(k, "1กข1234") for k in index_keys("1กข1234"))


def test_plate_text_is_normalised(client: redis.Redis) -> None:
    EventStore(client).publish_plate_event(plate_event(plate_text=" 1กข 1234 "))
    assert client.exists(keys.plate_sightings("1กข1234"))


def test_stream_is_trimmed_to_maxlen(client: redis.Redis) -> None:
    store = EventStore(client, events_maxlen=100)
    for i in range(500):
        store.publish_plate_event(plate_event(plate_text=f"1กข{i:04d}"))
    assert client.xlen(keys.PLATE_STREAM) < 500


@pytest.mark.parametrize("plate", ["1กข1234", "กข12", "ฮฮฮ999", "701234", "AB12", "ก", "12", "ขขขข",
                                   "งบล7970", "1กช4986"])
def test_writer_script_indexes_the_keys_python_computes(client: redis.Redis, plate: str) -> None:
    """The Lua writer computes grams and folded one-deletion variants itself; they equal the Python ones."""
    EventStore(client).publish_plate_event(plate_event(plate_text=plate))
    written = {k.decode() for k in client.keys("plates:[gd]:*")}
    assert written == set(index_keys(plate))
    assert all(client.type(k) == b"set" for k in written)
    series = {k.decode() for k in client.keys(keys.SERIES_PREFIX + "*")}
    assert series == set(series_keys(plate))
    assert (series != set()) == any(not (a.isdigit() or b.isdigit())
                                    for a, b in zip(plate, plate[1:], strict=False))
    for key in series:  # time-ordered like plates:last
        assert client.zscore(key, plate) == client.zscore(keys.PLATE_LAST_SEEN, plate)
    if series:
        client.delete(*series)
    EventStore(client).rebuild_series_index()
    assert {k.decode() for k in client.keys(keys.SERIES_PREFIX + "*")} == series


def test_batch_publish_is_idempotent_and_ordered_within_the_batch(client: redis.Redis) -> None:
    store = EventStore(client)
    a = plate_event(plate_text="1กข1234")
    a2 = a.model_copy(update={"version": 2, "plate_text": "1กข1235"})
    b = plate_event(plate_text="2กข1234", camera_id="cam2", vehicle_class="truck", province=None)
    assert store.publish_plate_events([a, a2, a, b]) == [True, True, False, True]
    assert client.xlen(keys.PLATE_STREAM) == 2
    assert client.zscore(keys.PLATE_LAST_SEEN, "1กข1234") is None
    assert {m.decode() for m in client.zrange(keys.PLATE_LAST_SEEN, 0, -1)} == {"1กข1235", "2กข1234"}
    member = client.zrange(keys.plate_sightings("2กข1234"), 0, -1)[0].decode()
    assert member.endswith("|")  # no province: empty code
    assert client.hget(keys.PLATE_CODES_REVERSE, "v" + member.split("|")[3]) == b"truck"
    many = [plate_event(plate_text=f"3กข{i:04d}", track_id=i) for i in range(1200)]  # spans 3 script calls
    assert all(store.publish_plate_events(many))
    assert client.zcard(keys.PLATE_LAST_SEEN) == 1202


def test_last_seen_is_an_upper_bound_minus_slack(client: redis.Redis) -> None:
    """plates:last moves only when a sighting is more than the slack newer; the true last-seen stays within it."""
    store = EventStore(client)
    times = [1000.0, 1000.0 + keys.LAST_SEEN_SLACK_S / 2, 1000.0 + keys.LAST_SEEN_SLACK_S * 3, 500.0]
    for t in times:
        store.publish_plate_event(plate_event(frame_time=t))
        coarse = client.zscore(keys.PLATE_LAST_SEEN, "1กข1234")
        newest = client.zrevrange(keys.plate_sightings("1กข1234"), 0, 0, withscores=True)[0][1]
        assert coarse <= newest <= coarse + keys.LAST_SEEN_SLACK_S


def test_prune_before_removes_old_events_and_emptied_plates(client: redis.Redis) -> None:
    store = EventStore(client)
    old = [plate_event(plate_text="1กข1234"), plate_event(plate_text="9ฮฮ9999")]
    store.publish_plate_events(old)
    emb = np.ones(128, np.float32) / np.sqrt(128)
    face = FaceEvent(camera_id="cam1", track_id=2, started_at=1, ended_at=2, frame_time=1.5, embedding=emb.tolist(),
                     quality=0.8, det_score=0.9)
    store.publish_face_event(face)
    def now() -> float:
        sec, usec = client.time()
        return sec + usec / 1e6

    cutoff = now() + 0.002  # stream ids are Redis' clock in ms
    while now() <= cutoff + 0.002:
        pass
    recent = plate_event(plate_text="1กข1234", camera_id="cam9")
    store.publish_plate_event(recent)
    stats = store.prune_before(cutoff)
    assert stats == {"plate_events": 2, "plates_emptied": 1, "face_events": 1}
    assert client.xlen(keys.PLATE_STREAM) == 1 and client.xlen(keys.FACE_STREAM) == 0
    assert client.hkeys(keys.PLATE_EVENTS) == [recent.event_id.encode()]
    assert client.zcard(keys.plate_sightings("1กข1234")) == 1
    assert not client.exists(keys.plate_sightings("9ฮฮ9999"))
    assert client.zscore(keys.PLATE_LAST_SEEN, "9ฮฮ9999") is None
    for key in index_keys("9ฮฮ9999"):
        assert not client.sismember(key, "9ฮฮ9999"), key
    assert client.zscore(keys.plate_series("ฮฮ"), "9ฮฮ9999") is None
    assert all(client.sismember(k, "1กข1234") for k in index_keys("1กข1234"))
    assert client.hlen(keys.FACE_EVENTS) == 0
    assert store.prune_before(cutoff) == {"plate_events": 0, "plates_emptied": 0, "face_events": 0}


def test_prune_trimmed_cleans_index_entries_of_capped_records(client: redis.Redis) -> None:
    store = EventStore(client, events_maxlen=1000)
    events = [plate_event(plate_text=f"1กข{i:04d}", track_id=i) for i in range(3000)]
    store.publish_plate_events(events)
    kept = client.xlen(keys.PLATE_STREAM)
    assert kept < 3000 and client.hlen(keys.PLATE_EVENTS) == 3000  # the cap trimmed records, not the index
    stats = store.prune_trimmed()
    assert stats["plate_events"] == 3000 - kept and stats["plates_emptied"] == 3000 - kept
    assert client.hlen(keys.PLATE_EVENTS) == kept == client.zcard(keys.PLATE_LAST_SEEN)
    first = client.xrange(keys.PLATE_STREAM, count=1)[0][0].decode()
    for value in client.hvals(keys.PLATE_EVENTS):
        sid = value.decode().split("\t")[2].split("|")[0]
        assert tuple(map(int, sid.split("-"))) >= tuple(map(int, first.split("-")))
    assert store.prune_trimmed()["plate_events"] == 0


def test_face_event_roundtrip_and_versions(client: redis.Redis) -> None:
    store = EventStore(client)
    emb = np.random.default_rng(0).normal(size=128).astype(np.float32)
    emb /= np.linalg.norm(emb)
    event = FaceEvent(camera_id="cam1", track_id=2, started_at=1, ended_at=2, frame_time=1.5,
                      embedding=emb.tolist(), quality=0.8, det_score=0.9)
    assert store.publish_face_event(event) and not store.publish_face_event(event)
    (sid, fields), = client.xrange(keys.FACE_STREAM)
    assert len(fields[b"embedding"]) == 128 * 4
    assert np.allclose(decode(FaceEvent, fields).embedding_array(), emb)
    assert store.publish_face_event(event.model_copy(update={"version": 2, "quality": 0.9}))
    (sid2, fields2), = client.xrange(keys.FACE_STREAM)
    assert sid2 != sid and decode(FaceEvent, fields2).quality == 0.9


def test_alert_is_streamed_published_and_idempotent(client: redis.Redis) -> None:
    store = EventStore(client)
    pubsub = client.pubsub()
    pubsub.subscribe(keys.ALERT_CHANNEL)
    pubsub.get_message(timeout=1)
    alert = Alert(kind="plate", watchlist_id="w", entry_id="e", event_id="ev", camera_id="cam1", label="1กข1234")
    assert store.publish_alert(alert) and not store.publish_alert(alert)
    message = pubsub.get_message(timeout=2)
    body = json.loads(message["data"])
    assert body["alert"]["alert_id"] == alert.alert_id
    assert client.xlen(keys.ALERT_STREAM) == 1
    assert client.xrange(keys.ALERT_STREAM)[0][0].decode() == body["id"]
    assert pubsub.get_message(timeout=0.2) is None
    pubsub.close()


def test_malformed_face_records_decode_to_nothing_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    from pipeline.events import FaceEvent
    from pipeline.store import codec

    assert codec.embedding_from_fields({}).size == 0  # no embedding field
    assert codec.embedding_from_fields({b"embedding": b"\x00" * 5}).size == 0  # not whole float32 values
    good = np.arange(4, dtype="<f4")
    assert np.array_equal(codec.embedding_from_fields({b"embedding": good.tobytes()}), good)
    assert codec.decode_or_none(FaceEvent, {b"camera_id": b"c", b"embedding": b"\x00" * 5}, b"7-0") is None
    assert "unreadable FaceEvent record 7-0" in caplog.text
