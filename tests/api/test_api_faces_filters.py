"""Face search filters: ``start``/``end`` take ISO-8601 as well as epoch seconds (like plate search and exports), and
``cameras`` is checked: an unknown camera, or one outside the caller's cameras, is the same 422 naming it (never
listing the cameras that exist), answered before the photo is looked at. Real Redis, real API, real face model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import FaceEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(300)

REASON = {"reason": "case 2026/92"}


def _photo(shared: Path, i: int) -> bytes:
    return (shared / "data" / "faces_lfw" / "images" / "Angela_Bassett" / f"Angela_Bassett_{i:04d}.jpg").read_bytes()


def _search(client: TestClient, headers: dict, photo: bytes, **form: object) -> object:
    return client.post("/api/faces/search", headers=headers, data={**REASON, **form},
                       files={"image": ("q.jpg", photo, "image/jpeg")})


def _sighting(client: TestClient, rclient: redis.Redis, shared: Path, camera_id: str, frame_time: float) -> str:
    """A stored face event of the query person on ``camera_id`` at ``frame_time``; its event id."""
    image = cv2.imdecode(np.frombuffer(_photo(shared, 3), np.uint8), cv2.IMREAD_COLOR)
    (emb,) = client.app.state.faces.analyzer().embed_face_images([image])
    event = FaceEvent(camera_id=camera_id, track_id=1, started_at=frame_time - 0.5, ended_at=frame_time + 0.5,
                      frame_time=frame_time, embedding=list(emb), quality=0.9, det_score=0.9)
    assert EventStore(rclient).publish_face_event(event)
    return event.event_id


def test_iso_times_filter_the_face_search(client: TestClient, tokens: dict, rclient: redis.Redis,
                                          shared_dir: Path) -> None:
    early = _sighting(client, rclient, shared_dir, "walkway-01", 10.5)  # 1970-01-01T00:00:10.5Z
    late = _sighting(client, rclient, shared_dir, "walkway-01", 3600.5)  # 1970-01-01T01:00:00.5Z
    query = _photo(shared_dir, 4)
    r = _search(client, tokens["inv"], query, start="1970-01-01T00:00:00Z", end="1970-01-01T00:01:00Z")
    assert r.status_code == 200, r.text
    assert [h["event_id"] for h in r.json()["hits"]] == [early]
    r = _search(client, tokens["inv"], query, start="1970-01-01T07:30:00+07:00")  # 00:30 UTC
    assert r.status_code == 200, r.text
    assert [h["event_id"] for h in r.json()["hits"]] == [late]
    r = _search(client, tokens["inv"], query, start="10", end="20")  # epoch seconds still work
    assert r.status_code == 200 and [h["event_id"] for h in r.json()["hits"]] == [early], r.text
    r = _search(client, tokens["inv"], query, start="yesterday")
    assert r.status_code == 422 and "start" in r.json()["detail"] and "ISO-8601" in r.json()["detail"], r.text
    r = _search(client, tokens["inv"], query, start="1970-01-01T01:00:00Z", end="1970-01-01T00:00:00Z")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "end", r.text


def test_unknown_and_foreign_cameras_are_the_same_422(client: TestClient, tokens: dict, shared_dir: Path) -> None:
    query = _photo(shared_dir, 4)
    r = _search(client, tokens["inv"], query, cameras="nope-99")
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "cameras", "message": "unknown camera 'nope-99'", "type": "value_error"}]
    # 'limited' sees only walkway-01: bkk-night-01 exists, but the answer is the one an unknown camera gets
    r = _search(client, tokens["limited"], query, cameras=["walkway-01", "bkk-night-01"])
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "cameras", "message": "unknown camera 'bkk-night-01'",
                                   "type": "value_error"}]
    assert "stage-01" not in r.text and "walkway-01" not in r.text
    r = _search(client, tokens["limited"], query, cameras="walkway-01")
    assert r.status_code == 200, r.text
    # checked before the photo is looked at: a file that is no image still gets the camera answer
    r = client.post("/api/faces/search", headers=tokens["inv"], data={**REASON, "cameras": "nope-99"},
                    files={"image": ("q.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cameras", r.text
