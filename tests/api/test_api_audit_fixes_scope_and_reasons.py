"""Camera scope of watchlist entries, the face-search audit record, blank reasons and names, decompression bombs."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.events import FaceEvent
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(300)


def lfw(shared: Path, person: str, i: int) -> bytes:
    return (shared / "data" / "faces_lfw" / "images" / person / f"{person}_{i:04d}.jpg").read_bytes()


def _plate_list(client: TestClient, adm: dict) -> str:
    """A plate watchlist with one entry for every camera, one for stage-01 and one for walkway-01 and stage-01."""
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]
    for plate, cameras in (("1กก1111", None), ("2กก2222", ["stage-01"]), ("3กก3333", ["walkway-01", "stage-01"])):
        r = client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                        json={"plate": plate, "cameras": cameras, "reason": "theft", "severity": "high"})
        assert r.status_code == 201, r.text
    return wid


# -- 1. watchlist entries of other cameras --------------------------------------------------------------------------
def test_a_camera_limited_user_sees_no_entry_of_other_cameras(client: TestClient, tokens: dict) -> None:
    wid = _plate_list(client, tokens["adm"])
    r = client.get(f"/api/watchlists/{wid}/entries", headers=tokens["limited"])  # limited to walkway-01
    assert r.status_code == 200, r.text
    seen = {e["plate"]: e["cameras"] for e in r.json()}
    assert seen == {"1กก1111": None, "3กก3333": ["walkway-01"]}
    assert "stage-01" not in r.text and "2กก2222" not in r.text
    counts = {w["id"]: w["entries"] for w in client.get("/api/watchlists", headers=tokens["limited"]).json()}
    assert counts[wid] == 2
    assert client.get(f"/api/watchlists/{wid}", headers=tokens["limited"]).json()["entries"] == 2


def test_users_of_every_camera_still_see_every_entry(client: TestClient, tokens: dict) -> None:
    wid = _plate_list(client, tokens["adm"])
    for who in ("inv", "adm"):
        entries = client.get(f"/api/watchlists/{wid}/entries", headers=tokens[who]).json()
        assert sorted(e["plate"] for e in entries) == ["1กก1111", "2กก2222", "3กก3333"]
        assert {e["plate"]: e["cameras"] for e in entries}["3กก3333"] == ["walkway-01", "stage-01"]
        assert client.get("/api/watchlists", headers=tokens[who]).json()[0]["entries"] == 3


def test_person_entries_of_other_cameras_are_hidden_too(client: TestClient, tokens: dict, shared_dir: Path) -> None:
    adm = tokens["adm"]
    r = client.post("/api/persons", headers=adm, data={"name": "Angela"},
                    files=[("photos", ("a.jpg", lfw(shared_dir, "Angela_Bassett", 1), "image/jpeg"))])
    assert r.status_code == 201, r.text
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "face", "name": "vip"}).json()["id"]
    assert client.post(f"/api/watchlists/{wid}/persons", headers=adm,
                       json={"person_id": r.json()["id"], "cameras": ["stage-01"]}).status_code == 201
    r = client.get(f"/api/watchlists/{wid}/entries", headers=tokens["limited"])
    assert r.status_code == 200 and r.json() == []
    assert client.get("/api/watchlists", headers=tokens["limited"]).json()[0]["entries"] == 0
    assert len(client.get(f"/api/watchlists/{wid}/entries", headers=tokens["inv"]).json()) == 1


# -- 2. the face-search audit record says which photo and which hits ------------------------------------------------
def test_the_face_search_audit_keeps_the_photo_hash_and_the_hit_ids(client: TestClient, tokens: dict,
                                                                    rclient: redis.Redis, shared_dir: Path) -> None:
    image = cv2.imdecode(np.frombuffer(lfw(shared_dir, "Angela_Bassett", 3), np.uint8), cv2.IMREAD_COLOR)
    (emb,) = client.app.state.faces.analyzer().embed_face_images([image])
    event = FaceEvent(camera_id="walkway-01", track_id=1, started_at=10, ended_at=11, frame_time=10.5,
                      embedding=emb.tolist(), quality=0.9, det_score=0.9)
    assert EventStore(rclient).publish_face_event(event)
    photo = lfw(shared_dir, "Angela_Bassett", 4)
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": "case 12"},
                    files={"image": ("q.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert [h["event_id"] for h in r.json()["hits"]] == [event.event_id]
    (record,) = client.get("/api/audit?action=face_search", headers=tokens["adm"]).json()
    assert record["params"]["image_sha256"] == hashlib.sha256(photo).hexdigest()
    assert record["params"]["hit_event_ids"] == [event.event_id]


# -- 3. a reason of spaces is no reason -----------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["   ", " a  ", "\t\n\t\n"])
def test_a_blank_face_search_reason_is_refused(client: TestClient, tokens: dict, shared_dir: Path,
                                               reason: str) -> None:
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": reason},
                    files={"image": ("q.jpg", lfw(shared_dir, "Angela_Bassett", 4), "image/jpeg")})
    assert r.status_code == 422, r.text
    assert "reason" in r.text
    assert client.get("/api/audit?action=face_search", headers=tokens["adm"]).json() == []


@pytest.mark.parametrize("reason", ["   ", " a  ", "\t\t\t\t"])
def test_a_blank_plate_history_reason_is_refused(client: TestClient, tokens: dict, reason: str) -> None:
    r = client.get("/api/plates/1กก1111/history", headers=tokens["inv"], params={"reason": reason})
    assert r.status_code == 422, r.text
    assert "reason" in r.text


def test_a_reason_is_kept_stripped(client: TestClient, tokens: dict) -> None:
    r = client.get("/api/plates/1กก1111/history", headers=tokens["inv"], params={"reason": "  case 7  "})
    assert r.status_code == 404, r.text  # never read, but searched and audited
    (record,) = client.get("/api/audit?action=plate_history", headers=tokens["adm"]).json()
    assert record["params"]["reason"] == "case 7"


# -- 4. blank person names; the deletion audit keeps the name ------------------------------------------------------
def test_a_person_cannot_be_named_with_spaces(client: TestClient, tokens: dict, shared_dir: Path) -> None:
    adm = tokens["adm"]
    photo = ("photos", ("a.jpg", lfw(shared_dir, "Angela_Bassett", 1), "image/jpeg"))
    r = client.post("/api/persons", headers=adm, data={"name": "   "}, files=[photo])
    assert r.status_code == 422 and "name" in r.text, r.text
    r = client.post("/api/persons", headers=adm, data={"name": "  Angela  "}, files=[photo])
    assert r.status_code == 201 and r.json()["name"] == "Angela", r.text
    pid = r.json()["id"]
    r = client.patch(f"/api/persons/{pid}", headers=adm, json={"name": " \t "})
    assert r.status_code == 422 and "name" in r.text, r.text
    assert client.get(f"/api/persons/{pid}", headers=adm).json()["name"] == "Angela"
    assert client.delete(f"/api/persons/{pid}", headers=adm).status_code == 204
    (record,) = client.get("/api/audit?action=person_delete", headers=adm).json()
    assert record["params"] == {"person_id": pid, "name": "Angela"}


# -- 5. a decompression bomb gets the size answer -------------------------------------------------------------------
def test_a_decompression_bomb_gets_the_size_answer(client: TestClient, tokens: dict) -> None:
    buf = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buf, "PNG", compress_level=9)
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": "case 12"},
                    files={"image": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "20000x20000" in detail and "pixels are accepted" in detail and "header" not in detail
