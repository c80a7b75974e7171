"""An alert is acknowledged once: the first acknowledgement stands (409 with it after), follow-up notes append."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from fastapi.testclient import TestClient

from api.schemas.alerts import MAX_FOLLOW_UP_NOTES
from pipeline.events import Alert
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


def publish(rclient: redis.Redis, camera: str = "bkk-night-01") -> Alert:
    alert = Alert(kind="plate", watchlist_id="w1", entry_id="e1", event_id="ev-1", camera_id=camera,
                  label="1กข1234", reason="stolen", severity="high")
    assert EventStore(rclient).publish_alert(alert)
    return alert


def listed_ack(client: TestClient, headers: dict, alert_id: str) -> dict | None:
    rows = client.get("/api/alerts", headers=headers).json()
    return next(r["ack"] for r in rows if r["alert"]["alert_id"] == alert_id)


def test_first_acknowledgement_is_kept_and_later_ones_get_409(client: TestClient, tokens: dict,
                                                               rclient: redis.Redis) -> None:
    alert = publish(rclient)
    url = f"/api/alerts/{alert.alert_id}/ack"
    first = client.post(url, headers=tokens["op"], json={"note": "patrol sent"})
    assert first.status_code == 200 and first.json()["by"] == "op"
    for headers, body in ((tokens["adm"], {"note": "other note"}), (tokens["adm"], {}), (tokens["op"], {})):
        r = client.post(url, headers=headers, json=body)
        assert r.status_code == 409, r.text
        assert r.json()["ack"] == first.json() and "already acknowledged by op" in r.json()["detail"]
    ack = listed_ack(client, tokens["inv"], alert.alert_id)
    assert ack == first.json() and ack["note"] == "patrol sent"


def test_parallel_acknowledgements_have_one_winner(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    alert = publish(rclient)
    url = f"/api/alerts/{alert.alert_id}/ack"
    who = ["op", "inv", "adm"] * 4
    with ThreadPoolExecutor(len(who)) as pool:
        replies = list(pool.map(lambda name: client.post(url, headers=tokens[name], json={"note": name}), who))
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] + [409] * (len(who) - 1)
    winner = next(r.json() for r in replies if r.status_code == 200)
    assert all(r.json()["ack"] == winner for r in replies if r.status_code == 409)
    assert listed_ack(client, tokens["op"], alert.alert_id) == winner


def test_follow_up_notes_append_to_the_acknowledgement(client: TestClient, tokens: dict,
                                                       rclient: redis.Redis) -> None:
    alert = publish(rclient)
    notes = f"/api/alerts/{alert.alert_id}/notes"
    r = client.post(notes, headers=tokens["op"], json={"note": "too early"})
    assert r.status_code == 409 and "not acknowledged" in r.json()["detail"]
    client.post(f"/api/alerts/{alert.alert_id}/ack", headers=tokens["op"], json={"note": "patrol sent"})
    r = client.post(notes, headers=tokens["adm"], json={"note": "vehicle stopped"})
    assert r.status_code == 200, r.text
    assert r.json()["by"] == "op" and r.json()["note"] == "patrol sent"
    assert [(n["by"], n["note"]) for n in r.json()["notes"]] == [("adm", "vehicle stopped")]
    assert listed_ack(client, tokens["inv"], alert.alert_id)["notes"][0]["note"] == "vehicle stopped"
    assert client.post(notes, headers=tokens["op"], json={"note": " "}).status_code == 422
    assert client.post(notes, headers=tokens["op"], json={"note": "x" * 2001}).status_code == 422
    for i in range(MAX_FOLLOW_UP_NOTES - 1):
        assert client.post(notes, headers=tokens["op"], json={"note": f"n{i}"}).status_code == 200
    r = client.post(notes, headers=tokens["op"], json={"note": "one too many"})
    assert r.status_code == 409 and str(MAX_FOLLOW_UP_NOTES) in r.json()["detail"]


def test_limited_user_cannot_ack_or_annotate_other_cameras(client: TestClient, tokens: dict,
                                                           rclient: redis.Redis) -> None:
    alert = publish(rclient)  # bkk-night-01: 'limited' sees walkway-01 only
    for path in ("ack", "notes"):
        r = client.post(f"/api/alerts/{alert.alert_id}/{path}", headers=tokens["limited"], json={"note": "x"})
        assert r.status_code == 404
    assert client.post("/api/alerts/nope/ack", headers=tokens["op"], json={}).status_code == 404


def test_openapi_documents_the_conflict(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ack = spec["paths"]["/api/alerts/{alert_id}/ack"]["post"]["responses"]["409"]
    assert ack["content"]["application/json"]["schema"]["$ref"].endswith("/AckConflictOut")
    assert "409" in spec["paths"]["/api/alerts/{alert_id}/notes"]["post"]["responses"]
