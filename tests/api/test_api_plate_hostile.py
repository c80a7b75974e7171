"""Plate routes against careless or hostile clients: deep pages of a busy plate, full-width input."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import PlateEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)

BUSY = "1กข1234"


def test_history_and_exact_search_reach_the_newest_sightings_of_a_busy_plate(
        client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    times = [5_000_000.0 + 10 * i for i in range(1010)]
    EventStore(rclient).publish_plate_events([
        PlateEvent(camera_id="bkk-night-01", track_id=i, started_at=t - 1, ended_at=t, frame_time=t,
                   plate_text=BUSY, province="กรุงเทพมหานคร", confidence=0.9) for i, t in enumerate(times)])
    r = client.get(f"/api/plates/{BUSY}/history", params={"reason": "case 12", "offset": 1000, "limit": 100},
                   headers=tokens["inv"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1010 and body["complete"] and not body["has_more"]
    assert [h["frame_time"] for h in body["hits"]] == times[1000:]
    r = client.get("/api/plates/search", params={"q": BUSY, "mode": "exact", "offset": 1000, "limit": 50},
                   headers=tokens["op"]).json()
    assert r["total"] == 1010 and [h["frame_time"] for h in r["hits"]] == times[:10][::-1]


def test_full_width_plate_is_found(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    EventStore(rclient).publish_plate_event(PlateEvent(
        camera_id="bkk-night-01", track_id=1, started_at=999.0, ended_at=1001.0, frame_time=1000.0,
        plate_text=BUSY, province="กรุงเทพมหานคร", confidence=0.9))
    for mode in ("exact", "fuzzy", "partial"):
        r = client.get("/api/plates/search", params={"q": "１กข１２３４", "mode": mode}, headers=tokens["op"]).json()
        assert [h["plate"] for h in r["hits"]] == [BUSY], mode
    r = client.get("/api/plates/１กข１２３４/history", params={"reason": "case 12"}, headers=tokens["inv"])
    assert r.status_code == 200 and r.json()["total"] == 1
