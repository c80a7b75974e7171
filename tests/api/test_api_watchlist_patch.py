"""Editing watchlist entries in place: fields, plate re-normalisation, engine version bump, audit, refusals."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.store import WatchlistStore

pytestmark = pytest.mark.timeout(120)


def plate_list(client: TestClient, adm: dict, plate: str = "1กข1234") -> tuple[str, dict]:
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                    json={"plate": plate, "reason": "stolen", "severity": "medium", "cameras": ["walkway-01"],
                          "expires_at": 4_000_000_000})
    assert r.status_code == 201, r.text
    return wid, r.json()


def test_patch_changes_fields_in_place_and_bumps_version(client: TestClient, tokens: dict,
                                                         rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid, entry = plate_list(client, adm)
    wl = WatchlistStore(rclient)
    version = wl.version()
    url = f"/api/watchlists/{wid}/entries/{entry['entry_id']}"
    r = client.patch(url, headers=adm, json={"reason": "robbery 2567/9", "severity": "critical",
                                             "plate": "1กข 1235", "fuzzy": True, "max_distance": 0.6})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["entry_id"] == entry["entry_id"] and out["plate"] == "1กข1235"
    assert (out["reason"], out["severity"], out["fuzzy"], out["max_distance"]) == ("robbery 2567/9", "critical",
                                                                                   True, 0.6)
    assert out["cameras"] == ["walkway-01"] and out["created_at"] == entry["created_at"]
    assert out["updated_at"] > entry["updated_at"] and wl.version() == version + 1
    # the engine's reader sees the edited entry (and only it)
    [active] = wl.plate_entries()
    assert (active.entry_id, active.plate, active.severity, active.fuzzy) == (entry["entry_id"], "1กข1235",
                                                                              "critical", True)
    # explicit nulls: no expiry, every camera
    out = client.patch(url, headers=adm, json={"expires_at": None, "cameras": None}).json()
    assert out["expires_at"] is None and out["cameras"] is None and out["reason"] == "robbery 2567/9"
    listed = client.get(f"/api/watchlists/{wid}/entries", headers=adm).json()
    assert len(listed) == 1 and listed[0]["plate"] == "1กข1235" and listed[0]["cameras"] is None
    # an expiry in the past is refused; one just passed (within the clock skew allowed) takes the entry out of
    # the engine's active entries at once
    assert client.patch(url, headers=adm, json={"expires_at": 1000.0}).status_code == 422
    assert client.patch(url, headers=adm, json={"expires_at": time.time() - 5}).status_code == 200
    assert wl.plate_entries() == []


def test_patch_is_audited_with_previous_values(client: TestClient, tokens: dict) -> None:
    wid, entry = plate_list(client, tokens["adm"])
    client.patch(f"/api/watchlists/{wid}/entries/{entry['entry_id']}", headers=tokens["adm"],
                 json={"severity": "high", "plate": "1กข9999"})
    [rec] = client.get("/api/audit?action=watchlist_entry_update", headers=tokens["adm"]).json()
    assert rec["user"] == "adm" and rec["params"]["entry_id"] == entry["entry_id"]
    assert rec["params"]["changes"] == {"severity": "high", "plate": "1กข9999"}
    assert rec["params"]["before"] == {"severity": "medium", "plate": "1กข1234"}


def test_patch_refusals_name_the_field_and_keep_the_entry(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid, entry = plate_list(client, adm)
    url = f"/api/watchlists/{wid}/entries/{entry['entry_id']}"
    cases = [({"reason": None}, "reason"), ({"severity": "urgent"}, "severity"), ({"threshold": 0.5}, "threshold"),
             ({"plate": "- . -"}, "plate"), ({"cameras": ["no-such-cam"]}, "cameras[0]"),
             ({"max_distance": 5}, "max_distance"), ({"colour": "red"}, "colour"), ({}, "request")]
    for body, name in cases:
        r = client.patch(url, headers=adm, json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith(name), (body, r.text)
    after = client.get(f"/api/watchlists/{wid}/entries", headers=adm).json()
    assert [(e["plate"], e["reason"], e["updated_at"]) for e in after] == [("1กข1234", "stolen", entry["updated_at"])]
    assert client.patch(f"/api/watchlists/nope/entries/{entry['entry_id']}", headers=adm,
                        json={"reason": "x"}).status_code == 404
    r = client.patch(f"/api/watchlists/{wid}/entries/nope", headers=adm, json={"reason": "x"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    for who in ("op", "inv"):
        assert client.patch(url, headers=tokens[who], json={"reason": "x"}).status_code == 403
    assert client.patch(url, json={"reason": "x"}).status_code == 401


def test_patch_person_entry(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wl = WatchlistStore(rclient)
    person = wl.create_person("Somchai", np.random.default_rng(1).normal(size=(2, 512)).astype(np.float32))
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "face", "name": "missing"}).json()["id"]
    client.post(f"/api/watchlists/{wid}/persons", headers=adm, json={"person_id": person["id"], "threshold": 0.45})
    url = f"/api/watchlists/{wid}/entries/{person['id']}"
    r = client.patch(url, headers=adm, json={"threshold": 0.6, "reason": "missing since Monday"})
    assert r.status_code == 200 and r.json()["threshold"] == 0.6 and r.json()["person_id"] == person["id"]
    [active] = wl.face_entries()
    assert (active.threshold, active.reason) == (0.6, "missing since Monday")
    r = client.patch(url, headers=adm, json={"plate": "1กข1234"})
    assert r.status_code == 422 and r.json()["detail"].startswith("plate")


def test_add_plate_that_normalises_to_nothing_stores_nothing(client: TestClient, tokens: dict,
                                                             rclient: redis.Redis) -> None:
    wid = client.post("/api/watchlists", headers=tokens["adm"], json={"kind": "plate", "name": "x"}).json()["id"]
    version = WatchlistStore(rclient).version()
    r = client.post(f"/api/watchlists/{wid}/plates", headers=tokens["adm"], json={"plate": " . "})
    assert r.status_code == 422 and r.json()["detail"].startswith("plate")
    assert WatchlistStore(rclient).list_entries(wid) == [] and WatchlistStore(rclient).version() == version



def test_motorcycle_plates_are_accepted_added_and_patched(client: TestClient, tokens: dict,
                                                          rclient: redis.Redis) -> None:
    """Three-consonant and four-digit motorcycle registrations pass request validation and are stored canonical."""
    adm = tokens["adm"]
    wid, entry = plate_list(client, adm, plate="อคม 888")
    assert entry["plate"] == "อคม888"
    url = f"/api/watchlists/{wid}"
    added = {}
    for typed, canon in (("งบล 7970", "งบล7970"), ("1กช 4986", "1กช4986")):
        r = client.post(f"{url}/plates", headers=adm, json={"plate": typed, "severity": "high"})
        assert r.status_code == 201, r.text
        assert r.json()["plate"] == canon
        added[typed] = r.json()["entry_id"]
    # Thai digits normalise to the same registration: a duplicate of the entry just added
    r = client.post(f"{url}/plates", headers=adm, json={"plate": "๑กช๔๙๘๖", "severity": "high"})
    assert r.status_code == 409 and r.json()["entry_id"] == added["1กช 4986"], r.text
    r = client.patch(f"{url}/entries/{added['งบล 7970']}", headers=adm, json={"plate": "ยลม 7777"})
    assert r.status_code == 200, r.text
    assert r.json()["plate"] == "ยลม7777" and r.json()["entry_id"] == added["งบล 7970"]
    stored = sorted(e.plate for e in WatchlistStore(rclient).plate_entries())
    assert stored == sorted(["อคม888", "ยลม7777", "1กช4986"])
    listed = client.get(f"{url}/entries", headers=tokens["inv"]).json()
    assert sorted(e["plate"] for e in listed) == stored


def test_concurrent_change_is_not_overwritten(rclient: redis.Redis, redis_url: str) -> None:
    """An entry change racing with another write to the same watchlist is retried on the fresh state."""
    wl = WatchlistStore(rclient)
    wid = wl.create_watchlist("plate", "stolen")["id"]
    entry = wl.put_entry(wid, {"plate": "1กข1234", "reason": "stolen"})
    other = redis.Redis.from_url(redis_url)
    reads = []
    real_pipeline = rclient.pipeline

    def racing_pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        real_hget = pipe.hget

        def hget(key, field):
            value = real_hget(key, field)
            reads.append(value)
            if len(reads) == 1:  # another API worker edits the same entry between our read and our write
                changed = {**entry, "severity": "critical"}
                other.hset(key, field, json.dumps(changed, ensure_ascii=False))
            return value

        pipe.hget = hget
        return pipe

    rclient.pipeline = racing_pipeline
    try:
        before, after = wl.update_entry(wid, entry["entry_id"], {"reason": "robbery"})
    finally:
        rclient.pipeline = real_pipeline
        other.close()
    assert len(reads) == 2 and before["severity"] == "critical"
    stored = wl.get_entry(wid, entry["entry_id"])
    assert (stored["reason"], stored["severity"]) == ("robbery", "critical")
