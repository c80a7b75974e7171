"""The live WebSocket's status messages carry ``reason_code`` (a stable code the page translates) next to the
English ``reason``."""

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

PASSWORD = "correct horse battery"
pytestmark = pytest.mark.timeout(90)


@pytest.fixture()
def dead_client(redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: dead, name: Dead, url: 'rtsp://127.0.0.1:9/none'}\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_auth_timeout_s=1.0, live_linger_s=0.5, live_preload_default_wall=False)
    ApiStore(redis.Redis.from_url(redis_url), scrypt_n=16).put_user("op", "operator", PASSWORD)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client, r.json()["access_token"]


def test_offline_status_has_reason_code(dead_client: tuple[TestClient, str]) -> None:
    client, token = dead_client
    with client.websocket_connect("/api/live/dead/ws") as ws:
        ws.send_text(json.dumps({"token": token}))
        while True:
            message = json.loads(ws.receive_text())
            if message["type"] != "status":
                continue  # hello
            assert "reason_code" in message, message
            if message["status"] == "offline":
                break
    assert message["reason_code"] == "refused"
    assert message["reason"] == "the camera refused the connection (is it on, and is the port right?)"
