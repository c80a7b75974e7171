"""A damaged export job record (a field unreadable: created_at, start, status...) is answered with what can be read
and an ``error`` naming the damaged fields, never a 500: on ``GET /api/exports/{id}`` and in the listing, where one
damaged job must not hide the others. The answers still match the OpenAPI schema of ``ExportOut``.

Real Redis, real API."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(60)

CAM = "bkk-night-01"


def _job(rclient: redis.Redis, job_id: str, **fields: str) -> None:
    record = {"id": job_id, "status": "failed", "progress": "0", "camera_id": CAM, "start": "1000.0",
              "end": "1010.0", "requester": "adm", "created_at": "1700000000.5", "error": "no footage"} | fields
    rclient.hset(f"export:{job_id}", mapping={k: v for k, v in record.items() if v is not None})
    rclient.zadd("exports", {job_id: 1700000000})


def _check_schema(client: TestClient, body: dict) -> None:
    """Every required field of ExportOut is there with its schema type."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ExportOut"]
    for name in schema["required"]:
        assert name in body, name
    assert body["status"] in schema["properties"]["status"]["enum"]
    assert isinstance(body["created_at"], int | float) and isinstance(body["start"], int | float)


def test_a_damaged_created_at_is_answered_not_a_500(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    _job(rclient, "damaged00000001", created_at="not-a-time", status="done")
    r = client.get("/api/exports/damaged00000001", headers=tokens["adm"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "damaged00000001"
    assert body["status"] == "done"  # as stored
    assert body["created_at"] == 0
    assert (body["camera_id"], body["start"], body["end"], body["requester"]) == (CAM, 1000.0, 1010.0, "adm")
    assert "damaged" in body["error"] and "created_at" in body["error"], body
    assert "start" not in body["error"]
    _check_schema(client, body)


def test_the_listing_keeps_the_other_jobs_beside_a_damaged_one(client: TestClient, tokens: dict,
                                                                rclient: redis.Redis) -> None:
    _job(rclient, "good000000000001")
    _job(rclient, "damaged00000002", created_at="nan", start="??", status="exploded", requester=None)
    r = client.get("/api/exports", headers=tokens["adm"])
    assert r.status_code == 200, r.text
    jobs = {j["id"]: j for j in r.json()}
    assert set(jobs) == {"good000000000001", "damaged00000002"}
    good, bad = jobs["good000000000001"], jobs["damaged00000002"]
    assert good["error"] == "no footage" and good["created_at"] == 1700000000.5  # an intact record is unchanged
    assert bad["status"] == "failed" and bad["created_at"] == 0 and bad["start"] == 0 and bad["requester"] == ""
    for field in ("created_at", "start", "status", "requester"):
        assert field in bad["error"], bad
    assert bad["error"].endswith("no footage")  # the job's own error is kept
    _check_schema(client, bad)
    one = client.get("/api/exports/damaged00000002", headers=tokens["adm"])
    assert one.status_code == 200 and one.json() == bad
