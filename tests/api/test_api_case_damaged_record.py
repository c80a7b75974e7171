"""A case record with bytes that are not UTF-8 (Redis edited by hand, a bad restore) is shown with the unreadable
bytes replaced: it never turns the case list, the case itself or the API's start into a 500."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings

pytestmark = pytest.mark.timeout(120)


def _case(client: TestClient, headers: dict, name: str) -> str:
    r = client.post("/api/cases", json={"name": name, "description": "incident"}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_damaged_case_fields_do_not_take_the_case_list_down(client: TestClient, tokens: dict,
                                                            rclient: redis.Redis) -> None:
    good = _case(client, tokens["inv"], "Robbery 118/2569")
    bad_name = _case(client, tokens["inv"], "Hit and run")
    bad_time = _case(client, tokens["inv"], "Stolen car")
    rclient.hset(f"case:{bad_name}", "name", b"Hit \xff\xfe run")
    rclient.hset(f"case:{bad_time}", "created_at", b"yesterday")
    rclient.zadd("cases", {b"\xff\xfebroken-id": 1.0})

    r = client.get("/api/cases", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    listed = {c["id"]: c for c in r.json()}
    assert set(listed) == {good, bad_name, bad_time}
    assert listed[good]["name"] == "Robbery 118/2569"
    assert listed[bad_name]["name"].startswith("Hit ") and listed[bad_name]["name"].endswith(" run")
    assert listed[bad_time]["created_at"] == 0.0 and listed[bad_time]["name"] == "Stolen car"

    r = client.get(f"/api/cases/{bad_name}", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    assert rclient.hget(f"case:{bad_name}", "name") == b"Hit \xff\xfe run"  # nothing stored was rewritten


def test_a_damaged_case_owner_leaves_the_case_to_admins(client: TestClient, tokens: dict,
                                                        rclient: redis.Redis) -> None:
    case_id = _case(client, tokens["inv"], "Owner lost")
    rclient.hset(f"case:{case_id}", "created_by", b"in\xffv")
    assert client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).status_code == 404
    assert client.get(f"/api/cases/{case_id}", headers=tokens["adm"]).status_code == 200


def test_the_api_starts_with_a_case_id_that_is_not_utf8(rclient: redis.Redis, api_settings: ApiSettings) -> None:
    rclient.zadd("cases", {b"\xff\xfebroken-id": 1.0})
    with TestClient(create_app(api_settings)) as started:
        assert started.get("/api/health").status_code in (200, 503)
