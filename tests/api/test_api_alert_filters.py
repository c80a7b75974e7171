"""Alerts of one watchlist entry / watchlist (bounded scan with its cap in headers) and acknowledgement state."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from pipeline.events import Alert
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


def alert(entry: str, watchlist: str, camera: str = "bkk-night-01", label: str = "1กข1234") -> Alert:
    return Alert(kind="plate", watchlist_id=watchlist, entry_id=entry, event_id=f"ev-{entry}", camera_id=camera,
                 label=label, reason="stolen", severity="high")


def publish(rclient: redis.Redis, alerts: list[Alert]) -> list[Alert]:
    store = EventStore(rclient)
    assert all(store.publish_alert(a) for a in alerts)
    return alerts


def ids(rows: list[dict]) -> list[str]:
    return [r["alert"]["alert_id"] for r in rows]


def test_filter_by_entry_and_watchlist(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    a1, b1, a2, c1, a3 = publish(rclient, [alert("e1", "w1"), alert("e2", "w1"), alert("e1", "w1", "walkway-01"),
                                           alert("e3", "w2"), alert("e1", "w1")])
    h = tokens["op"]
    r = client.get("/api/alerts", params={"entry_id": "e1"}, headers=h)
    assert r.status_code == 200 and ids(r.json()) == [a1.alert_id, a2.alert_id, a3.alert_id]  # oldest first
    assert r.headers["X-Alerts-Scanned"] == "5" and r.headers["X-Alerts-Scan-Complete"] == "true"
    # limit keeps the newest matches
    assert ids(client.get("/api/alerts", params={"entry_id": "e1", "limit": 2}, headers=h).json()) == [
        a2.alert_id, a3.alert_id]
    assert ids(client.get("/api/alerts", params={"watchlist_id": "w1"}, headers=h).json()) == [
        a1.alert_id, b1.alert_id, a2.alert_id, a3.alert_id]
    assert ids(client.get("/api/alerts", params={"watchlist_id": "w2", "entry_id": "e1"}, headers=h).json()) == []
    # after: the matches that came later, oldest first
    first_id = client.get("/api/alerts", params={"entry_id": "e1"}, headers=h).json()[0]["id"]
    assert ids(client.get("/api/alerts", params={"entry_id": "e1", "after": first_id}, headers=h).json()) == [
        a2.alert_id, a3.alert_id]
    # an id that only appears in another field (the label) is not a match
    publish(rclient, [alert("e9", "w9", label="e1")])
    assert len(client.get("/api/alerts", params={"entry_id": "e1"}, headers=h).json()) == 3
    # camera limits apply: 'limited' sees walkway-01 only
    assert ids(client.get("/api/alerts", params={"entry_id": "e1"}, headers=tokens["limited"]).json()) == [
        a2.alert_id]
    r = client.get("/api/alerts", params={"entry_id": "e 1"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"].startswith("entry_id")


def test_filter_scan_is_capped(api_settings, tokens: dict, rclient: redis.Redis) -> None:
    [old] = publish(rclient, [alert("e1", "w1")])
    publish(rclient, [alert("other", "w1") for _ in range(150)])
    with TestClient(create_app(api_settings.model_copy(update={"alert_filter_scan": 100}))) as small:
        r = small.get("/api/alerts", params={"entry_id": "e1"}, headers=tokens["op"])
        assert r.json() == [] and r.headers["X-Alerts-Scanned"] == "100"
        assert r.headers["X-Alerts-Scan-Complete"] == "false"
        r = small.get("/api/alerts", params={"entry_id": "e1", "after": "0-0"}, headers=tokens["op"])
        assert ids(r.json()) == [old.alert_id] and r.headers["X-Alerts-Scan-Complete"] == "false"
        r = small.get("/api/alerts", params={"entry_id": "e1", "after": "0-0", "limit": 1}, headers=tokens["op"])
        assert ids(r.json()) == [old.alert_id] and r.headers["X-Alerts-Scan-Complete"] == "true"


def test_alert_list_carries_who_when_and_note_of_the_ack(client: TestClient, tokens: dict,
                                                         rclient: redis.Redis) -> None:
    acked, open_ = publish(rclient, [alert("e1", "w1"), alert("e1", "w1")])
    r = client.post(f"/api/alerts/{acked.alert_id}/ack", headers=tokens["op"], json={"note": "patrol 12 sent"})
    assert r.status_code == 200
    for params in ({}, {"entry_id": "e1"}):
        rows = {row["alert"]["alert_id"]: row for row in client.get("/api/alerts", params=params,
                                                                    headers=tokens["inv"]).json()}
        ack = rows[acked.alert_id]["ack"]
        assert ack["by"] == "op" and ack["note"] == "patrol 12 sent" and ack["at"] >= acked.created_at
        assert rows[open_.alert_id]["ack"] is None


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    missing = [(m, p) for p, ops in spec["paths"].items() for m, op in ops.items() if not op.get("summary")]
    assert missing == []
    alerts = spec["paths"]["/api/alerts"]["get"]
    assert {"entry_id", "watchlist_id"} <= {p["name"] for p in alerts["parameters"]}
    assert "X-Alerts-Scan-Complete" in alerts["responses"]["200"]["headers"]
    patch = spec["paths"]["/api/watchlists/{watchlist_id}/entries/{entry_id}"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EntryUpdate")
    assert patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EntryOut")
    events = spec["paths"]["/api/cameras/{camera_id}/events"]["get"]
    assert events["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/CameraEventsOut")
