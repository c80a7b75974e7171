"""Plate search as an operator pages it and types it: cursor pages while reads arrive, a province after the
plate, queries that hold no plate or hide characters."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import PlateEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


def _publish(rclient: redis.Redis, items: list[tuple[str, float, str]], camera: str = "bkk-night-01") -> None:
    EventStore(rclient).publish_plate_events([
        PlateEvent(camera_id=camera, track_id=i, started_at=t - 1, ended_at=t, frame_time=t, plate_text=plate,
                   province=province, confidence=0.9) for i, (plate, t, province) in enumerate(items)])


def _search(client: TestClient, headers: dict, **params: object) -> dict:
    r = client.get("/api/plates/search", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_next_cursor_pages_stay_put_while_reads_arrive(client: TestClient, tokens: dict,
                                                       rclient: redis.Redis) -> None:
    _publish(rclient, [(f"1กข{1000 + i}", 10_000.0 + 10 * i, "กรุงเทพมหานคร") for i in range(12)])
    first = _search(client, tokens["op"], q="1กข", limit=5)
    assert first["total"] == 12 and first["has_more"] and first["next_cursor"]
    _publish(rclient, [(f"1กข{2000 + i}", 50_000.0 + i, "กรุงเทพมหานคร") for i in range(3)], camera="walkway-01")
    shown = [h["plate"] for h in first["hits"]]
    cursor = first["next_cursor"]
    while cursor:
        page = _search(client, tokens["op"], q="1กข", limit=5, cursor=cursor)
        shown += [h["plate"] for h in page["hits"]]
        cursor = page["next_cursor"]
    assert shown == [f"1กข{1000 + i}" for i in range(11, -1, -1)]  # no row twice, none skipped
    assert _search(client, tokens["op"], q="1กข", mode="fuzzy", order="distance")["next_cursor"] is None


def test_cursor_keeps_the_callers_camera_scope(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    _publish(rclient, [(f"1กข{1000 + i}", 10_000.0 + i, "กรุงเทพมหานคร") for i in range(6)])
    _publish(rclient, [(f"1กข{3000 + i}", 10_000.5 + i, "กรุงเทพมหานคร") for i in range(6)], camera="walkway-01")
    first = _search(client, tokens["limited"], q="1กข", limit=4)
    page = _search(client, tokens["limited"], q="1กข", limit=4, cursor=first["next_cursor"])
    assert {h["camera_id"] for h in first["hits"] + page["hits"]} == {"walkway-01"}
    assert len(first["hits"] + page["hits"]) == 6 and page["next_cursor"] is None


@pytest.mark.parametrize(("params", "field"), [
    ({"cursor": "garbage"}, "cursor"),
    ({"cursor": "1e999_1-1"}, "cursor"),
    ({"cursor": "1000.0_1-1", "order": "distance"}, "cursor"),
    ({"q": "1กข\u202e1234"}, "q"),  # a bidi override shows one plate and searches another
    ({"q": "1234\x00"}, "q"),
    ({"q": "...", "mode": "exact"}, "q"),  # nothing of a plate left: no silent empty answer
    ({"q": "\u200b\u200b", "mode": "fuzzy"}, "q"),
    ({"q": "1กข12345678901234 ตาก"}, "q"),
    ({"q": "1กข1234 ตาก", "province": "Bangkok"}, "province"),
])
def test_refused_with_a_422_naming_the_field(client: TestClient, tokens: dict, params: dict, field: str) -> None:
    r = client.get("/api/plates/search", params={"q": "1กข", **params}, headers=tokens["op"])
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field], r.text


def test_a_province_typed_after_the_plate_filters_by_it(client: TestClient, tokens: dict,
                                                        rclient: redis.Redis) -> None:
    _publish(rclient, [("1กข1234", 1000.0, "กรุงเทพมหานคร"), ("1กข1234", 2000.0, "ตาก"), ("กข5678", 3000.0, "ตาก")])
    h = tokens["op"]

    def times(**params: object) -> list[float]:
        return [x["frame_time"] for x in _search(client, h, **params)["hits"]]

    assert times(q="1กข1234 ตาก") == [2000.0]
    assert times(q="1กข 1234 กรุงเทพมหานคร", mode="exact") == [1000.0]
    assert times(q="1กข1234 Tak", mode="fuzzy") == [2000.0]
    assert times(q="กข ตาก") == [3000.0, 2000.0]
    assert times(q="1กข1234 ตาก", province="Tak") == [2000.0]
