"""Pausing and resuming watchlist entries over the API (PATCH ``enabled``), listing their state, entries stored
before the flag existed, and watchlist entry counts that do not read the entries (real Redis)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.store import WatchlistStore, keys

pytestmark = pytest.mark.timeout(120)


def _plate_list(client: TestClient, adm: dict, **fields: object) -> tuple[str, dict]:
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กข1234", **fields})
    assert r.status_code == 201, r.text
    return wid, r.json()


def test_patch_enabled_pauses_and_resumes_an_entry(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid, entry = _plate_list(client, adm)
    assert entry["enabled"] is True
    wl = WatchlistStore(rclient)
    version = wl.version()
    url = f"/api/watchlists/{wid}/entries/{entry['entry_id']}"
    r = client.patch(url, headers=adm, json={"enabled": False})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False and wl.version() == version + 1
    assert wl.plate_entries() == []  # the engine no longer matches it
    [listed] = client.get(f"/api/watchlists/{wid}/entries", headers=tokens["inv"]).json()
    assert listed["entry_id"] == entry["entry_id"] and listed["enabled"] is False
    assert client.get(f"/api/watchlists/{wid}", headers=adm).json()["entries"] == 1  # kept
    [rec] = client.get("/api/audit?action=watchlist_entry_update", headers=adm).json()
    assert rec["params"]["changes"] == {"enabled": False} and rec["params"]["before"] == {"enabled": True}
    r = client.patch(url, headers=adm, json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True
    assert [e.entry_id for e in wl.plate_entries()] == [entry["entry_id"]]


def test_an_entry_can_be_created_paused_and_a_person_entry_paused(client: TestClient, tokens: dict,
                                                                  rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid, entry = _plate_list(client, adm, enabled=False)
    assert entry["enabled"] is False and WatchlistStore(rclient).plate_entries() == []
    wl = WatchlistStore(rclient)
    person = wl.create_person("P", np.ones((1, 8)))
    fid = client.post("/api/watchlists", headers=adm, json={"kind": "face", "name": "vip"}).json()["id"]
    assert client.post(f"/api/watchlists/{fid}/persons", headers=adm, json={"person_id": person["id"]}).status_code == 201
    assert len(wl.face_entries()) == 1
    r = client.patch(f"/api/watchlists/{fid}/entries/{person['id']}", headers=adm, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and wl.face_entries() == []


def test_enabled_cannot_be_null_or_a_string(client: TestClient, tokens: dict) -> None:
    wid, entry = _plate_list(client, tokens["adm"])
    url = f"/api/watchlists/{wid}/entries/{entry['entry_id']}"
    for bad in (None, "sometimes"):
        r = client.patch(url, headers=tokens["adm"], json={"enabled": bad})
        assert r.status_code == 422 and "enabled" in r.text, r.text
    assert client.get(f"/api/watchlists/{wid}/entries", headers=tokens["adm"]).json()[0]["enabled"] is True


def test_an_entry_stored_before_the_flag_is_listed_enabled(client: TestClient, tokens: dict,
                                                           rclient: redis.Redis) -> None:
    wid, _ = _plate_list(client, tokens["adm"])
    rclient.hset(keys.watchlist_entries(wid), "legacy",
                 json.dumps({"entry_id": "legacy", "plate": "2กข1234", "created_at": 1.0}))
    listed = {e["entry_id"]: e for e in client.get(f"/api/watchlists/{wid}/entries", headers=tokens["adm"]).json()}
    assert listed["legacy"]["enabled"] is True
    r = client.patch(f"/api/watchlists/{wid}/entries/legacy", headers=tokens["adm"], json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False


def test_watchlist_counts_do_not_read_the_entries(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """A damaged entry record (not JSON) does not break the watchlist listing: entries are counted with HLEN."""
    wid, _ = _plate_list(client, tokens["adm"])
    rclient.hset(keys.watchlist_entries(wid), "damaged", b"\xff not json")
    for url in ("/api/watchlists", f"/api/watchlists/{wid}"):
        r = client.get(url, headers=tokens["inv"])
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out[0] if isinstance(out, list) else out)["entries"] == 2
