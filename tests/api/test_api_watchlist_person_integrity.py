"""Watchlist and person integrity: a person is on a face watchlist once (409), removals are audited with what was
removed, person updates never resurrect a deleted person, body person ids are checked like path ids, and names and
reasons refuse control and bidi-override characters."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.store import WatchlistStore
from pipeline.store.watchlists import UnknownPersonError

pytestmark = pytest.mark.timeout(600)

RLO = "\u202e"
"""RIGHT-TO-LEFT OVERRIDE: shows what follows reversed."""


def lfw(shared: Path, person: str, i: int) -> bytes:
    return (shared / "data" / "faces_lfw" / "images" / person / f"{person}_{i:04d}.jpg").read_bytes()


def _person(rclient: redis.Redis, name: str = "Somchai", seed: int = 1) -> dict:
    return WatchlistStore(rclient).create_person(name, np.random.default_rng(seed).normal(size=(2, 512)))


def _face_list(client: TestClient, adm: dict, name: str = "missing") -> str:
    r = client.post("/api/watchlists", headers=adm, json={"kind": "face", "name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _audit(client: TestClient, adm: dict, action: str) -> list[dict]:
    return client.get(f"/api/audit?action={action}", headers=adm).json()


# -- 1. a person is on a face watchlist once -----------------------------------------------------------------------
def test_adding_a_person_again_is_refused_and_keeps_the_entry(client: TestClient, tokens: dict,
                                                              rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    person = _person(rclient)
    wid = _face_list(client, adm)
    url = f"/api/watchlists/{wid}/persons"
    first = client.post(url, headers=adm, json={"person_id": person["id"], "reason": "missing since Monday",
                                                "severity": "high", "cameras": ["walkway-01"]})
    assert first.status_code == 201, first.text
    version = WatchlistStore(rclient).version()
    again = client.post(url, headers=tokens["adm"], json={"person_id": person["id"], "reason": "overwritten",
                                                          "severity": "low"})
    assert again.status_code == 409, again.text
    assert again.json()["entry_id"] == person["id"] and again.json()["detail"].startswith("person_id")
    [kept] = client.get(f"/api/watchlists/{wid}/entries", headers=adm).json()
    assert kept == first.json()  # reason, severity, cameras, created_by/at as first added
    assert WatchlistStore(rclient).version() == version
    assert len(_audit(client, adm, "watchlist_entry_add")) == 1


def test_concurrent_adds_of_one_person_have_one_winner(client: TestClient, tokens: dict,
                                                       rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    person = _person(rclient)
    for round_no in range(5):
        wid = _face_list(client, adm, f"round {round_no}")
        barrier = threading.Barrier(6)

        def add(i: int, wid: str = wid, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return client.post(f"/api/watchlists/{wid}/persons", headers=adm,
                               json={"person_id": person["id"], "reason": f"add {i}"}).status_code

        with ThreadPoolExecutor(6) as pool:
            codes = sorted(pool.map(add, range(6)))
        assert codes == [201] + [409] * 5, codes
        assert len(WatchlistStore(rclient).list_entries(wid)) == 1


def test_openapi_documents_the_person_entry_conflict(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/api/watchlists/{watchlist_id}/persons"]["post"]
    assert "409" in responses["responses"]


# -- 2. the audit trail says what was added and removed ------------------------------------------------------------
def test_plate_entry_add_and_delete_are_audited_with_the_plate(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen cars"}).json()["id"]
    entry = client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                        json={"plate": "1กข 1234 กรุงเทพมหานคร", "reason": "stolen 12/2567",
                              "severity": "high"}).json()
    [added] = _audit(client, adm, "watchlist_entry_add")
    assert added["params"]["entry_id"] == entry["entry_id"] and added["params"]["plate"] == "1กข1234"
    assert added["params"]["province"] == "กรุงเทพมหานคร" and added["params"]["watchlist_name"] == "stolen cars"
    assert client.delete(f"/api/watchlists/{wid}/entries/{entry['entry_id']}", headers=adm).status_code == 204
    [removed] = _audit(client, adm, "watchlist_entry_delete")
    params = removed["params"]
    assert removed["user"] == "adm" and params["watchlist_id"] == wid and params["watchlist_name"] == "stolen cars"
    assert (params["entry_id"], params["plate"], params["province"]) == (entry["entry_id"], "1กข1234",
                                                                         "กรุงเทพมหานคร")
    assert (params["reason"], params["severity"], params["created_by"]) == ("stolen 12/2567", "high", "adm")


def test_person_entry_delete_is_audited_with_the_person(client: TestClient, tokens: dict,
                                                        rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    person = _person(rclient, "สมชาย ใจดี")
    wid = _face_list(client, adm)
    client.post(f"/api/watchlists/{wid}/persons", headers=adm, json={"person_id": person["id"], "reason": "wanted"})
    [added] = _audit(client, adm, "watchlist_entry_add")
    assert added["params"]["entry_id"] == person["id"] and added["params"]["person_name"] == "สมชาย ใจดี"
    assert client.delete(f"/api/watchlists/{wid}/entries/{person['id']}", headers=adm).status_code == 204
    [removed] = _audit(client, adm, "watchlist_entry_delete")
    assert removed["params"]["person_id"] == person["id"] and removed["params"]["person_name"] == "สมชาย ใจดี"
    assert removed["params"]["reason"] == "wanted" and removed["params"]["watchlist_name"] == "missing"


def test_watchlist_delete_is_audited_with_its_name_and_entries(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen cars"}).json()["id"]
    ids = [client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                       json={"plate": plate, "reason": reason}).json()["entry_id"]
           for plate, reason in (("1กข1234", "stolen A"), ("2กค5678", "stolen B"))]
    assert client.delete(f"/api/watchlists/{wid}", headers=adm).status_code == 204
    [rec] = _audit(client, adm, "watchlist_delete")
    params = rec["params"]
    assert params["watchlist_id"] == wid and params["name"] == "stolen cars" and params["kind"] == "plate"
    assert params["entries_deleted"] == 2
    assert [(e["entry_id"], e["plate"], e["reason"]) for e in params["entries"]] == [
        (ids[0], "1กข1234", "stolen A"), (ids[1], "2กค5678", "stolen B")]


# -- 3. updates never resurrect a deleted person -------------------------------------------------------------------
def _assert_gone(client: TestClient, adm: dict, rclient: redis.Redis, person_id: str) -> None:
    assert client.get(f"/api/persons/{person_id}", headers=adm).status_code == 404
    assert not rclient.exists(f"person:{person_id}"), "a ghost person (or their embeddings) is back in Redis"
    assert not rclient.sismember("person:ids", person_id)


def _race(client: TestClient, adm: dict, person_id: str, update, updates: int) -> list[int]:
    """Run ``updates`` calls of ``update`` and one DELETE of the person at once; the status codes (DELETE last)."""
    barrier = threading.Barrier(updates + 1)

    def go(i: int) -> int:
        barrier.wait()
        if i == updates:
            return client.delete(f"/api/persons/{person_id}", headers=adm).status_code
        return update(i).status_code

    with ThreadPoolExecutor(updates + 1) as pool:
        return list(pool.map(go, range(updates + 1)))


def test_patch_racing_delete_never_leaves_a_ghost(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    for round_no in range(40):
        pid = _person(rclient, f"P{round_no}", seed=round_no)["id"]
        codes = _race(client, adm, pid, lambda i, pid=pid: client.patch(
            f"/api/persons/{pid}", headers=adm, json={"notes": f"note {i}"}), updates=4)
        assert codes[-1] == 204 and set(codes[:-1]) <= {200, 404}, codes
        _assert_gone(client, adm, rclient, pid)


def test_store_update_racing_delete_never_writes_back(rclient: redis.Redis) -> None:
    """The store alone, many rounds: an update either lands before the delete or returns None."""
    wl = WatchlistStore(rclient)
    for round_no in range(150):
        pid = _person(rclient, f"S{round_no}", seed=round_no)["id"]
        barrier = threading.Barrier(3)

        def update(pid: str = pid, barrier: threading.Barrier = barrier) -> dict | None:
            barrier.wait()
            return wl.update_person(pid, notes="x", embeddings=np.ones((1, 512), np.float32))

        def delete(pid: str = pid, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return wl.delete_person(pid)

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(update), pool.submit(update), pool.submit(delete)]
            results = [f.result() for f in futures]
        assert results[2] is True
        assert not rclient.exists(f"person:{pid}") and not rclient.sismember("person:ids", pid), round_no


def test_entry_added_while_its_person_is_deleted_never_outlives_them(rclient: redis.Redis) -> None:
    """A person entry put on a face watchlist (created just before: the delete may not know it yet) while the
    person is deleted: either the delete removes the entry or the add is refused; no entry of a deleted person."""
    wl = WatchlistStore(rclient)
    for round_no in range(60):
        pid = _person(rclient, f"E{round_no}", seed=round_no)["id"]
        barrier = threading.Barrier(2)

        def add(pid: str = pid, barrier: threading.Barrier = barrier, round_no: int = round_no) -> str:
            barrier.wait()
            wid = wl.create_watchlist("face", f"late {round_no}")["id"]
            try:
                wl.put_entry(wid, {"person_id": pid, "entry_id": pid, "reason": "case 1"})
            except UnknownPersonError:
                pass
            return wid

        def delete(pid: str = pid, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return wl.delete_person(pid)

        with ThreadPoolExecutor(2) as pool:
            added, deleted = pool.submit(add), pool.submit(delete)
            wid = added.result()
            assert deleted.result() is True
        assert not rclient.hexists(f"wl:{wid}:entries", pid), round_no


def test_photos_racing_delete_answer_404_never_500(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                   shared_dir: Path) -> None:
    adm = tokens["adm"]
    photo = lfw(shared_dir, "Angela_Bassett", 1)
    for round_no in range(12):
        pid = _person(rclient, f"Q{round_no}", seed=round_no)["id"]
        codes = _race(client, adm, pid, lambda i, pid=pid: client.put(
            f"/api/persons/{pid}/photos", headers=adm, files=[("photos", (f"{i}.jpg", photo, "image/jpeg"))]),
            updates=2)
        assert codes[-1] == 204 and set(codes[:-1]) <= {200, 404}, codes
        _assert_gone(client, adm, rclient, pid)


# -- 4. body person ids are checked like path ids ------------------------------------------------------------------
@pytest.mark.parametrize("person_id", ["ids", "version", "a:b", "wl:ids", "x y"])
def test_a_body_person_id_that_cannot_name_a_person_is_404(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                           person_id: str) -> None:
    adm = tokens["adm"]
    person = _person(rclient)  # person:ids exists (a set): "ids" used to reach it (WRONGTYPE, 503)
    wid = _face_list(client, adm)
    r = client.post(f"/api/watchlists/{wid}/persons", headers=adm, json={"person_id": person_id})
    assert r.status_code == 404, r.text
    assert r.json()["detail"].startswith("person") and repr(person_id) in r.json()["detail"]
    assert WatchlistStore(rclient).list_entries(wid) == []
    assert rclient.smembers("person:ids") == {person["id"].encode()}


# -- 5. names and reasons refuse control and bidi-override characters ----------------------------------------------
BAD_TEXT = ["Ang\nela", "Angela\r\nSomchai", "a\tb", "x\x00y", f"{RLO}alegnA", "\u202aA", "\u2066A\u2069", "\u2068A"]
THAI = ["สมชาย ใจดี", "น้ำฝน ศรีสุข", "กุ้ง", "ผู้ต้องสงสัย ๑๒"]  # tone marks and vowels are combining (Mn)


@pytest.mark.parametrize("text", BAD_TEXT)
def test_person_names_refuse_control_and_bidi_characters(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                         shared_dir: Path, text: str) -> None:
    adm = tokens["adm"]
    person = _person(rclient)
    r = client.patch(f"/api/persons/{person['id']}", headers=adm, json={"name": text})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name", r.text
    assert WatchlistStore(rclient).get_person(person["id"])["name"] == "Somchai"
    r = client.post("/api/persons", headers=adm, data={"name": text},
                    files=[("photos", ("a.jpg", lfw(shared_dir, "Angela_Bassett", 1), "image/jpeg"))])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name", r.text


@pytest.mark.parametrize("text", BAD_TEXT)
def test_watchlist_names_and_reasons_refuse_control_and_bidi_characters(client: TestClient, tokens: dict,
                                                                        rclient: redis.Redis, text: str) -> None:
    adm = tokens["adm"]
    r = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": text})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name", r.text
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]
    r = client.patch(f"/api/watchlists/{wid}", headers=adm, json={"name": text})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name", r.text
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กข1234", "reason": text})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason", r.text
    entry = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กข1234"}).json()
    r = client.patch(f"/api/watchlists/{wid}/entries/{entry['entry_id']}", headers=adm, json={"reason": text})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason", r.text
    fid = _face_list(client, adm)
    r = client.post(f"/api/watchlists/{fid}/persons", headers=adm,
                    json={"person_id": _person(rclient)["id"], "reason": text})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason", r.text


def test_thai_names_reasons_and_multiline_notes_still_pass(client: TestClient, tokens: dict,
                                                           rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    person = _person(rclient)
    for text in THAI:
        r = client.patch(f"/api/persons/{person['id']}", headers=adm, json={"name": text, "notes": f"{text}\nline 2"})
        assert r.status_code == 200 and r.json()["name"] == text, r.text
        r = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": text,
                                                               "description": f"{text}\n\tdetails"})
        assert r.status_code == 201 and r.json()["name"] == text, r.text
        r = client.post(f"/api/watchlists/{r.json()['id']}/plates", headers=adm,
                        json={"plate": "1กข1234", "reason": text})
        assert r.status_code == 201 and r.json()["reason"] == text, r.text
    r = client.patch(f"/api/persons/{person['id']}", headers=adm, json={"notes": f"ok{RLO}"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "notes", r.text
