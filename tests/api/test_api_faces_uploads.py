"""Face enrolment and search with real LFW photos and the real face model; hostile uploads."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import FaceEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(300)


def lfw(shared: Path, person: str, i: int) -> bytes:
    return (shared / "data" / "faces_lfw" / "images" / person / f"{person}_{i:04d}.jpg").read_bytes()


def test_enrol_and_search_finds_person_not_strangers(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                     shared_dir: Path) -> None:
    adm, inv = tokens["adm"], tokens["inv"]
    r = client.post("/api/persons", headers=adm, data={"name": "Angela"},
                    files=[("photos", ("a1.jpg", lfw(shared_dir, "Angela_Bassett", 1), "image/jpeg")),
                           ("photos", ("a2.jpg", lfw(shared_dir, "Angela_Bassett", 2), "image/jpeg"))])
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["photos"] == 2
    # store face events as the engine would: embeddings of other photos of the same person and of strangers
    analyzer = client.app.state.faces.analyzer()
    photos = {"angela": lfw(shared_dir, "Angela_Bassett", 3), "billy": lfw(shared_dir, "Billy_Crystal", 1),
              "carmen": lfw(shared_dir, "Carmen_Electra", 1)}
    import cv2

    ids = {}
    for who, data in photos.items():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        (emb,) = analyzer.embed_face_images([image])
        event = FaceEvent(camera_id="walkway-01", track_id=1, started_at=10, ended_at=11, frame_time=10.5,
                          embedding=emb.tolist(), quality=0.9, det_score=0.9, crop_path=f"faces/{who}.jpg")
        assert EventStore(rclient).publish_face_event(event)
        ids[who] = event.event_id
    r = client.post("/api/faces/search", headers=inv, data={"reason": "case 12"},
                    files={"image": ("q.jpg", lfw(shared_dir, "Angela_Bassett", 4), "image/jpeg")})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert [h["event_id"] for h in hits] == [ids["angela"]]
    assert hits[0]["similarity"] > 0.45 and hits[0]["camera_id"] == "walkway-01"
    r = client.post("/api/faces/search", headers=inv, data={"cameras": ["bkk-night-01"], "reason": "case 12"},
                    files={"image": ("q.jpg", lfw(shared_dir, "Angela_Bassett", 4), "image/jpeg")})
    assert r.json()["hits"] == []
    assert client.post("/api/faces/search", headers=tokens["op"],
                       files={"image": ("q.jpg", b"x", "image/jpeg")}).status_code == 403
    # the person can go on a face watchlist that the engine reads
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "face", "name": "vip"}).json()["id"]
    assert client.post(f"/api/watchlists/{wid}/persons", headers=adm,
                       json={"person_id": person["id"], "threshold": 0.5}).status_code == 201
    from pipeline.store import WatchlistStore

    (entry,) = WatchlistStore(rclient).face_entries()
    assert entry.embeddings.shape == (2, 128)
    assert client.delete(f"/api/persons/{person['id']}", headers=adm).status_code == 204
    assert client.get(f"/api/persons/{person['id']}", headers=adm).status_code == 404


def test_enrolment_refuses_group_and_faceless_photos(client: TestClient, tokens: dict, shared_dir: Path) -> None:
    group = (shared_dir / "data" / "faces_multi" / "images" / "deepface_selfie-many-people.jpg").read_bytes()
    r = client.post("/api/persons", headers=tokens["adm"], data={"name": "x"},
                    files=[("photos", ("group.jpg", group, "image/jpeg"))])
    assert r.status_code == 422 and "photos[0]" in r.json()["detail"] and "faces found" in r.json()["detail"]
    import cv2

    ok, blank = cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))
    r = client.post("/api/persons", headers=tokens["adm"], data={"name": "x"},
                    files=[("photos", ("blank.png", blank.tobytes(), "image/png"))])
    assert r.status_code == 422 and "no usable face" in r.json()["detail"]


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("name,data,status", [
    ("not-image.jpg", b"%PDF-1.4 definitely not an image", 415),
    ("empty.jpg", b"", 422),
    ("bomb.png", _png_header(60000, 60000) + b"\x00" * 64, 422),
    ("truncated.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 32, 422),
])
def test_hostile_uploads_are_refused(client: TestClient, tokens: dict, name: str, data: bytes, status: int) -> None:
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": "case 12"},
                    files={"image": (name, data, "image/jpeg")})
    assert r.status_code == status, r.text
    assert "image" in r.json()["detail"]
    assert client.get("/api/health").status_code == 200


def test_oversized_upload_is_413(client: TestClient, tokens: dict, api_settings) -> None:
    big = b"\xff\xd8\xff" + b"\x00" * (api_settings.max_upload_bytes + 10)
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": "case 12"},
                    files={"image": ("big.jpg", io.BytesIO(big))})
    assert r.status_code == 413
