"""A damaged stored watchlist entry is left out of the entry list and read as missing, never a crash."""

from __future__ import annotations

import redis

from pipeline.store import WatchlistStore, keys


def test_damaged_entries_are_skipped_in_the_list_and_missing_when_read(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = WatchlistStore(client)
    w = store.create_watchlist("plate", "stolen")
    good = store.put_entry(w["id"], {"plate": "1กอ5180", "reason": "stolen"})
    client.hset(keys.watchlist_entries(w["id"]), mapping={"bad-json": "{", "not-object": "[1]",
                                                                 "no-id": '{"plate": "x"}',
                                                                 "bad-utf8": b"\xff\xfe"})
    listed = store.list_entries(w["id"])
    assert [e["entry_id"] for e in listed] == [good["entry_id"]]
    assert store.get_entry(w["id"], "bad-json") is None
    assert store.get_entry(w["id"], "bad-utf8") is None
    assert store.get_entry(w["id"], good["entry_id"])["plate"] == good["plate"]
