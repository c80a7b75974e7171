"""Plate search through the engine's writer, fuzzy look-alikes, filters, live alerts over WebSocket and SSE."""

from __future__ import annotations

import json
import time

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import Alert, PlateEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


def publish(rclient: redis.Redis, plate: str, camera: str = "bkk-night-01", t: float = 1000.0, **kw) -> PlateEvent:
    event = PlateEvent(camera_id=camera, track_id=1, started_at=t - 1, ended_at=t + 1, frame_time=t,
                       plate_text=plate, province="กรุงเทพมหานคร", confidence=kw.pop("confidence", 0.9),
                       crop_path=f"crops/{camera}/{plate}.jpg", **kw)
    assert EventStore(rclient).publish_plate_event(event)
    return event


def test_exact_partial_wildcard_and_fuzzy(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    publish(rclient, "1กข1234", t=1000)
    publish(rclient, "1กข1234", camera="walkway-01", t=2000)
    publish(rclient, "กข5678", t=1500)
    publish(rclient, "701234", t=1200)
    h = tokens["op"]
    r = client.get("/api/plates/search", params={"q": "1กข1234", "mode": "exact"}, headers=h).json()
    assert [(x["plate"], x["camera_id"]) for x in r["hits"]] == [("1กข1234", "walkway-01"), ("1กข1234", "bkk-night-01")]
    assert r["hits"][0]["crop_url"] == "/api/media/crops/walkway-01/1%E0%B8%81%E0%B8%821234.jpg"
    r = client.get("/api/plates/search", params={"q": "1234"}, headers=h).json()
    assert [x["frame_time"] for x in r["hits"]] == [2000, 1200, 1000] and r["total"] == 3
    r = client.get("/api/plates/search", params={"q": "กข"}, headers=h).json()
    assert {x["plate"] for x in r["hits"]} == {"1กข1234", "กข5678"}
    r = client.get("/api/plates/search", params={"q": "กข?678"}, headers=h).json()
    assert [x["plate"] for x in r["hits"]] == ["กข5678"]
    r = client.get("/api/plates/search", params={"q": "*1234"}, headers=h).json()
    assert {x["plate"] for x in r["hits"]} == {"1กข1234", "701234"}
    # the operator types ช for ข (a look-alike): fuzzy finds the plate at a cheap distance
    r = client.get("/api/plates/search", params={"q": "1กช1234", "mode": "fuzzy"}, headers=h).json()
    assert {x["plate"] for x in r["hits"]} == {"1กข1234"} and all(0 < x["distance"] < 1 for x in r["hits"])
    r = client.get("/api/plates/search", params={"q": "1กช1234", "mode": "partial"}, headers=h).json()
    assert r["hits"] == []



def test_motorcycle_registrations_exact_partial_wildcard_and_history(client: TestClient, tokens: dict,
                                                                      rclient: redis.Redis) -> None:
    """Three-line motorcycle plates (``1กช 4986``, ``อคม 888``, ``งบล 7970``) are searchable like car plates."""
    publish(rclient, "1กช4986", t=1000, vehicle_class="motorcycle")
    publish(rclient, "อคม888", t=1100, vehicle_class="motorcycle")
    publish(rclient, "งบล7970", t=1200, vehicle_class="motorcycle")
    publish(rclient, "คม1234", t=1300)
    h = tokens["op"]

    def plates(**params: str) -> list[str]:
        r = client.get("/api/plates/search", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [x["plate"] for x in r.json()["hits"]]

    assert plates(q="กช4986") == ["1กช4986"]
    assert plates(q="อคม*") == ["อคม888"]
    assert plates(q="คม") == ["คม1234", "อคม888"]
    assert plates(q="คม", vehicle_class="motorcycle") == ["อคม888"]
    publish(rclient, "กม5555", t=1400, vehicle_class="vehicle")  # a plate tracked without a vehicle box
    assert plates(q="ม5555", vehicle_class="vehicle") == ["กม5555"]
    assert plates(q="ม5555", vehicle_class="car") == []
    assert plates(q="???7970") == ["งบล7970"]
    assert plates(q="1กช 4986", mode="exact") == ["1กช4986"]
    assert plates(q="งบล 7970", mode="exact") == ["งบล7970"]
    assert plates(q="อคม888", mode="exact") == ["อคม888"]
    assert plates(q="งปล7970", mode="fuzzy") == ["งบล7970"]
    hist = client.get("/api/plates/อคม 888/history", params={"reason": "case 12"}, headers=tokens["inv"])
    assert hist.status_code == 200 and [x["plate"] for x in hist.json()["hits"]] == ["อคม888"]


def test_filters_pagination_and_camera_limits(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    for i in range(5):
        publish(rclient, "1กข1234", t=1000 + i, confidence=0.5 + i / 10)
    publish(rclient, "1กข1234", camera="walkway-01", t=5000, vehicle_class="truck")
    h = tokens["inv"]
    page = client.get("/api/plates/search", params={"q": "1234", "limit": 2, "offset": 1}, headers=h).json()
    assert [x["frame_time"] for x in page["hits"]] == [1004, 1003]
    r = client.get("/api/plates/search", params={"q": "1234", "min_confidence": 0.75}, headers=h).json()
    assert [x["frame_time"] for x in r["hits"]] == [5000, 1004, 1003]
    r = client.get("/api/plates/search", params={"q": "1234", "start": 1001, "end": 1003}, headers=h).json()
    assert [x["frame_time"] for x in r["hits"]] == [1003, 1002, 1001]
    r = client.get("/api/plates/search", params={"q": "1234", "vehicle_class": "truck"}, headers=h).json()
    assert [x["camera_id"] for x in r["hits"]] == ["walkway-01"]
    r = client.get("/api/plates/search", params={"q": "1234", "province": "Bangkok"}, headers=h).json()
    assert r["total"] == 6
    limited = client.get("/api/plates/search", params={"q": "1234"}, headers=tokens["limited"]).json()
    assert [x["camera_id"] for x in limited["hits"]] == ["walkway-01"]
    hist = client.get("/api/plates/1กข1234/history", params={"reason": "case 12"}, headers=h).json()
    assert [x["frame_time"] for x in hist["hits"]] == [1000, 1001, 1002, 1003, 1004, 5000]


def test_higher_version_replaces_the_hit(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    event = publish(rclient, "1ขข1234")
    EventStore(rclient).publish_plate_event(event.model_copy(update={"version": 2, "plate_text": "1กข1234"}))
    r = client.get("/api/plates/search", params={"q": "1234"}, headers=tokens["op"]).json()
    assert [(x["plate"], x["event_id"]) for x in r["hits"]] == [("1กข1234", event.event_id)]


def _alert(camera: str = "bkk-night-01") -> Alert:
    return Alert(kind="plate", watchlist_id="w1", entry_id="e1", event_id="ev1", camera_id=camera,
                 severity="high", label="1กข1234", reason="stolen")


def test_alert_arrives_on_websocket_and_replays(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    token = tokens["op"]["Authorization"].split()[1]
    store = EventStore(rclient)
    first = _alert()
    store.publish_alert(first)
    with client.websocket_connect("/api/alerts/ws") as ws:
        ws.send_json({"token": token})  # first message: the token never goes into the URL
        time.sleep(0.3)
        live = _alert()
        store.publish_alert(live)
        msg = ws.receive_json()
        assert msg["alert"]["alert_id"] == live.alert_id  # only what came after the connection
    # reconnect with the id of the first alert: the live one is replayed from the backlog
    backlog = client.get("/api/alerts", headers=tokens["op"]).json()
    first_id = next(a["id"] for a in backlog if a["alert"]["alert_id"] == first.alert_id)
    with client.websocket_connect(f"/api/alerts/ws?after={first_id}") as ws:
        ws.send_json({"token": token})
        assert ws.receive_json()["alert"]["alert_id"] == live.alert_id


def test_websocket_refuses_unauthenticated(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/api/alerts/ws") as ws:
        ws.send_json({"token": "bad"})
        ws.receive_json()


def test_watchlist_hit_alert_via_engine_matcher(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """The engine's matcher (if merged) turns a plate event into the alert that reaches the control room."""
    watchmatch = pytest.importorskip("pipeline.engine.watchmatch")
    wid = client.post("/api/watchlists", headers=tokens["adm"], json={"kind": "plate", "name": "stolen"}).json()["id"]
    client.post(f"/api/watchlists/{wid}/plates", headers=tokens["adm"],
                json={"plate": "1กข1234", "fuzzy": True, "max_distance": 1.0, "severity": "critical"})
    event = publish(rclient, "1กช1234")
    names = [n for n in dir(watchmatch) if not n.startswith("_")]
    matcher_cls = next((getattr(watchmatch, n) for n in names if n.lower().endswith("matcher")), None)
    if matcher_cls is None:
        pytest.skip(f"no *Matcher class in pipeline.engine.watchmatch ({names})")
    from pipeline.store import WatchlistStore

    try:
        matcher = matcher_cls(WatchlistStore(rclient))
        alerts = matcher.match_plate(event)
    except (TypeError, AttributeError) as exc:
        pytest.skip(f"matcher interface differs: {exc}")
    assert alerts, "the matcher found no watchlist hit for a one-look-alike read"
    token = tokens["op"]["Authorization"].split()[1]
    with client.websocket_connect("/api/alerts/ws?after=0-0") as ws:
        ws.send_json({"token": token})
        for alert in alerts:
            EventStore(rclient).publish_alert(alert)
        msg = ws.receive_json()
        assert msg["alert"]["watchlist_id"] == wid and msg["alert"]["event_id"] == event.event_id


def test_ack_is_stored_and_sse_replays(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    alert = _alert()
    EventStore(rclient).publish_alert(alert)
    r = client.post(f"/api/alerts/{alert.alert_id}/ack", headers=tokens["op"], json={"note": "patrol sent"})
    assert r.status_code == 200 and r.json()["by"] == "op"
    listed = client.get("/api/alerts", headers=tokens["op"]).json()
    assert listed[0]["ack"]["note"] == "patrol sent"
    assert client.get("/api/alerts", headers=tokens["limited"]).json() == []  # other camera
    with client.stream("GET", "/api/alerts/stream?after=0-0", headers=tokens["op"]) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["alert"]["alert_id"] == alert.alert_id
                break
