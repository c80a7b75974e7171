"""WatchlistStore: paused (disabled) entries, legacy entries without the flag, and entry counts without reading
the entries (real Redis)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis

from pipeline.store import WatchlistStore, keys

pytestmark = pytest.mark.timeout(60)


def _store(redis_url: str) -> WatchlistStore:
    return WatchlistStore(redis.Redis.from_url(redis_url))


def test_disabled_plate_and_face_entries_are_not_handed_to_the_engine(redis_url: str) -> None:
    wl = _store(redis_url)
    plates = wl.create_watchlist("plate", "wanted")
    paused = wl.put_entry(plates["id"], {"plate": "1กข1234", "enabled": False})
    active = wl.put_entry(plates["id"], {"plate": "2กข1234", "enabled": True})
    person = wl.create_person("P", np.ones((1, 8)))
    faces = wl.create_watchlist("face", "vip")
    wl.put_entry(faces["id"], {"person_id": person["id"], "threshold": 0.5, "enabled": False})
    assert [e.entry_id for e in wl.plate_entries()] == [active["entry_id"]]
    assert wl.face_entries() == []
    # a paused entry is still stored and listed with its state; resuming it makes it active again
    assert {e["entry_id"]: e["enabled"] for e in wl.list_entries(plates["id"])} == {
        paused["entry_id"]: False, active["entry_id"]: True}
    wl.update_entry(plates["id"], paused["entry_id"], {"enabled": True})
    wl.update_entry(faces["id"], person["id"], {"enabled": True})
    assert sorted(e.entry_id for e in wl.plate_entries()) == sorted([paused["entry_id"], active["entry_id"]])
    assert [e.person_id for e in wl.face_entries()] == [person["id"]]


def test_entries_stored_before_the_flag_existed_count_as_enabled(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    wl = WatchlistStore(client)
    plates = wl.create_watchlist("plate", "old")
    for entry_id, extra in (("no-field", {}), ("null", {"enabled": None})):
        client.hset(keys.watchlist_entries(plates["id"]), entry_id,
                    json.dumps({"entry_id": entry_id, "plate": "1กข1234", **extra}))
    assert sorted(e.entry_id for e in wl.plate_entries()) == ["no-field", "null"]


def test_entry_counts_use_hlen_and_survive_a_damaged_entry(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    wl = WatchlistStore(client)
    a = wl.create_watchlist("plate", "a")
    b = wl.create_watchlist("plate", "b")
    wl.put_entry(a["id"], {"plate": "1กข1234"})
    wl.put_entry(a["id"], {"plate": "1กข1235", "enabled": False})
    client.hset(keys.watchlist_entries(a["id"]), "damaged", b"\xff not json")
    assert wl.entry_counts([a["id"], b["id"]]) == {a["id"]: 3, b["id"]: 0}
    assert wl.entry_counts([]) == {}
