"""Every human reason the live routes give carries a stable code the page translates: the WebSocket's ``end``
message (camera removed, session ended) and ``GET /api/live/{cam}/info`` (the hub's ``reason_code``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.config import parse_config
from tests.api.live_ws import hello, until_closed

PASSWORD = "correct horse battery"
DEAD = "cameras:\n  - {id: dead, name: Dead, url: 'rtsp://127.0.0.1:9/none'}\n"
OTHER = "cameras:\n  - {id: other, name: Other, url: 'rtsp://127.0.0.1:9/other'}\n"
pytestmark = pytest.mark.timeout(90)


@pytest.fixture()
def dead_client(redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    config = tmp_path / "cameras.yaml"
    config.write_text(DEAD, encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_auth_timeout_s=1.0, live_linger_s=0.5, live_preload_default_wall=False,
                           stream_recheck_s=0.3)
    ApiStore(redis.Redis.from_url(redis_url), scrypt_n=16).put_user("op", "operator", PASSWORD)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client, r.json()["access_token"]


async def _follow(app) -> None:
    from api.routes.live import follow_live_config

    follow_live_config(app)


def test_end_message_of_a_removed_camera_has_reason_code_removed(dead_client) -> None:
    client, token = dead_client
    app = client.app
    with client.websocket_connect("/api/live/dead/ws") as ws:
        hello(ws, token)
        app.state.camera_config = parse_config(OTHER)
        client.portal.call(_follow, app)
        texts, code = until_closed(ws)
    assert code == 4404
    ends = [m for m in texts if m["type"] == "end"]
    assert ends == [{"type": "end", "reason": "camera removed", "reason_code": "removed"}], texts


def test_end_message_of_an_ended_session_has_reason_code_session_ended(dead_client) -> None:
    client, token = dead_client
    with client.websocket_connect("/api/live/dead/ws") as ws:
        hello(ws, token)
        r = client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 204, r.text
        texts, code = until_closed(ws)
    assert code == 4401
    ends = [m for m in texts if m["type"] == "end"]
    assert ends == [{"type": "end", "reason": "session ended", "reason_code": "session_ended"}], texts


def test_info_route_has_the_hubs_reason_code(dead_client) -> None:
    client, token = dead_client
    headers = {"Authorization": f"Bearer {token}"}
    info = client.get("/api/live/dead/info", headers=headers)
    assert info.status_code == 200, info.text
    assert info.json()["reason_code"] == ""  # idle: no reason
    with client.websocket_connect("/api/live/dead/ws") as ws:
        hello(ws, token)
        while True:
            message = json.loads(ws.receive_text())
            if message["type"] == "status" and message["status"] == "offline":
                break
        deadline = time.monotonic() + 10
        while True:
            body = client.get("/api/live/dead/info", headers=headers).json()
            if body["status"] == "offline" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert body["status"] == "offline"
    assert body["reason_code"] == "refused", body
    assert body["reason"] == "the camera refused the connection (is it on, and is the port right?)"


def test_openapi_documents_reason_code_of_live_info(dead_client) -> None:
    client, _token = dead_client
    schema = client.get("/openapi.json").json()["components"]["schemas"]["LiveInfoOut"]
    assert schema["properties"]["reason_code"]["type"] == "string"
    assert "reason_code" not in schema.get("required", [])
