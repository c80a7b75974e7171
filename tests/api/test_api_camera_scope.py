"""Camera limits: a user limited to some cameras learns nothing about the others (hits, counts, totals, errors).

'limited' (conftest) is an investigator who sees walkway-01 only; bkk-night-01 is another camera.
"""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import Alert, PlateEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)

MINE, OTHER = "walkway-01", "bkk-night-01"


def publish_plate(rclient: redis.Redis, plate: str, camera: str, t: float = 1000.0) -> PlateEvent:
    """Store one plate read through the engine's writer."""
    event = PlateEvent(camera_id=camera, track_id=1, started_at=t - 1, ended_at=t + 1, frame_time=t,
                       plate_text=plate, province="กรุงเทพมหานคร", confidence=0.9,
                       crop_path=f"crops/{camera}/{plate}.jpg")
    assert EventStore(rclient).publish_plate_event(event)
    return event


def publish_alert(rclient: redis.Redis, camera: str, entry: str = "e1") -> Alert:
    """Store one watchlist alert."""
    alert = Alert(kind="plate", watchlist_id="w1", entry_id=entry, event_id="ev1", camera_id=camera,
                  severity="high", label="1กข1234", reason="stolen")
    assert EventStore(rclient).publish_alert(alert)
    return alert


@pytest.mark.parametrize("mode", ["exact", "partial", "auto", "fuzzy"])
def test_plate_search_counts_only_plates_on_own_cameras(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                        mode: str) -> None:
    """plates_matched must not say that a plate was read on a camera the user may not see."""
    publish_plate(rclient, "1กข1234", OTHER)
    r = client.get("/api/plates/search", params={"q": "1กข1234", "mode": mode}, headers=tokens["limited"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"] == [] and body["total"] == 0 and body["plates_matched"] == 0, body
    # the same plate read on the user's camera is counted once; the other camera's read is still invisible
    publish_plate(rclient, "1กข1234", MINE, t=2000)
    body = client.get("/api/plates/search", params={"q": "1กข1234", "mode": mode}, headers=tokens["limited"]).json()
    assert [h["camera_id"] for h in body["hits"]] == [MINE] and body["plates_matched"] == 1, body
    assert body["total"] == 1
    # an unlimited user still counts the plate (behaviour unchanged)
    body = client.get("/api/plates/search", params={"q": "1กข1234", "mode": mode}, headers=tokens["inv"]).json()
    assert body["plates_matched"] == 1 and body["total"] == 2


def test_plate_search_counts_only_scoped_plates_among_many(client: TestClient, tokens: dict,
                                                           rclient: redis.Redis) -> None:
    """A partial query matching plates on both cameras counts only the plates the user may see."""
    publish_plate(rclient, "1กข1234", OTHER)
    publish_plate(rclient, "2กข1234", OTHER)
    publish_plate(rclient, "3กข1234", MINE)
    body = client.get("/api/plates/search", params={"q": "1234"}, headers=tokens["limited"]).json()
    assert body["plates_matched"] == 1 and body["total"] == 1 and [h["plate"] for h in body["hits"]] == ["3กข1234"]
    assert client.get("/api/plates/search", params={"q": "1234"}, headers=tokens["inv"]).json()[
        "plates_matched"] == 3


def test_plate_history_of_another_cameras_plate_is_not_found(client: TestClient, tokens: dict,
                                                             rclient: redis.Redis) -> None:
    """A plate read only on other cameras answers like a plate never read (404), not an empty 200."""
    publish_plate(rclient, "1กข1234", OTHER)
    never = client.get("/api/plates/9ฮฮ9999/history", params={"reason": "case 12"}, headers=tokens["limited"])
    other = client.get("/api/plates/1กข1234/history", params={"reason": "case 12"}, headers=tokens["limited"])
    assert never.status_code == 404
    assert other.status_code == 404, other.text
    assert other.json()["detail"] == never.json()["detail"].replace("9ฮฮ9999", "1กข1234")
    # read on the user's camera too: found, with only that read; a window without it is an empty 200
    publish_plate(rclient, "1กข1234", MINE, t=2000)
    mine = client.get("/api/plates/1กข1234/history", params={"reason": "case 12"}, headers=tokens["limited"])
    assert mine.status_code == 200 and [h["camera_id"] for h in mine.json()["hits"]] == [MINE]
    early = client.get("/api/plates/1กข1234/history", params={"reason": "case 12", "end": 1500},
                       headers=tokens["limited"])
    assert early.status_code == 200 and early.json()["hits"] == [] and early.json()["plates_matched"] == 1
    # unlimited users: unchanged
    full = client.get("/api/plates/1กข1234/history", params={"reason": "case 12"}, headers=tokens["inv"]).json()
    assert [h["camera_id"] for h in full["hits"]] == [OTHER, MINE]


class _NoFaceService:
    """Stands in for the face service: any use of it means the request was worked on before it was validated."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the face service was used ({name}) before the window was checked")


def test_face_search_refuses_an_inverted_window_first(client: TestClient, tokens: dict) -> None:
    """end < start is a 422 field error on ``end`` before the photo is read or searched."""
    client.app.state.faces = _NoFaceService()
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": "case 12", "start": 2000, "end": 1000},
                    files={"image": ("q.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "end", "message": "must not be before start", "type": "value_error"}]
    assert r.json()["detail"] == "end: must not be before start"


@pytest.mark.parametrize(("path", "extra"), [("/api/plates/search", {"q": "1234"}),
                                             ("/api/plates/1234/history", {"reason": "case 12"})])
def test_plate_routes_report_an_inverted_window_as_a_field_error(client: TestClient, tokens: dict, path: str,
                                                                 extra: dict) -> None:
    """Plate search and history answer end < start with the same 422 body as every other invalid field."""
    r = client.get(path, params={**extra, "start": 2000, "end": 1000}, headers=tokens["inv"])
    assert r.status_code == 422
    assert r.json() == {"detail": "end: must not be before start",
                        "errors": [{"field": "end", "message": "must not be before start", "type": "value_error"}]}


def ids(rows: list[dict]) -> list[str]:
    return [r["alert"]["alert_id"] for r in rows]


def test_alert_backlog_of_a_limited_user_is_filled_with_their_own_alerts(client: TestClient, tokens: dict,
                                                                          rclient: redis.Redis) -> None:
    """The page is not cut before the camera filter: how many fewer than ``limit`` came back told how many
    alerts other cameras had (and paging with ``after`` skipped the user's own alerts)."""
    mine = publish_alert(rclient, MINE)
    for _ in range(3):
        publish_alert(rclient, OTHER)
    r = client.get("/api/alerts", params={"limit": 1}, headers=tokens["limited"])
    assert r.status_code == 200 and ids(r.json()) == [mine.alert_id], r.json()
    later = publish_alert(rclient, MINE)
    r = client.get("/api/alerts", params={"limit": 2}, headers=tokens["limited"])
    assert ids(r.json()) == [mine.alert_id, later.alert_id]
    assert r.headers["X-Alerts-Scanned"] == "2"
    # forward paging from the first alert reaches the next one of the user's cameras past the other cameras' alerts
    r = client.get("/api/alerts", params={"limit": 1, "after": r.json()[0]["id"]}, headers=tokens["limited"])
    assert ids(r.json()) == [later.alert_id]
    # unlimited users: unchanged (no scan headers, the newest `limit` alerts)
    r = client.get("/api/alerts", params={"limit": 2}, headers=tokens["op"])
    assert len(r.json()) == 2 and "X-Alerts-Scanned" not in r.headers


def test_alert_filter_scan_count_leaves_out_other_cameras(client: TestClient, tokens: dict,
                                                          rclient: redis.Redis) -> None:
    """X-Alerts-Scanned counts only the alerts a camera-limited user may see."""
    for _ in range(4):
        publish_alert(rclient, OTHER)
    mine = publish_alert(rclient, MINE)
    r = client.get("/api/alerts", params={"entry_id": "e1"}, headers=tokens["limited"])
    assert ids(r.json()) == [mine.alert_id]
    assert r.headers["X-Alerts-Scanned"] == "1" and r.headers["X-Alerts-Scan-Complete"] == "true"
    assert client.get("/api/alerts", params={"entry_id": "e1"}, headers=tokens["op"]).headers[
        "X-Alerts-Scanned"] == "5"


def test_event_and_marker_scans_count_only_own_cameras(client: TestClient, tokens: dict,
                                                       rclient: redis.Redis) -> None:
    """The camera events list and the playback timeline read every camera's entries; a camera-limited user is
    told only how many of their own cameras' were read (``scanned``, ``markers_scanned``)."""
    import time

    now = time.time()
    for i in range(3):
        publish_plate(rclient, f"{i}กข1234", OTHER, t=now)
        publish_alert(rclient, OTHER)
    mine = publish_plate(rclient, "9กข9999", MINE, t=now)
    r = client.get(f"/api/cameras/{MINE}/events", headers=tokens["limited"])
    assert r.status_code == 200 and [e["event_id"] for e in r.json()["items"]] == [mine.event_id]
    assert r.json()["scanned"] == 1, r.json()
    assert client.get(f"/api/cameras/{MINE}/events", headers=tokens["inv"]).json()["scanned"] == 4
    window = {"start": now - 60, "end": now + 60}
    r = client.get(f"/api/recordings/{MINE}/timeline", params=window, headers=tokens["limited"])
    assert r.status_code == 200, r.text
    assert [m["event_id"] for m in r.json()["markers"]] == [mine.event_id] and r.json()["markers_scanned"] == 1
    assert client.get(f"/api/recordings/{MINE}/timeline", params=window,
                      headers=tokens["inv"]).json()["markers_scanned"] == 7


@pytest.mark.parametrize(("params", "field"), [({"start": "1733050000", "end": "1733049000"}, "end"),
                                               ({"start": "1733050000", "end": "1733050000"}, "end"),
                                               ({"start": "yesterday", "end": "1733050000"}, "start")])
def test_timeline_window_errors_are_field_errors(client: TestClient, tokens: dict, params: dict, field: str) -> None:
    """An inverted, empty or unreadable timeline window is a 422 naming its field, like every invalid field."""
    r = client.get(f"/api/recordings/{MINE}/timeline", params=params, headers=tokens["op"])
    assert r.status_code == 422
    assert [e["field"] for e in r.json().get("errors", [])] == [field], r.json()
    assert r.json()["detail"].startswith(f"{field}: ")


def test_alert_stream_keep_alives_keep_time_while_other_cameras_raise_alerts(redis_url: str,
                                                                             rclient: redis.Redis) -> None:
    """The live alert feed sends its keep-alive on a wall-clock interval: it used to send one only after a read
    that returned nothing, so while cameras the user cannot see raised alerts the keep-alives stopped, which told
    a camera-limited user of them. The user's own alerts still arrive."""
    import asyncio
    import threading
    import time

    from api.deps import User
    from api.routes.alerts import _tail
    from pipeline.store.connection import async_redis_client

    user = User(username="limited", role="investigator", cameras=frozenset({MINE}), via="token")
    stop = threading.Event()

    def other_cameras() -> None:  # an alert somewhere else every 40 ms, one of the user's own half-way
        started = time.monotonic()
        mine_sent = False
        while not stop.is_set():
            publish_alert(rclient, OTHER)
            if not mine_sent and time.monotonic() - started > 0.8:
                publish_alert(rclient, MINE, entry="mine")
                mine_sent = True
            time.sleep(0.04)

    async def collect() -> list:
        async def same(u: User) -> User:
            return u

        client = async_redis_client(redis_url)
        items: list = []
        feed = _tail(client, user, None, 300, same)
        deadline = time.monotonic() + 2.4
        try:
            while time.monotonic() < deadline:
                items.append(await asyncio.wait_for(anext(feed), 5))
        finally:
            await feed.aclose()
            await client.aclose()
        return items

    writer = threading.Thread(target=other_cameras, daemon=True)
    writer.start()
    try:
        items = asyncio.run(collect())
    finally:
        stop.set()
        writer.join(5)
    assert sum(item is None for item in items) >= 3, items  # about 8 on an idle host
    assert [i["alert"]["entry_id"] for i in items if i is not None] == ["mine"]
