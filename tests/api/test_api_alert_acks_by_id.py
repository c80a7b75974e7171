"""``POST /api/alerts/acks``: the current acknowledgement of given alerts by id, however old, bounded, scoped."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.schemas.alerts import ALERT_IDS_MAX
from pipeline.events import Alert
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


def _publish(rclient: redis.Redis, n: int, camera: str = "bkk-night-01") -> list[Alert]:
    alerts = []
    for i in range(n):
        alert = Alert(kind="plate", watchlist_id="w1", entry_id="e1", event_id=f"ev-{camera}-{i}", camera_id=camera,
                      label=f"1กข{i:04d}", severity="high")
        assert EventStore(rclient).publish_alert(alert)
        alerts.append(alert)
    return alerts


def test_the_acknowledgement_of_an_old_alert_is_answered_by_id(client: TestClient, tokens: dict,
                                                               rclient: redis.Redis) -> None:
    """An alert older than any first page, acknowledged on another screen, comes back with its acknowledgement;
    unknown ids are left out, repeated ones answered once, the rows oldest first."""
    old, *newer = _publish(rclient, 310)
    r = client.post(f"/api/alerts/{old.alert_id}/ack", headers=tokens["inv"], json={"note": "patrol sent"})
    assert r.status_code == 200, r.text
    asked = [newer[-1].alert_id, "no-such-alert", old.alert_id, old.alert_id]
    r = client.post("/api/alerts/acks", headers=tokens["op"], json={"alert_ids": asked})
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [row["alert"]["alert_id"] for row in rows] == [old.alert_id, newer[-1].alert_id]
    assert rows[0]["ack"]["by"] == "inv" and rows[0]["ack"]["note"] == "patrol sent"
    assert rows[1]["ack"] is None


def test_alerts_of_cameras_the_caller_may_not_see_are_left_out(client: TestClient, tokens: dict,
                                                               rclient: redis.Redis) -> None:
    hidden = _publish(rclient, 1, "bkk-night-01")[0]
    shown = _publish(rclient, 1, "walkway-01")[0]
    r = client.post("/api/alerts/acks", headers=tokens["limited"], json={"alert_ids": [hidden.alert_id,
                                                                                       shown.alert_id]})
    assert r.status_code == 200, r.text
    assert [row["alert"]["alert_id"] for row in r.json()] == [shown.alert_id]


@pytest.mark.parametrize("ids", [[], ["x"] * (ALERT_IDS_MAX + 1), ["bad id"]])
def test_no_ids_too_many_or_a_malformed_one_is_422(client: TestClient, tokens: dict, ids: list[str]) -> None:
    r = client.post("/api/alerts/acks", headers=tokens["op"], json={"alert_ids": ids})
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_operators_only(client: TestClient) -> None:
    assert client.post("/api/alerts/acks", json={"alert_ids": ["x"]}).status_code == 401
