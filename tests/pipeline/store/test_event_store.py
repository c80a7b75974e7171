"""EventStore against a real Redis: atomic indexes, idempotent versions, stale index removal, alerts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis

from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store import EventStore, keys
from pipeline.store.codec import decode
from pipeline.store.plates import index_keys

pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def client(redis_url: str) -> redis.Redis:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


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
    assert (camera, conf, vclass, province) == ("cam1", "0.900", "car", "กรุงเทพมหานคร")
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
    assert not client.sismember(keys.PLATE_DISTINCT, "1ขข1234")
    for key in index_keys("1ขข1234"):
        assert not client.sismember(key, "1ขข1234"), key
    assert client.sismember(keys.PLATE_DISTINCT, "1กข1234")
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
