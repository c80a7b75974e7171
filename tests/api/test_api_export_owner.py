"""Export jobs across a deleted and re-created user name: a job belongs to the user record that asked for it (its
``owner_created_at``), not to whoever holds the name now; jobs from before owners were stamped belong to the
current holder of the name only if they are not older than their user record. Admins see every job.

Real Redis, real API."""

from __future__ import annotations

import time

import pytest
import redis
from fastapi.testclient import TestClient

from api.ownership import OWNER_STAMP
from api.store import ApiStore
from pipeline.recording.index import Segment, add_segment
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.timeout(120)

CAM = "bkk-night-01"


def _login(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _export(client: TestClient, headers: dict[str, str]) -> str:
    """Ask for a clip of an indexed (if absent) recording; the job's id."""
    add_segment(client.app.state.redis, CAM,
                Segment(f"{CAM}/1970-01-01/00/{CAM}_19700101T001640.000Z.mkv", 1000.0, 1060.0, 1000))
    r = client.post("/api/exports", headers=headers, json={"camera_id": CAM, "start": 1000.0, "end": 1010.0})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _listed(client: TestClient, headers: dict[str, str]) -> set[str]:
    r = client.get("/api/exports", headers=headers)
    assert r.status_code == 200, r.text
    return {j["id"] for j in r.json()}


def _legacy_job(rclient: redis.Redis, job_id: str, created_at: float) -> None:
    """A job record of inv's written before owners were stamped."""
    rclient.hset(f"export:{job_id}", mapping={"id": job_id, "status": "failed", "progress": "0", "camera_id": CAM,
                                             "start": "1000.0", "end": "1010.0", "requester": "inv",
                                             "created_at": repr(created_at), "error": "old"})
    rclient.zadd("exports", {job_id: created_at})


def test_a_new_export_is_stamped_with_its_requesters_user_record(client: TestClient, tokens: dict,
                                                                 rclient: redis.Redis) -> None:
    job_id = _export(client, tokens["inv"])
    created = ApiStore(rclient, scrypt_n=16).get_user("inv")["created_at"]
    assert rclient.hget(f"export:{job_id}", OWNER_STAMP).decode() == created


def test_a_recreated_user_of_the_same_name_does_not_inherit_exports(client: TestClient, tokens: dict,
                                                                    rclient: redis.Redis) -> None:
    """inv asks for a clip; inv is deleted and a new inv created: the new inv neither lists, reads, downloads nor
    adds it to a case; an admin still sees it; the new inv's own exports are theirs."""
    old = _export(client, tokens["inv"])
    store = ApiStore(rclient, scrypt_n=16)
    assert store.delete_user("inv")
    time.sleep(0.01)
    store.put_user("inv", "investigator", PASSWORD)
    new_inv = _login(client, "inv")
    assert old not in _listed(client, new_inv)
    for path in (f"/api/exports/{old}", f"/api/exports/{old}/download", f"/api/exports/{old}/manifest"):
        assert client.get(path, headers=new_inv).status_code == 404, path
    r = client.post("/api/cases", json={"name": "new inv's case"}, headers=new_inv)
    assert r.status_code == 201, r.text
    r = client.post(f"/api/cases/{r.json()['id']}/items", json={"kind": "clip", "ref": old}, headers=new_inv)
    assert r.status_code == 404, r.text
    assert client.get(f"/api/exports/{old}", headers=tokens["adm"]).status_code == 200
    assert old in _listed(client, tokens["adm"])
    mine = _export(client, new_inv)
    assert _listed(client, new_inv) == {mine}
    assert client.get(f"/api/exports/{mine}", headers=new_inv).status_code == 200


def test_a_password_change_keeps_the_users_exports(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """Revoking sessions (a new session generation) is not a new user: the exports stay theirs."""
    job_id = _export(client, tokens["inv"])
    ApiStore(rclient, scrypt_n=16).put_user("inv", "investigator", PASSWORD + "!")
    headers = _login(client, "inv", PASSWORD + "!")
    assert client.get(f"/api/exports/{job_id}", headers=headers).status_code == 200
    assert job_id in _listed(client, headers)


def test_old_exports_without_an_owner_stamp(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """A job from before owners were stamped is its requester's only if it is not older than their user record
    (older: an earlier user of that name asked for it); an unreadable time refuses; an admin sees the readable ones."""
    _legacy_job(rclient, "legacyold", 1000.0)
    _legacy_job(rclient, "legacynew", time.time() + 1)
    rclient.hset("export:legacybad", mapping={"id": "legacybad", "status": "failed", "progress": "0",
                                              "camera_id": CAM, "start": "1000.0", "end": "1010.0",
                                              "requester": "inv", "created_at": "not a time"})
    assert client.get("/api/exports/legacyold", headers=tokens["inv"]).status_code == 404
    assert client.get("/api/exports/legacybad", headers=tokens["inv"]).status_code == 404
    assert client.get("/api/exports/legacynew", headers=tokens["inv"]).status_code == 200
    assert _listed(client, tokens["inv"]) == {"legacynew"}
    for job_id in ("legacyold", "legacynew"):
        assert client.get(f"/api/exports/{job_id}", headers=tokens["adm"]).status_code == 200, job_id
