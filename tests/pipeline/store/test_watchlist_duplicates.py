"""The store refuses a plate entry that duplicates another of its watchlist (same registration and province)."""

from __future__ import annotations

import pytest
import redis

from pipeline.store import WatchlistStore
from pipeline.store.watchlists import DuplicateEntryError


def test_put_and_update_refuse_a_duplicate_plate_and_province(redis_url: str) -> None:
    store = WatchlistStore(redis.Redis.from_url(redis_url))
    w = store.create_watchlist("plate", "stolen")
    first = store.put_entry(w["id"], {"plate": "1กช4986", "reason": "stolen"})
    with pytest.raises(DuplicateEntryError) as caught:
        store.put_entry(w["id"], {"plate": "1 กช-4986"})
    assert caught.value.existing_id == first["entry_id"]
    # another province (or another watchlist) is another vehicle
    phuket = store.put_entry(w["id"], {"plate": "1กช4986", "province": "ภูเก็ต"})
    assert store.put_entry(store.create_watchlist("plate", "other")["id"], {"plate": "1กช4986"}) is not None
    with pytest.raises(DuplicateEntryError):
        store.put_entry(w["id"], {"plate": "1กช 4986 ภูเก็ต"})  # province typed with the plate
    with pytest.raises(DuplicateEntryError) as caught:
        store.update_entry(w["id"], phuket["entry_id"], {"province": None})
    assert caught.value.existing_id == first["entry_id"]
    assert store.get_entry(w["id"], phuket["entry_id"])["province"] == "ภูเก็ต"
    # an entry rewritten in place is not its own duplicate
    assert store.update_entry(w["id"], first["entry_id"], {"plate": "1กช4986", "reason": "x"}) is not None
    assert len(store.list_entries(w["id"])) == 2
