"""Cases: a close that lands while an item is being added or removed, two closes at once, and the case list when
other users opened many cases since.

The interleaving is made exact, not timed: the route's own open-case check is wrapped so that the real close route
runs (through the API) right after the check passed, as a second investigator's request would between the check
and the write. Real Redis, real API, real hold sets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient

from api.routes import cases as cases_route
from pipeline.store import holds
from tests.api.test_api_case_hold import T0, _event
from tests.api.test_api_case_items import _add, _new_case


def _close_right_after_the_check(monkeypatch: pytest.MonkeyPatch, client: TestClient,
                                 headers: dict) -> list[int]:
    """Wrap the routes' open-case check: once it has passed, the case is closed through the API (once); returns the
    status codes of those closes."""
    original: Callable = cases_route._open_case
    closes: list[int] = []

    def check_then_close(rclient, case_id, user, stamp):
        case = original(rclient, case_id, user, stamp)
        if not closes:
            closes.append(client.post(f"/api/cases/{case_id}/close", headers=headers).status_code)
        return case

    monkeypatch.setattr(cases_route, "_open_case", check_then_close)
    return closes


def test_an_item_added_while_the_case_is_closed_is_refused_and_holds_nothing(
        client: TestClient, tokens: dict, rclient: redis.Redis, api_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The close wins: the add is answered 409, the closed case has no item added after its closing and no legal
    hold is left behind for it (a leaked hold would keep the recording from retention for ever: no open case
    would ever release it)."""
    event = _event(rclient, api_settings.recordings_dir, "1กข1234", T0)
    case_id = _new_case(client, tokens["inv"])
    closes = _close_right_after_the_check(monkeypatch, client, tokens["inv"])
    r = client.post(f"/api/cases/{case_id}/items", json={"kind": "plate", "ref": event.event_id},
                    headers=tokens["inv"])
    assert closes == [200]
    assert r.status_code == 409, r.text
    assert "closed" in r.json()["detail"]
    case = client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).json()
    assert case["status"] == "closed" and case["items"] == []
    assert not rclient.exists(holds.case_key(case_id))
    assert case_id.encode() not in rclient.smembers(holds.CASES)
    held = holds.held(rclient)
    assert f"plate:{event.event_id}" not in held.events
    assert event.snapshot_path not in held.paths


def test_an_item_removed_while_the_case_is_closed_stays_in_the_closed_case(
        client: TestClient, tokens: dict, rclient: redis.Redis, api_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed case's contents are final: a removal that lost the race to the close is answered 409 and the item
    stays in the case (and in its package)."""
    event = _event(rclient, api_settings.recordings_dir, "2กข2345", T0)
    case_id = _new_case(client, tokens["inv"])
    assert _add(client, tokens["inv"], case_id, "plate", event.event_id) == 201
    closes = _close_right_after_the_check(monkeypatch, client, tokens["inv"])
    r = client.delete(f"/api/cases/{case_id}/items/plate/{event.event_id}", headers=tokens["inv"])
    assert closes == [200]
    assert r.status_code == 409, r.text
    case = client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).json()
    assert case["status"] == "closed"
    assert [(i["kind"], i["ref"]) for i in case["items"]] == [("plate", event.event_id)]


def test_an_item_added_before_the_close_is_released_with_the_case(client: TestClient, tokens: dict,
                                                                  rclient: redis.Redis, api_settings) -> None:
    """The ordinary order still works: added to the open case (held), then the close lifts its hold."""
    event = _event(rclient, api_settings.recordings_dir, "3กข3456", T0)
    case_id = _new_case(client, tokens["inv"])
    assert _add(client, tokens["inv"], case_id, "plate", event.event_id) == 201
    assert f"plate:{event.event_id}" in holds.held(rclient).events
    assert client.post(f"/api/cases/{case_id}/close", headers=tokens["inv"]).status_code == 200
    assert f"plate:{event.event_id}" not in holds.held(rclient).events
    assert _add(client, tokens["inv"], case_id, "plate", event.event_id) == 409


def test_two_closes_at_once_record_one_closing(client: TestClient, tokens: dict, rclient: redis.Redis,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two investigators' closes at once (both have read the case as open before either writes): the case is
    closed once, by one of them, at one time, with one ``case_close`` audit record; both get the closed case back."""
    case_id = _new_case(client, tokens["inv"])
    original: Callable = cases_route._case
    barrier = threading.Barrier(2)
    lock = threading.Lock()
    waiting = [2]

    def read_together(rclient, cid, user, stamp):
        case = original(rclient, cid, user, stamp)
        with lock:
            first_reads = waiting[0] > 0
            waiting[0] -= 1
        if first_reads:  # each close's first read of the case: both have seen it open before either goes on
            barrier.wait(timeout=60)
        return case

    monkeypatch.setattr(cases_route, "_case", read_together)
    results: list[dict] = []

    def close(headers: dict) -> None:
        r = client.post(f"/api/cases/{case_id}/close", headers=headers)
        results.append({"status": r.status_code, "closed_at": r.json().get("closed_at")})

    threads = [threading.Thread(target=close, args=(h,)) for h in (tokens["inv"], tokens["adm"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert [r["status"] for r in results] == [200, 200]
    assert results[0]["closed_at"] == results[1]["closed_at"]
    closes = [json.loads(f[b"params"]) for _, f in rclient.xrange("audit", "-", "+")
              if f.get(b"action") == b"case_close"]
    assert [c["case_id"] for c in closes] == [case_id]


def test_a_closed_case_is_closed_once(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """Closing a closed case changes nothing: who closed it and when stay the first close's."""
    case_id = _new_case(client, tokens["inv"])
    first = client.post(f"/api/cases/{case_id}/close", headers=tokens["inv"]).json()
    time.sleep(0.01)
    again = client.post(f"/api/cases/{case_id}/close", headers=tokens["adm"]).json()
    assert again["closed_at"] == first["closed_at"]
    assert rclient.hget(f"case:{case_id}", "closed_by") == b"inv"


def test_the_case_list_finds_the_callers_cases_behind_other_users_newer_ones(client: TestClient, tokens: dict,
                                                                            rclient: redis.Redis) -> None:
    """Other investigators opened more cases since than one listing returns: the caller's older case is still
    listed (not cut off with everyone's older cases, as if it were gone)."""
    mine = _new_case(client, tokens["inv"], "inv's case")
    now = time.time()
    pipe = rclient.pipeline(transaction=False)
    for n in range(cases_route.CASE_LIST_MAX + 20):
        cid = f"other{n:05d}"
        pipe.hset(f"case:{cid}", mapping={"id": cid, "name": cid, "description": "", "created_by": "someone",
                                          "created_at": repr(now + 1 + n), "owner_created_at": "1.0"})
        pipe.zadd("cases", {cid: now + 1 + n})
    pipe.execute()
    listed = client.get("/api/cases", headers=tokens["inv"]).json()
    assert [c["id"] for c in listed] == [mine]
    admin = client.get("/api/cases", headers=tokens["adm"]).json()
    assert len(admin) == cases_route.CASE_LIST_MAX
    assert admin[0]["id"] == f"other{cases_route.CASE_LIST_MAX + 19:05d}"
