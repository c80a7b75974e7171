"""Face search by photo: which face of a group photo was searched (box, count, ``face_index``) and honest paging
(``offset``/``limit``/``has_more``), with a real group photo, real LFW photos and the real face model."""

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

REASON = {"reason": "case 2026/91"}


def group_photo(shared: Path) -> bytes:
    return (shared / "data" / "faces_multi" / "images" / "deepface_selfie-many-people.jpg").read_bytes()


def lfw(shared: Path, person: str, i: int) -> bytes:
    return (shared / "data" / "faces_lfw" / "images" / person / f"{person}_{i:04d}.jpg").read_bytes()


def search(client: TestClient, token: dict, photo: bytes, **form) -> object:
    return client.post("/api/faces/search", headers=token, data={**REASON, **{k: str(v) for k, v in form.items()}},
                       files={"image": ("q.jpg", photo, "image/jpeg")})


def area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def test_group_photo_says_which_face_was_searched_and_another_can_be_chosen(
        client: TestClient, tokens: dict, shared_dir: Path) -> None:
    photo = group_photo(shared_dir)
    height, width = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    r = search(client, tokens["inv"], photo)
    assert r.status_code == 200, r.text
    body = r.json()
    found = body["faces_found"]
    assert found > 1, body
    first = body["face"]
    assert first["index"] == 0 and len(first["box"]) == 4
    x1, y1, x2, y2 = first["box"]
    assert 0 <= x1 < x2 <= width + 1 and 0 <= y1 < y2 <= height + 1
    r = search(client, tokens["inv"], photo, face_index=found - 1)
    assert r.status_code == 200, r.text
    last = r.json()["face"]
    assert last["index"] == found - 1 and last["box"] != first["box"]
    assert area(last["box"]) <= area(first["box"])  # largest first
    # past the photo's last face, or past the field's bound: 422 naming the field
    r = search(client, tokens["inv"], photo, face_index=found)
    assert r.status_code == 422 and "face_index" in r.json()["detail"], r.text
    r = search(client, tokens["inv"], photo, face_index=64)
    assert r.status_code == 422 and "face_index" in r.text, r.text
    r = search(client, tokens["inv"], photo, face_index=-1)
    assert r.status_code == 422 and "face_index" in r.text, r.text


def test_face_search_pages_through_every_match(client: TestClient, tokens: dict, rclient: redis.Redis,
                                               shared_dir: Path) -> None:
    analyzer = client.app.state.faces.analyzer()
    image = cv2.imdecode(np.frombuffer(lfw(shared_dir, "Angela_Bassett", 3), np.uint8), cv2.IMREAD_COLOR)
    (emb,) = analyzer.embed_face_images([image])
    rng = np.random.default_rng(7)
    store, ids = EventStore(rclient), []
    for i in range(7):  # seven sightings of the same face, slightly different
        e = np.asarray(emb, np.float32) + rng.normal(scale=0.01, size=len(emb)).astype(np.float32)
        event = FaceEvent(camera_id="walkway-01", track_id=i, started_at=10 + i, ended_at=11 + i, frame_time=10.5 + i,
                          embedding=(e / np.linalg.norm(e)).tolist(), quality=0.9, det_score=0.9)
        assert store.publish_face_event(event)
        ids.append(event.event_id)
    query = lfw(shared_dir, "Angela_Bassett", 4)
    r = search(client, tokens["inv"], query, limit=500)
    assert r.status_code == 200, r.text
    everything = r.json()
    assert sorted(h["event_id"] for h in everything["hits"]) == sorted(ids)
    assert everything["has_more"] is False and everything["next_offset"] is None and everything["faces_found"] == 1
    pages, offset = [], 0
    while offset is not None:
        r = search(client, tokens["inv"], query, limit=3, offset=offset)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["offset"] == offset and page["limit"] == 3 and page["total"] == len(page["hits"])
        pages.append(page)
        offset = page["next_offset"]
        assert page["has_more"] is (offset is not None)
    assert [len(p["hits"]) for p in pages] == [3, 3, 1]
    assert [h["event_id"] for p in pages for h in p["hits"]] == [h["event_id"] for h in everything["hits"]]
    r = search(client, tokens["inv"], query, limit=3, offset=7)
    assert r.status_code == 200 and r.json()["hits"] == [] and r.json()["has_more"] is False
    r = search(client, tokens["inv"], query, offset=5001)
    assert r.status_code == 422 and "offset" in r.text
