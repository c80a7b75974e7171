"""An export job record holding bytes that are not UTF-8 (edited by hand, a bad restore) is answered like any damaged
record: with what can be read and an ``error`` naming the unreadable fields, a clear 409 when its file is asked for,
skipped when even its id is unreadable; never a 500, never a failed start-up, and nothing stored is changed.

Real Redis, real API."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.ownership import OWNER_STAMP, owner_stamp
from api.routes.exports import fail_interrupted_exports
from api.settings import ApiSettings
from api.store import ApiStore

pytestmark = pytest.mark.timeout(60)

CAM = "bkk-night-01"
BAD = b"\xff\xfe\x80 not utf-8"


def _job(rclient: redis.Redis, job_id: str, **fields: bytes | str) -> None:
    """A job of 'inv' (stamped with the user record's owner stamp), with ``fields`` replaced."""
    record = {"id": job_id, "status": "done", "progress": "1", "camera_id": CAM, "start": "1000.0", "end": "1010.0",
              "requester": "inv", "created_at": "1700000000.5", "sha256": "ab" * 32,
              OWNER_STAMP: owner_stamp(ApiStore(rclient, scrypt_n=16), "inv")} | fields
    rclient.hset(f"export:{job_id}", mapping=record)
    rclient.zadd("exports", {job_id: 1700000000})


def test_a_field_that_is_not_utf8_is_named_not_a_500(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    _job(rclient, "bytes00000000001", camera_id=BAD, start=BAD)
    r = client.get("/api/exports/bytes00000000001", headers=tokens["adm"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "done" and body["camera_id"] == "" and body["start"] == 0 and body["end"] == 1010.0
    assert "damaged" in body["error"] and "camera_id" in body["error"] and "start" in body["error"], body
    assert rclient.hget("export:bytes00000000001", "camera_id") == BAD  # nothing stored is changed


def test_the_listing_keeps_the_others_and_skips_an_unreadable_id(client: TestClient, tokens: dict,
                                                                 rclient: redis.Redis) -> None:
    _job(rclient, "good000000000001")
    _job(rclient, "bytes00000000002", requester="adm", status=BAD)
    rclient.zadd("exports", {b"\xff\xfejob": 1700000001})
    r = client.get("/api/exports", headers=tokens["adm"])
    assert r.status_code == 200, r.text
    jobs = {j["id"]: j for j in r.json()}
    assert set(jobs) == {"good000000000001", "bytes00000000002"}
    assert jobs["good000000000001"]["error"] is None
    bad = jobs["bytes00000000002"]
    assert bad["status"] == "failed" and "status" in bad["error"] and bad["download_url"] is None
    assert rclient.zscore("exports", b"\xff\xfejob") is not None  # left where it is


def test_a_file_whose_record_is_unreadable_is_a_clear_409(client: TestClient, tokens: dict,
                                                          rclient: redis.Redis) -> None:
    _job(rclient, "bytes00000000003", path=b"/rec/exports/" + BAD, manifest_path="/nowhere.json")
    _job(rclient, "bytes00000000004", status=BAD, path="/nowhere.mp4")
    for job_id, field in (("bytes00000000003", "path"), ("bytes00000000004", "status")):
        r = client.get(f"/api/exports/{job_id}/download", headers=tokens["inv"])
        assert r.status_code == 409, r.text
        assert "damaged" in r.json()["detail"] and field in r.json()["detail"], r.text
    m = client.get("/api/exports/bytes00000000003/manifest", headers=tokens["inv"])
    assert m.status_code == 404 and m.json()["detail"] == "export file not found"  # its own field is readable


def test_an_unreadable_requester_or_owner_stamp_leaves_the_job_to_admins(client: TestClient, tokens: dict,
                                                                         rclient: redis.Redis) -> None:
    _job(rclient, "bytes00000000005", requester=BAD)
    _job(rclient, "bytes00000000006", **{OWNER_STAMP: BAD})
    for job_id in ("bytes00000000005", "bytes00000000006"):
        assert client.get(f"/api/exports/{job_id}", headers=tokens["inv"]).status_code == 404
        r = client.get(f"/api/exports/{job_id}", headers=tokens["adm"])
        assert r.status_code == 200 and "damaged" in r.json()["error"], r.text
    assert client.get("/api/exports", headers=tokens["inv"]).json() == []


def test_a_case_package_lists_a_clip_whose_record_is_unreadable(client: TestClient, tokens: dict,
                                                                rclient: redis.Redis) -> None:
    case = client.post("/api/cases", headers=tokens["inv"], json={"name": "evidence"}).json()
    _job(rclient, "bytes00000000007", status="queued")
    r = client.post(f"/api/cases/{case['id']}/items", headers=tokens["inv"],
                    json={"kind": "clip", "ref": "bytes00000000007"})
    assert r.status_code == 201, r.text
    rclient.hset("export:bytes00000000007", "status", BAD)  # damaged after it was added
    r = client.get(f"/api/cases/{case['id']}/package", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert [m["item"] for m in manifest["missing"]] == ["clip:bytes00000000007"]


def test_startup_and_the_interrupted_sweep_survive_unreadable_records(api_settings: ApiSettings, redis_url: str,
                                                                      rclient: redis.Redis) -> None:
    _job(rclient, "bytes00000000008", status="running", owner=BAD)
    rclient.zadd("exports", {b"\xff\xfejob": 1700000001})
    assert fail_interrupted_exports(rclient, api_settings.exports_root()) == 1  # an unreadable owner is no live one
    assert rclient.hget("export:bytes00000000008", "status") == b"failed"
    _job(rclient, "bytes00000000009", status="queued")
    (api_settings.recordings_dir / "crops").mkdir(parents=True, exist_ok=True)
    with TestClient(create_app(api_settings)) as tc:  # the start-up sweep meets the unreadable id too
        assert tc.get("/api/health").status_code in (200, 503)
    assert rclient.hget("export:bytes00000000009", "status") == b"failed"
    assert rclient.zscore("exports", b"\xff\xfejob") is not None
