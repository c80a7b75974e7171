"""A camera that is no longer one the viewer may see (their camera limits changed while their session goes on) ends
only that camera's live stream: an ``end`` message with reason_code ``camera_revoked`` and close 4403, not the 4401
"session ended" that tells the wall the whole sign-in is over. A real end of session keeps 4401.

Real Redis, real API (TestClient); the camera URLs answer nothing, which the stream survives (offline, retried)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.live_ws import hello, until_closed

PASSWORD = "correct horse battery"
CAMERAS = ("cameras:\n  - {id: dead, name: Dead, url: 'rtsp://127.0.0.1:9/none'}\n"
           "  - {id: other, name: Other, url: 'rtsp://127.0.0.1:9/other'}\n")
pytestmark = pytest.mark.timeout(90)


@pytest.fixture()
def limited(redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str, redis.Redis]]:
    config = tmp_path / "cameras.yaml"
    config.write_text(CAMERAS, encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_auth_timeout_s=1.0, live_linger_s=0.5, live_preload_default_wall=False,
                           live_preload="none", stream_recheck_s=0.3)
    rclient = redis.Redis.from_url(redis_url)
    ApiStore(rclient, scrypt_n=16).put_user("op", "operator", PASSWORD, ["dead", "other"])
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client, r.json()["access_token"], rclient
    rclient.close()


def test_a_camera_no_longer_permitted_ends_only_its_stream_with_4403(limited) -> None:
    client, token, rclient = limited
    with client.websocket_connect("/api/live/dead/ws") as ws:
        hello(ws, token)
        # the user's camera limits lose "dead" while the session stays valid (no new session generation)
        rclient.hset("user:op", "cameras", json.dumps(["other"]))
        texts, code = until_closed(ws)
    assert code == 4403, (code, texts)
    ends = [m for m in texts if m["type"] == "end"]
    assert ends == [{"type": "end", "reason": "camera no longer permitted", "reason_code": "camera_revoked"}], texts
    # the session itself goes on: the API still answers the same token, and the camera still permitted streams
    me = client.get("/api/live/layout", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    with client.websocket_connect("/api/live/other/ws") as ws:
        hello(ws, token)


def test_the_protocol_documents_the_close_code(limited) -> None:
    client, _token, _rclient = limited
    text = client.get("/openapi.json").json()["paths"]["/api/live/{camera_id}/info"]["get"]["description"]
    assert "camera_revoked" in text and "4403" in text
