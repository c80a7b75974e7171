"""Recent plate and face events of one camera: newest first, paging, roles, camera limits, the scan cap."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from pipeline.events import FaceEvent, PlateEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)
CAM, OTHER = "bkk-night-01", "walkway-01"


def plate(camera: str, text: str, t: float, **kw) -> PlateEvent:
    return PlateEvent(camera_id=camera, track_id=1, started_at=t - 1, ended_at=t + 1, frame_time=t, plate_text=text,
                      province="กรุงเทพมหานคร", confidence=0.9, crop_path=f"crops/{camera}/{text}.jpg", **kw)


def face(camera: str, t: float, seed: int) -> FaceEvent:
    emb = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return FaceEvent(camera_id=camera, track_id=seed, started_at=t - 1, ended_at=t + 1, frame_time=t,
                     embedding=(emb / np.linalg.norm(emb)).tolist(), quality=0.7, det_score=0.9,
                     crop_path=f"faces/{camera}/{seed}.jpg")


def events(client: TestClient, headers: dict, camera: str = CAM, **params) -> dict:
    r = client.get(f"/api/cameras/{camera}/events", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_plate_events_newest_first_with_paging(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    store = EventStore(rclient)
    mine = [plate(CAM, f"1กข{1000 + i}", 1000 + i) for i in range(5)]
    for i, ev in enumerate(mine):
        store.publish_plate_event(ev)
        store.publish_plate_event(plate(OTHER, f"2กข{2000 + i}", 5000 + i))
    first = events(client, tokens["op"], kind="plate", limit=3)
    assert [e["plate_text"] for e in first["items"]] == ["1กข1004", "1กข1003", "1กข1002"]
    assert first["items"][0]["crop_url"] == "/api/media/crops/bkk-night-01/1%E0%B8%81%E0%B8%821004.jpg"
    assert first["items"][0]["kind"] == "plate" and first["items"][0]["event_id"] == mine[4].event_id
    assert not first["capped"] and first["next_before"] == first["items"][-1]["stream_id"]
    rest = events(client, tokens["op"], kind="plate", limit=3, before=first["next_before"])
    assert [e["plate_text"] for e in rest["items"]] == ["1กข1001", "1กข1000"]
    assert rest["next_before"] is None and not rest["capped"]  # the oldest event was reached
    assert [e["camera_id"] for e in events(client, tokens["op"], OTHER)["items"]] == [OTHER] * 5


def test_updated_event_is_listed_once_as_newest(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    store = EventStore(rclient)
    early, late = plate(CAM, "1กข1111", 1000), plate(CAM, "1กข2222", 2000)
    store.publish_plate_event(early)
    store.publish_plate_event(late)
    store.publish_plate_event(early.model_copy(update={"version": 2, "plate_text": "1กข1117", "confidence": 0.97}))
    items = events(client, tokens["op"])["items"]
    assert [(e["event_id"], e["version"], e["plate_text"]) for e in items] == [
        (early.event_id, 2, "1กข1117"), (late.event_id, 1, "1กข2222")]


def test_face_events_need_investigator_and_hide_embeddings(client: TestClient, tokens: dict,
                                                           rclient: redis.Redis) -> None:
    store = EventStore(rclient)
    stored = [face(OTHER, 1000 + i, i) for i in range(3)]
    store.publish_face_events(stored + [face(CAM, 900, 9)])
    r = client.get(f"/api/cameras/{OTHER}/events", params={"kind": "face"}, headers=tokens["op"])
    assert r.status_code == 403 and "investigator" in r.json()["detail"]
    body = events(client, tokens["inv"], OTHER, kind="face")
    assert [e["event_id"] for e in body["items"]] == [e.event_id for e in reversed(stored)]
    assert all("embedding" not in e and e["kind"] == "face" and e["quality"] == 0.7 for e in body["items"])
    assert body["items"][0]["crop_url"] == "/api/media/faces/walkway-01/2.jpg"
    assert events(client, tokens["inv"], OTHER, kind="plate")["items"] == []


def test_camera_limits_unknown_cameras_and_bad_input(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    EventStore(rclient).publish_plate_event(plate(CAM, "1กข1234", 1000))
    # 'limited' sees walkway-01 only: another camera is as unknown as one that does not exist
    for camera in (CAM, "nope"):
        r = client.get(f"/api/cameras/{camera}/events", headers=tokens["limited"])
        assert r.status_code == 404 and camera in r.json()["detail"]
    assert events(client, tokens["limited"], OTHER)["items"] == []
    assert client.get(f"/api/cameras/{CAM}/events").status_code == 401
    for params, name in (({"kind": "car"}, "kind"), ({"limit": 0}, "limit"), ({"limit": 201}, "limit"),
                         ({"before": "yesterday"}, "before")):
        r = client.get(f"/api/cameras/{CAM}/events", params=params, headers=tokens["op"])
        assert r.status_code == 422 and r.json()["detail"].startswith(name), (params, r.text)


def test_scan_cap_bounds_one_request_and_paging_continues(api_settings, tokens: dict, rclient: redis.Redis) -> None:
    store = EventStore(rclient)
    store.publish_plate_event(plate(CAM, "1กข1234", 1000))
    store.publish_plate_events([plate(OTHER, f"2กข{1000 + i}", 2000 + i) for i in range(150)])
    with TestClient(create_app(api_settings.model_copy(update={"camera_events_scan": 100}))) as small:
        first = events(small, tokens["op"], limit=5)
        assert first["items"] == [] and first["capped"] and first["scanned"] == 100 and first["scan_cap"] == 100
        second = events(small, tokens["op"], limit=5, before=first["next_before"])
        assert [e["plate_text"] for e in second["items"]] == ["1กข1234"]
        assert second["scanned"] == 51 and not second["capped"] and second["next_before"] is None
