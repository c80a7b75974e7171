"""Upgrade path of ``alerts:face_media``: face alerts written before the index existed (the old publisher) are indexed
when the API starts, so an operator gets their crops (not a broken image) after the upgrade."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.events import Alert
from pipeline.store import keys

pytestmark = pytest.mark.timeout(120)
WALK = "walkway-01"
PASSWORD = "correct horse battery"


@pytest.fixture()
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _old_face_alert(client: redis.Redis, root, n: int) -> str:
    """A face alert stored as before ``alerts:face_media`` (XADD and ``alerts:idx`` only), its crop on disk."""
    crop = f"snapshots/{WALK}/2026-12-05/000000000000{n}-abc_face.jpg"
    (root / crop).parent.mkdir(parents=True, exist_ok=True)
    (root / crop).write_bytes(b"\xff\xd8\xff" + crop.encode())
    alert = Alert(kind="face", watchlist_id="wl1", entry_id="person1", event_id=f"ev{n}", camera_id=WALK,
                  label="wanted", score=0.8, crop_path=crop)
    sid = client.xadd(keys.ALERT_STREAM, {"alert": json.dumps(alert.model_dump(mode="json"))})
    client.hset(keys.ALERT_INDEX, alert.alert_id, sid)
    return crop


def test_old_face_alert_crops_reach_the_operator_after_start_up(api_settings: ApiSettings,
                                                                rclient: redis.Redis) -> None:
    root = api_settings.recordings_dir
    crops = [_old_face_alert(rclient, root, n) for n in range(3)]
    assert not rclient.exists(keys.FACE_ALERT_MEDIA)
    ApiStore(rclient, scrypt_n=16).put_user("op", "operator", PASSWORD)
    with TestClient(create_app(api_settings)) as client:
        r = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for crop in crops:
            got = client.get(f"/api/media/{crop}", headers=headers)
            assert got.status_code == 200, crop
            assert got.content == b"\xff\xd8\xff" + crop.encode()
    assert rclient.hexists(keys.FACE_ALERT_MEDIA_BACKFILL, "done")
