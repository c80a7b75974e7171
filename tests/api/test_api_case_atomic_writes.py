"""Cases: a write that fails half-way leaves no inconsistent case behind.

The failure is a real Redis one: the routes' Redis connection is swapped for one of an ACL user refused one command
(ZADD: the case index; DEL: the case's legal hold), as a crash or a refused command between two writes would. A
case is then either wholly written or not at all, and a close either lifts the case's hold or changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import redis
from fastapi.testclient import TestClient

from api.deps import get_redis
from pipeline.store import holds
from tests.api.test_api_case_hold import T0, _event
from tests.api.test_api_case_items import _add, _new_case


@contextmanager
def _routes_refused(client: TestClient, rclient: redis.Redis, redis_url: str, command: str) -> Iterator[None]:
    """The routes' Redis connection, while in the block, is an ACL user that may run everything but ``command``."""
    name, password = f"no-{command}-{secrets.token_hex(4)}", secrets.token_hex(16)
    rclient.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                        commands=["+@all", f"-{command}"])
    url = urlparse(redis_url)
    refused = redis.Redis(host=url.hostname, port=url.port, username=name, password=password)
    client.app.dependency_overrides[get_redis] = lambda: refused
    try:
        yield
    finally:
        client.app.dependency_overrides.pop(get_redis, None)
        refused.close()
        rclient.acl_deluser(name)


def test_a_case_whose_index_write_fails_is_not_created(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                       redis_url: str) -> None:
    """The case record and the case index are written in one MULTI/EXEC: when the index write is refused, no case
    record is left that no listing would ever show."""
    with _routes_refused(client, rclient, redis_url, "zadd"):
        r = client.post("/api/cases", json={"name": "half"}, headers=tokens["inv"])
    assert r.status_code == 503, r.text
    assert rclient.keys("case:*") == []
    assert rclient.zcard("cases") == 0
    case_id = _new_case(client, tokens["inv"], "whole")
    assert [c["id"] for c in client.get("/api/cases", headers=tokens["inv"]).json()] == [case_id]


def test_a_close_whose_hold_release_fails_leaves_the_case_open_and_a_retry_lifts_the_hold(
        client: TestClient, tokens: dict, rclient: redis.Redis, redis_url: str, api_settings) -> None:
    """Closing marks the case closed and removes its hold in one step: when removing the hold is refused, the case
    stays open and held (not closed with a hold nothing would ever lift), and closing again lifts it."""
    event = _event(rclient, api_settings.recordings_dir, "1กข1234", T0)
    case_id = _new_case(client, tokens["inv"])
    assert _add(client, tokens["inv"], case_id, "plate", event.event_id) == 201
    assert f"plate:{event.event_id}" in holds.held(rclient).events
    with _routes_refused(client, rclient, redis_url, "del"):
        r = client.post(f"/api/cases/{case_id}/close", headers=tokens["inv"])
    assert r.status_code == 503, r.text
    case = client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).json()
    assert case["status"] == "open"
    assert rclient.exists(holds.case_key(case_id))
    r = client.post(f"/api/cases/{case_id}/close", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    assert not rclient.exists(holds.case_key(case_id))
    assert case_id.encode() not in rclient.smembers(holds.CASES)
    assert f"plate:{event.event_id}" not in holds.held(rclient).events
