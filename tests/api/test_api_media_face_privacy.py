"""Face images through ``/api/media`` (PDPA): a face event's crop or frame reaches only the roles that may list face
events (investigator and up); an operator gets the crop of a face alert they may see, nothing else of a face.

Every request goes through the app on the test Redis; the alerts are written by the real publisher
(:meth:`pipeline.store.EventStore.publish_alert`), which indexes face-alert crops in ``alerts:face_media``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from api.store import ApiStore
from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store import EventStore, keys

pytestmark = pytest.mark.timeout(120)
WALK, BKK = "walkway-01", "bkk-night-01"
DAY = "2026-12-05"
PASSWORD = "correct horse battery"


def _jpeg(root, rel: str) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff" + rel.encode())
    return rel


def _face(root, camera: str, seed: int) -> FaceEvent:
    """A stored-shape face event with its crop and frame written under the recordings dir."""
    emb = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    event = FaceEvent(camera_id=camera, track_id=seed, started_at=99.0, ended_at=101.0, frame_time=100.0,
                      embedding=(emb / np.linalg.norm(emb)).tolist(), quality=0.7, det_score=0.9)
    base = f"snapshots/{camera}/{DAY}/{event.event_id}"
    return event.model_copy(update={"crop_path": _jpeg(root, f"{base}_face.jpg"),
                                    "snapshot_path": _jpeg(root, f"{base}_frame.jpg")})


def _plate(root, camera: str) -> PlateEvent:
    event = PlateEvent(camera_id=camera, track_id=1, started_at=99.0, ended_at=101.0, frame_time=100.0,
                       plate_text="1กข1234", confidence=0.9)
    base = f"snapshots/{camera}/{DAY}/{event.event_id}"
    return event.model_copy(update={"crop_path": _jpeg(root, f"{base}_plate.jpg"),
                                    "snapshot_path": _jpeg(root, f"{base}_frame.jpg")})


def _face_alert(event: FaceEvent, **kw) -> Alert:
    return Alert(kind="face", watchlist_id="wl1", entry_id="person1", event_id=event.event_id,
                 camera_id=kw.pop("camera_id", event.camera_id), label="wanted", score=0.8,
                 crop_path=kw.pop("crop_path", event.crop_path), **kw)


def _get(client: TestClient, headers: dict, rel: str) -> int:
    return client.get(f"/api/media/{rel}", headers=headers).status_code


@pytest.fixture()
def root(api_settings):
    return api_settings.recordings_dir


@pytest.fixture()
def op_walk(client: TestClient, rclient: redis.Redis) -> dict:
    """Bearer header of an operator limited to walkway-01."""
    ApiStore(rclient, scrypt_n=16).put_user("opwalk", "operator", PASSWORD, [WALK])
    r = client.post("/api/auth/login", json={"username": "opwalk", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_operator_gets_face_alert_crops_only(client: TestClient, tokens: dict, rclient: redis.Redis, root) -> None:
    """The crop of a face alert reaches the operator; the face crop and frame of an event no alert names, the
    alert event's frame, a legacy ``faces/`` crop and a frame of an unknown event do not. Plate crops and frames
    and a camera's live snapshot stay the operator's. Investigators and admins get every one of them."""
    store = EventStore(rclient)
    alerted, passer_by, vehicle = _face(root, WALK, 1), _face(root, WALK, 2), _plate(root, WALK)
    store.publish_face_events([alerted, passer_by])
    store.publish_plate_event(vehicle)
    assert store.publish_alert(_face_alert(alerted))
    legacy = _jpeg(root, f"faces/{WALK}/7.jpg")
    unknown_frame = _jpeg(root, f"snapshots/{WALK}/{DAY}/0000000000000-deadbeef0000_frame.jpg")
    stray = _jpeg(root, f"snapshots/{WALK}/{DAY}/notes.jpg")
    live = _jpeg(root, f"snapshots/{WALK}/latest.jpg")
    allowed = [alerted.crop_path, vehicle.crop_path, vehicle.snapshot_path, live]
    refused = [passer_by.crop_path, passer_by.snapshot_path, alerted.snapshot_path, legacy, unknown_frame, stray]
    for rel in allowed:
        assert _get(client, tokens["op"], rel) == 200, rel
    for rel in refused:
        assert _get(client, tokens["op"], rel) == 404, rel
    for who in ("inv", "adm"):
        for rel in allowed + refused:
            assert _get(client, tokens[who], rel) == 200, (who, rel)
    body = client.get(f"/api/media/{alerted.crop_path}", headers=tokens["op"]).content
    assert body == b"\xff\xd8\xff" + alerted.crop_path.encode()
    audit = client.get("/api/audit", params={"action": "media_refused"}, headers=tokens["adm"]).json()
    assert {a["params"]["resolved"] for a in audit if a["user"] == "op"} == set(refused)


def test_plate_frame_beside_its_crop_without_an_index_entry_stays_visible(client: TestClient, tokens: dict,
                                                                          root) -> None:
    """A plate event's frame whose event is not in ``plates:ev`` (merged at a hand-over, or pruned) is still a plate
    image when its plate crop lies beside it: the face rule does not take plate frames from operators."""
    vehicle = _plate(root, WALK)  # files only: the event was never stored under this id
    assert _get(client, tokens["op"], vehicle.snapshot_path) == 200
    assert _get(client, tokens["op"], vehicle.crop_path) == 200


def test_alert_crops_keep_camera_scope(client: TestClient, tokens: dict, rclient: redis.Redis, root,
                                       op_walk: dict) -> None:
    """An operator limited to walkway-01 gets the crop of a walkway-01 face alert, never one of bkk-night-01 (nor a
    limited investigator); an alert on another camera naming a walkway-01 crop does not open that crop."""
    store = EventStore(rclient)
    mine, theirs, borrowed = _face(root, WALK, 1), _face(root, BKK, 2), _face(root, WALK, 3)
    store.publish_face_events([mine, theirs, borrowed])
    assert store.publish_alert(_face_alert(mine))
    assert store.publish_alert(_face_alert(theirs))
    assert store.publish_alert(_face_alert(borrowed, camera_id=BKK))  # inconsistent: the alert's camera is BKK
    assert _get(client, op_walk, mine.crop_path) == 200
    assert _get(client, op_walk, theirs.crop_path) == 404
    assert _get(client, op_walk, borrowed.crop_path) == 404
    assert _get(client, tokens["op"], borrowed.crop_path) == 200  # an unlimited operator sees BKK's alert
    assert _get(client, tokens["limited"], theirs.crop_path) == 404
    assert _get(client, tokens["limited"], mine.crop_path) == 200


def test_crafted_paths_do_not_reach_face_images(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                root) -> None:
    """What an operator could send: the alert crop's name with the passer-by's event id, ``..`` and encoded
    segments around an alert crop, a symlink beside an alert crop to a passer-by's crop, a plate alert whose crop is
    a face crop, a face alert without a crop, and a face alert the stream's cap has trimmed."""
    store = EventStore(rclient)
    alerted, passer_by, trimmed = _face(root, WALK, 1), _face(root, WALK, 2), _face(root, WALK, 3)
    store.publish_face_events([alerted, passer_by, trimmed])
    assert store.publish_alert(_face_alert(trimmed))
    rclient.xtrim(keys.ALERT_STREAM, maxlen=0, approximate=False)  # what the MAXLEN cap does to an old alert
    assert store.publish_alert(_face_alert(alerted))
    assert store.publish_alert(Alert(kind="plate", watchlist_id="wl2", entry_id="e1", event_id=passer_by.event_id,
                                     camera_id=WALK, label="1กข1234", crop_path=passer_by.crop_path))
    assert store.publish_alert(_face_alert(passer_by, crop_path=None))
    link = f"snapshots/{WALK}/{DAY}/{alerted.event_id}_link_face.jpg"
    os.symlink(root / passer_by.crop_path, root / link)
    op = tokens["op"]
    folder = f"snapshots/{WALK}/{DAY}"
    for rel in (passer_by.crop_path, passer_by.snapshot_path, trimmed.crop_path, link,
                f"{folder}/../{DAY}/{passer_by.event_id}_face.jpg",
                f"{folder}/%2e%2e/{DAY}/{passer_by.event_id}_face.jpg",
                f"{alerted.crop_path}/../{passer_by.event_id}_face.jpg",
                f"{folder}//{passer_by.event_id}_face.jpg",
                f"{folder}/./{passer_by.event_id}_face.jpg",
                f"{folder}/{passer_by.event_id}_face.jpg%00{alerted.event_id}_face.jpg",
                f"{folder}\\{passer_by.event_id}_face.jpg"):
        assert _get(client, op, rel) == 404, rel
    assert _get(client, op, alerted.crop_path) == 200
    assert _get(client, tokens["inv"], trimmed.crop_path) == 200


