"""Damaged records in Redis against the real store: one bad record must neither poison the writers (an error on
every retry, or a half-done script whose retry stores an event twice) nor hide the good records around it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import redis

from pipeline.events import FaceEvent, PlateEvent
from pipeline.store import EventStore, WatchlistStore, keys
from tests.pipeline.store.test_event_store import plate_event

pytestmark = pytest.mark.timeout(60)


def face_event(**kw) -> FaceEvent:
    base = dict(camera_id="cam1", track_id=1, started_at=100.0, ended_at=101.0, frame_time=100.5,
                quality=0.9, det_score=0.9, embedding=[1.0, 0.0])
    base.update(kw)
    return FaceEvent(**base)


@pytest.mark.parametrize("damaged", ["garbage", "", "x\t1กข1234\t1-1|1|0.9|1|1", "2\t1กข1234", "1\t\t",
                                     "1\t1กข1234\tnot-an-id|1|0.9|1|1"])
def test_plate_writer_replaces_a_damaged_events_entry_once(client: redis.Redis, damaged: str) -> None:
    store = EventStore(client)
    good, bad = plate_event(), plate_event(track_id=2)
    client.hset(keys.PLATE_EVENTS, bad.event_id, damaged)
    newer = bad.model_copy(update={"version": 3})
    for _ in range(3):  # the engine delivers again whatever failed
        results = store.publish_plate_events([good, newer])
    assert results == [False, False]  # stored by the first call, no-ops since
    assert client.xlen(keys.PLATE_STREAM) == 2  # each event once, not once per retry
    version, plate, member = client.hget(keys.PLATE_EVENTS, newer.event_id).decode().split("\t")
    assert (version, plate) == ("3", "1กข1234")
    assert member.encode() in client.zrange(keys.plate_sightings("1กข1234"), 0, -1)


@pytest.mark.parametrize("damaged", ["garbage", "1\tnot-an-id", "1\t"])
def test_face_writer_replaces_a_damaged_events_entry_once(client: redis.Redis, damaged: str) -> None:
    store = EventStore(client)
    good, bad = face_event(), face_event(track_id=2)
    client.hset(keys.FACE_EVENTS, bad.event_id, damaged)
    newer = bad.model_copy(update={"version": 2})
    for _ in range(3):
        store.publish_face_events([good, newer])
    assert client.xlen(keys.FACE_STREAM) == 2
    version, sid = client.hget(keys.FACE_EVENTS, newer.event_id).decode().split("\t")
    assert version == "2" and client.xrange(keys.FACE_STREAM, sid, sid)


def test_a_damaged_entry_still_blocks_an_older_version(client: redis.Redis) -> None:
    """An entry whose version is readable keeps idempotency even when the rest of it is damaged."""
    store = EventStore(client)
    event = plate_event(version=2)
    client.hset(keys.PLATE_EVENTS, event.event_id, "5\tjunk")
    assert store.publish_plate_event(event) is False
    assert client.xlen(keys.PLATE_STREAM) == 0


def test_prune_goes_past_a_damaged_events_entry(client: redis.Redis) -> None:
    store = EventStore(client)
    for n in range(20):
        store.publish_plate_event(plate_event(track_id=n, plate_text=f"{n}กข1234"))
        store.publish_face_event(face_event(track_id=n))
    client.hset(keys.PLATE_EVENTS, "damaged", "1\t9กข9999\tgarbage|1|0.9|1|1")
    client.hset(keys.FACE_EVENTS, "damaged", "1\tgarbage")
    stats = store.prune_before(4e9, count=5)  # every stored event is older than that
    assert stats["plate_events"] == 20 and stats["face_events"] == 20
    assert client.xlen(keys.PLATE_STREAM) == 0 and client.xlen(keys.FACE_STREAM) == 0
    assert client.zcard(keys.PLATE_LAST_SEEN) == 0
    assert client.hkeys(keys.PLATE_EVENTS) == [b"damaged"] and client.hkeys(keys.FACE_EVENTS) == [b"damaged"]


def test_a_damaged_plate_entry_hides_no_other_entry(client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    store = WatchlistStore(client)
    wl = store.create_watchlist("plate", "stolen")
    store.put_entry(wl["id"], {"plate": "1กข1234", "fuzzy": False, "max_distance": 0, "reason": "stolen",
                               "severity": "high", "cameras": None, "expires_at": None})
    entries = keys.watchlist_entries(wl["id"])
    client.hset(entries, mapping={"bad-json": "{not json", "not-object": "[1, 2]", "bad-utf8": b"\xff\xfe",
                                  "bad-type": '{"entry_id": "bad-type", "plate": 5, "severity": "nuclear"}',
                                  "bad-expiry": '{"entry_id": "bad-expiry", "plate": "X", "expires_at": "soon"}'})
    other = store.create_watchlist("plate", "second")
    client.hset(keys.watchlist(other["id"]), "created_at", "not a time")
    store.put_entry(other["id"], {"plate": "2กข1234", "fuzzy": True, "max_distance": 1.0, "reason": "r",
                                  "severity": "low", "cameras": ["cam1"], "expires_at": None})
    with caplog.at_level(logging.WARNING, logger="pipeline.store.watchlists"):
        plates = sorted(e.plate for e in store.plate_entries())
    assert plates == ["1กข1234", "2กข1234"]
    assert "bad-json" in caplog.text and "bad-type" in caplog.text


def test_a_damaged_person_hides_no_other_face_entry(client: redis.Redis) -> None:
    store = WatchlistStore(client)
    good = store.create_person("Somchai", np.array([[3.0, 4.0]]))
    odd = store.create_person("Odd", np.array([[1.0, 0.0]]))
    client.hset(keys.person(odd["id"]), "embeddings", b"\x00" * 10)  # not a whole number of float32 rows
    bad_dim = store.create_person("Dim", np.array([[1.0, 0.0]]))
    client.hset(keys.person(bad_dim["id"]), "dim", "two")
    wl = store.create_watchlist("face", "vip")
    for person in (good, odd, bad_dim):
        store.put_entry(wl["id"], {"person_id": person["id"], "threshold": 0.5, "reason": "r", "severity": "high"})
    client.hset(keys.watchlist_entries(wl["id"]), "no-person", '{"entry_id": "no-person", "threshold": 0.5}')
    (entry,) = store.face_entries()
    assert entry.person_id == good["id"] and np.allclose(entry.embeddings, [[0.6, 0.8]])
    assert store.get_person(odd["id"], with_embeddings=True)["embeddings"].size == 0


def test_a_deeply_nested_json_field_decodes_to_nothing(client: redis.Redis) -> None:
    """A hostile record whose JSON field nests deeper than the parser's recursion limit is skipped like any other
    unreadable record (a RecursionError escaped ``decode_or_none`` and failed the whole read)."""
    from pipeline.store.codec import decode_or_none

    store = EventStore(client)
    store.publish_plate_event(plate_event())
    (sid, fields), = client.xrange(keys.PLATE_STREAM)
    assert decode_or_none(PlateEvent, fields, sid) is not None
    depth = 100_000
    hostile = dict(fields) | {b"candidates": b"[" * depth + b"]" * depth}
    assert decode_or_none(PlateEvent, hostile, sid) is None
