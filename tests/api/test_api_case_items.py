"""Cases: ownership across a deleted and re-created user name, which exports a case accepts, removing an item from an
open case (with its legal hold) and the times of the package manifest.

Real Redis, real API, real hold sets."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import datetime

import redis
from fastapi.testclient import TestClient

from api.store import ApiStore
from pipeline.store import holds
from tests.api.conftest import PASSWORD
from tests.api.test_api_case_hold import T0, _event


def _login(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _new_case(client: TestClient, headers: dict, name: str = "c") -> str:
    r = client.post("/api/cases", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _job(rclient: redis.Redis, job_id: str, status: str, requester: str = "inv", **extra: str) -> None:
    """An export job record of camera bkk-night-01 in state ``status``."""
    rclient.hset(f"export:{job_id}", mapping={"id": job_id, "status": status, "progress": "0",
                                             "camera_id": "bkk-night-01", "start": repr(T0), "end": repr(T0 + 5),
                                             "requester": requester, "created_at": repr(time.time()), **extra})
    rclient.zadd("exports", {job_id: time.time()})


def _add(client: TestClient, headers: dict, case_id: str, kind: str, ref: str) -> int:
    return client.post(f"/api/cases/{case_id}/items", json={"kind": kind, "ref": ref}, headers=headers).status_code


# -- 1. ownership ------------------------------------------------------------------------------------------------

def test_a_recreated_user_of_the_same_name_does_not_inherit_cases(client: TestClient, tokens: dict,
                                                                  rclient: redis.Redis) -> None:
    """inv opens a case; inv is deleted and a new inv created: the new inv neither lists nor reads it; an admin
    still does; the new inv's own cases are theirs."""
    old = _new_case(client, tokens["inv"], "old inv's case")
    store = ApiStore(rclient, scrypt_n=16)
    assert store.delete_user("inv")
    time.sleep(0.01)
    store.put_user("inv", "investigator", PASSWORD)
    new_inv = _login(client, "inv")
    assert [c["id"] for c in client.get("/api/cases", headers=new_inv).json()] == []
    assert client.get(f"/api/cases/{old}", headers=new_inv).status_code == 404
    assert client.get(f"/api/cases/{old}/package", headers=new_inv).status_code == 404
    assert client.post(f"/api/cases/{old}/close", headers=new_inv).status_code == 404
    assert client.get(f"/api/cases/{old}", headers=tokens["adm"]).status_code == 200
    mine = _new_case(client, new_inv, "new inv's case")
    assert [c["id"] for c in client.get("/api/cases", headers=new_inv).json()] == [mine]


