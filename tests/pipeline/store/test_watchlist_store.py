"""WatchlistStore against a real Redis: entries, expiry, persons, version bumps."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from pipeline.store import WatchlistStore

pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def store(redis_url: str) -> WatchlistStore:
    return WatchlistStore(redis.Redis.from_url(redis_url))


def test_plate_entries_active_only_and_version_bumps(store: WatchlistStore) -> None:
    v0 = store.version()
    wl = store.create_watchlist("plate", "stolen")
    store.put_entry(wl["id"], {"plate": "1กข 1234", "fuzzy": True, "max_distance": 1.0, "reason": "stolen",
                               "severity": "high", "cameras": ["cam1"], "expires_at": None})
    store.put_entry(wl["id"], {"plate": "2กข1234", "fuzzy": False, "max_distance": 0, "reason": "old",
                               "severity": "low", "cameras": None, "expires_at": 1.0})
    assert store.version() >= v0 + 3
    entries = store.plate_entries()
    assert [(e.plate, e.fuzzy, e.severity, e.cameras) for e in entries] == [("1กข1234", True, "high", ["cam1"])]
    v1 = store.version()
    assert store.delete_entry(wl["id"], entries[0].entry_id) and store.version() == v1 + 1
    assert store.plate_entries() == []


def test_face_entries_carry_normalised_embeddings(store: WatchlistStore) -> None:
    person = store.create_person("Somchai", np.array([[3.0, 4.0], [1.0, 0.0]]))
    wl = store.create_watchlist("face", "vip")
    store.put_entry(wl["id"], {"person_id": person["id"], "threshold": 0.5, "reason": "r", "severity": "critical"})
    (entry,) = store.face_entries()
    assert entry.person_id == person["id"] and entry.name == "Somchai" and entry.threshold == 0.5
    assert entry.embeddings.dtype == np.float32 and entry.embeddings.shape == (2, 2)
    assert np.allclose(entry.embeddings[0], [0.6, 0.8])
    assert store.delete_person(person["id"])
    assert store.face_entries() == [] and store.list_entries(wl["id"]) == []
    assert store.delete_watchlist(wl["id"]) and not store.delete_watchlist(wl["id"])


def test_an_entry_for_a_deleted_watchlist_is_refused_and_leaves_no_keys(store: WatchlistStore) -> None:
    """Deleted between the API's check and the write: the entry is refused (None, a 404) instead of recreating a
    watchlist hash with nothing but ``updated_at`` and an entries hash no watchlist lists."""
    from pipeline.store import keys

    wl = store.create_watchlist("plate", "gone")
    assert store.delete_watchlist(wl["id"])
    assert store.put_entry(wl["id"], {"plate": "กข1234", "fuzzy": False, "max_distance": 0}) is None
    assert not store.client.exists(keys.watchlist(wl["id"]), keys.watchlist_entries(wl["id"]))
    kept = store.create_watchlist("plate", "kept")
    entry = store.put_entry(kept["id"], {"plate": "กข 1234", "fuzzy": False, "max_distance": 0})
    assert entry is not None and store.get_entry(kept["id"], entry["entry_id"])["plate"] == "กข1234"
