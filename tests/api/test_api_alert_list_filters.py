"""GET /api/alerts filters: camera, severity, time window, acknowledgement state; older pages; watchlist name."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import Alert
from pipeline.store import EventStore, WatchlistStore

pytestmark = pytest.mark.timeout(120)


def alert(camera: str, severity: str, created_at: float, watchlist: str = "w1") -> Alert:
    return Alert(kind="plate", watchlist_id=watchlist, entry_id="e1", event_id="ev", camera_id=camera,
                 label="1กข1234", severity=severity, created_at=created_at)


@pytest.fixture()
def alerts(rclient: redis.Redis) -> list[Alert]:
    made = [alert("bkk-night-01", "high", 1000.0), alert("walkway-01", "low", 2000.0),
            alert("bkk-night-01", "critical", 3000.0), alert("walkway-01", "high", 4000.0)]
    store = EventStore(rclient)
    assert all(store.publish_alert(a) for a in made)
    return made


def ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [row["alert"]["alert_id"] for row in r.json()]


def test_filters_by_camera_severity_window_and_ack_state(client: TestClient, tokens: dict,
                                                         alerts: list[Alert]) -> None:
    a, b, c, d = (x.alert_id for x in alerts)
    h = tokens["op"]
    get = lambda **params: client.get("/api/alerts", params=params, headers=h)  # noqa: E731
    assert ids(get(camera_id="walkway-01")) == [b, d]
    assert ids(get(severity=["high", "critical"])) == [a, c, d]
    assert ids(get(start=2000, end=3000)) == [b, c]
    assert ids(get(camera_id="bkk-night-01", severity="high")) == [a]
    assert client.post(f"/api/alerts/{c}/ack", headers=h, json={"note": "done"}).status_code == 200
    assert ids(get(acked="true")) == [c]
    assert ids(get(acked="false")) == [a, b, d]
    assert ids(get(acked="false", limit=1)) == [d]
    r = get(severity="urgent")
    assert r.status_code == 422 and r.json()["detail"].startswith("severity")
    r = get(start=3000, end=2000)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "end"


def test_limited_user_learns_nothing_of_other_cameras(client: TestClient, tokens: dict,
                                                      alerts: list[Alert]) -> None:
    h = tokens["limited"]  # walkway-01 only
    r = client.get("/api/alerts", params={"camera_id": "bkk-night-01"}, headers=h)
    assert ids(r) == [] and r.headers["X-Alerts-Scanned"] == "2"
    unknown = client.get("/api/alerts", params={"camera_id": "no-such-cam"}, headers=h)
    assert unknown.json() == [] and unknown.headers["X-Alerts-Scanned"] == r.headers["X-Alerts-Scanned"]
    assert ids(client.get("/api/alerts", params={"severity": "critical"}, headers=h)) == []
    assert ids(client.get("/api/alerts", params={"severity": "high"}, headers=h)) == [alerts[3].alert_id]


def test_older_pages_by_before(client: TestClient, tokens: dict, alerts: list[Alert]) -> None:
    a, b, c, d = (x.alert_id for x in alerts)
    h = tokens["op"]
    newest = client.get("/api/alerts", params={"limit": 2}, headers=h).json()
    assert [row["alert"]["alert_id"] for row in newest] == [c, d]
    older = client.get("/api/alerts", params={"limit": 2, "before": newest[0]["id"]}, headers=h)
    assert ids(older) == [a, b]
    assert ids(client.get("/api/alerts", params={"before": older.json()[0]["id"]}, headers=h)) == []
    assert ids(client.get("/api/alerts", params={"before": "0-0"}, headers=h)) == []
    lim = client.get("/api/alerts", params={"before": newest[1]["id"]}, headers=tokens["limited"])
    assert ids(lim) == [b]
    both = client.get("/api/alerts", params={"before": newest[1]["id"], "after": "0-0"}, headers=h)
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "before"


def test_alerts_carry_the_watchlist_name(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    wl = WatchlistStore(rclient).create_watchlist("plate", "Stolen cars")
    store = EventStore(rclient)
    named, gone = alert("bkk-night-01", "high", 1.0, wl["id"]), alert("bkk-night-01", "high", 2.0, "deleted")
    assert store.publish_alert(named) and store.publish_alert(gone)
    rows = client.get("/api/alerts", headers=tokens["op"]).json()
    assert [row["watchlist_name"] for row in rows] == ["Stolen cars", None]