def test_a_password_change_keeps_the_users_cases(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """Revoking sessions (a new session generation) is not a new user: the cases stay theirs."""
    case_id = _new_case(client, tokens["inv"])
    ApiStore(rclient, scrypt_n=16).put_user("inv", "investigator", PASSWORD + "!")
    r = client.post("/api/auth/login", json={"username": "inv", "password": PASSWORD + "!"})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get(f"/api/cases/{case_id}", headers=headers).status_code == 200


def test_old_cases_without_an_owner_stamp(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """A case from before owners were stamped is its named owner's only if it is not older than their user record
    (older: an earlier user of that name opened it); an admin sees both."""
    for case_id, opened in (("legacyold", T0), ("legacynew", time.time() + 1)):
        rclient.hset(f"case:{case_id}", mapping={"id": case_id, "name": case_id, "description": "",
                                                 "created_by": "inv", "created_at": repr(opened)})
        rclient.zadd("cases", {case_id: opened})
    assert client.get("/api/cases/legacyold", headers=tokens["inv"]).status_code == 404
    assert client.get("/api/cases/legacynew", headers=tokens["inv"]).status_code == 200
    assert {c["id"] for c in client.get("/api/cases", headers=tokens["inv"]).json()} == {"legacynew"}
    assert {c["id"] for c in client.get("/api/cases", headers=tokens["adm"]).json()} >= {"legacyold", "legacynew"}


# -- 2. which exports a case accepts --------------------------------------------------------------------------------

def test_a_failed_or_unknown_export_is_refused_and_a_queued_one_accepted(client: TestClient, tokens: dict,
                                                                         rclient: redis.Redis) -> None:
    case_id = _new_case(client, tokens["inv"])
    _job(rclient, "jobfailed", "failed", error="ffmpeg exited 1")
    _job(rclient, "jobodd", "paused")
    _job(rclient, "jobqueued", "queued")
    _job(rclient, "jobrunning", "running")
    r = client.post(f"/api/cases/{case_id}/items", json={"kind": "clip", "ref": "jobfailed"}, headers=tokens["inv"])
    assert r.status_code == 409 and "failed" in r.json()["detail"] and "ffmpeg exited 1" in r.json()["detail"]
    r = client.post(f"/api/cases/{case_id}/items", json={"kind": "clip", "ref": "jobodd"}, headers=tokens["inv"])
    assert r.status_code == 409 and "unknown state" in r.json()["detail"]
    assert _add(client, tokens["inv"], case_id, "clip", "nosuchjob") == 404
    assert _add(client, tokens["inv"], case_id, "clip", "jobqueued") == 201
    assert _add(client, tokens["inv"], case_id, "clip", "jobrunning") == 201
    items = client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).json()["items"]
    assert sorted(i["ref"] for i in items) == ["jobqueued", "jobrunning"]


# -- 3. removing an item --------------------------------------------------------------------------------------------

def test_an_item_is_removed_from_an_open_case_its_hold_lifted_and_audited(client: TestClient, tokens: dict,
                                                                          rclient: redis.Redis,
                                                                          api_settings) -> None:
    rec = api_settings.recordings_dir
    keep, drop = _event(rclient, rec, "1กข1111", T0), _event(rclient, rec, "2กข2222", T0 + 600)
    case_id = _new_case(client, tokens["inv"])
    for event in (keep, drop):
        assert _add(client, tokens["inv"], case_id, "plate", event.event_id) == 201
    assert {f"plate:{keep.event_id}", f"plate:{drop.event_id}"} <= holds.held(rclient).events
    r = client.delete(f"/api/cases/{case_id}/items/plate/{drop.event_id}", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    assert [i["ref"] for i in r.json()["items"]] == [keep.event_id]
    held = holds.held(rclient)
    assert f"plate:{drop.event_id}" not in held.events and not held.path(drop.crop_path)
    assert not held.segment(drop.camera_id, T0 + 599, T0 + 601)
    assert f"plate:{keep.event_id}" in held.events and held.path(keep.crop_path)
    assert client.delete(f"/api/cases/{case_id}/items/plate/{drop.event_id}",
                         headers=tokens["inv"]).status_code == 404
    assert client.delete(f"/api/cases/{case_id}/items/plate/{keep.event_id}",
                         headers=tokens["limited"]).status_code == 404  # not their case
    audit = client.get("/api/audit?limit=1000", headers=tokens["adm"]).json()
    assert any(a["action"] == "case_remove" and a["user"] == "inv" and a["params"].get("case_id") == case_id
               and a["params"].get("ref") == drop.event_id for a in audit)


def test_removing_an_item_another_open_case_holds_keeps_it_held(client: TestClient, tokens: dict,
                                                               rclient: redis.Redis, api_settings) -> None:
    event = _event(rclient, api_settings.recordings_dir, "3กข3333", T0)
    first, second = _new_case(client, tokens["inv"], "a"), _new_case(client, tokens["inv"], "b")
    for case_id in (first, second):
        assert _add(client, tokens["inv"], case_id, "plate", event.event_id) == 201
    r = client.delete(f"/api/cases/{first}/items/plate/{event.event_id}", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    held = holds.held(rclient)
    assert f"plate:{event.event_id}" in held.events and held.path(event.snapshot_path)
    assert held.segment(event.camera_id, T0 - 1, T0 + 1)


def test_a_closed_case_refuses_removal(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    case_id = _new_case(client, tokens["inv"])
    _job(rclient, "jobdone", "done")
    assert _add(client, tokens["inv"], case_id, "clip", "jobdone") == 201
    assert client.post(f"/api/cases/{case_id}/close", headers=tokens["inv"]).status_code == 200
    r = client.delete(f"/api/cases/{case_id}/items/clip/jobdone", headers=tokens["inv"])
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert len(client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).json()["items"]) == 1


def test_a_damaged_item_can_be_removed_and_its_all_recording_hold_lifted(client: TestClient, tokens: dict,
                                                                         rclient: redis.Redis) -> None:
    case_id = _new_case(client, tokens["inv"])
    rclient.hset(f"case:{case_id}:items", "face:gone", b"{not json")
    holds.place(rclient, case_id, "face:gone", holds.unknown_hold(case_id, "face:gone"))
    assert holds.held(rclient).everything
    items = client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).json()["items"]
    assert items == [{"kind": "damaged", "ref": "face:gone", "added_at": 0.0}]
    r = client.delete(f"/api/cases/{case_id}/items/damaged/face:gone", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [] and not holds.held(rclient).everything


# -- 4. manifest times ----------------------------------------------------------------------------------------------

def test_the_manifest_gives_every_time_as_a_number_with_its_iso_form(client: TestClient, tokens: dict,
                                                                     rclient: redis.Redis) -> None:
    case_id = _new_case(client, tokens["inv"])
    r = client.get(f"/api/cases/{case_id}/package", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    created, packaged = manifest["case"]["created_at"], manifest["packaged_at"]
    assert isinstance(created, float) and isinstance(packaged, float) and created <= packaged
    assert abs(datetime.fromisoformat(manifest["case"]["created_at_iso"]).timestamp() - created) < 1e-3
    assert abs(datetime.fromisoformat(manifest["packaged_at_iso"]).timestamp() - packaged) < 1e-3