def test_alert_media_index_follows_the_alert_stream(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                    root) -> None:
    """The publisher writes the face-alert crop into ``alerts:face_media`` with the alert (plate alerts and repeats
    add nothing); the retention pass drops the entry once the stream's cap trimmed its alert."""
    store = EventStore(rclient)
    old, new = _face(root, WALK, 1), _face(root, WALK, 2)
    assert store.publish_alert(_face_alert(old))
    assert store.publish_alert(Alert(kind="plate", watchlist_id="w", entry_id="e", event_id="ev", camera_id=WALK,
                                     label="1กข1234", crop_path=f"snapshots/{WALK}/{DAY}/ev_plate.jpg"))
    alert = _face_alert(new)
    assert store.publish_alert(alert) and not store.publish_alert(alert)
    (sid, _), = rclient.xrange(keys.ALERT_STREAM, "-", "+", count=3)[2:]
    assert rclient.hgetall(keys.FACE_ALERT_MEDIA) == {new.crop_path.encode(): sid,
                                                      old.crop_path.encode(): rclient.xrange(keys.ALERT_STREAM)[0][0]}
    rclient.xtrim(keys.ALERT_STREAM, maxlen=1, approximate=False)
    store.prune_trimmed_alerts()
    assert rclient.hgetall(keys.FACE_ALERT_MEDIA) == {new.crop_path.encode(): sid}
    assert _get(client, tokens["op"], new.crop_path) == 200 and _get(client, tokens["op"], old.crop_path) == 404
