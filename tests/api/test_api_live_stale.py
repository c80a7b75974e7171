"""A frozen camera (its RTSP connection open, no video: the test camera's source process stopped with SIGSTOP) is
not called live by the live hub while it waits out its long stall timeout: once no fragment came for
CCTV_LIVE_STALE_S, viewers get status ``offline`` (``no_video``, how long no frame came); a viewer joining then gets
that status and no cached old frames; both get ``live`` and video again when the camera sends again. Real API, Redis,
RTSP test camera and ffmpeg; the websocket through FastAPI's test client."""

from __future__ import annotations

import json
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.testcams import TestCameraServer
from tests.api.live_ws import hello
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"
PASSWORD = "correct horse battery"
SERVER_STALL_S = 120  # ffmpeg's read timeout and the hub's stall timeout: far beyond every wait of this test
pytestmark = pytest.mark.timeout(240)


@pytest.fixture()
def frozen(shared_dir: Path, redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str, TestCameraServer]]:
    """The API (stale bound 2 s, stall timeout SERVER_STALL_S) with one RTSP camera, and an operator's token."""
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP], aliases={"yard": CLIP},
                          sub_streams=False) as cams:
        config = tmp_path / "cameras.yaml"
        config.write_text(f"ingest: {{stall_timeout_s: {SERVER_STALL_S}, connect_timeout_s: {SERVER_STALL_S}}}\n"
                          f"cameras:\n  - {{id: yard, name: Yard, url: '{cams.url('yard')}'}}\n", encoding="utf-8")
        settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config,
                               scrypt_n=16, ws_auth_timeout_s=5.0, live_linger_s=1.0, live_preload="none",
                               live_stale_s=2.0)
        ApiStore(redis.Redis.from_url(redis_url), scrypt_n=16).put_user("op", "operator", PASSWORD)
        with TestClient(create_app(settings)) as client:
            r = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
            assert r.status_code == 200, r.text
            yield client, r.json()["access_token"], cams


def _moofs(data: bytes) -> int:
    count, pos = 0, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        count += kind == b"moof"
        if size < 8:
            break
        pos += size
    return count


def _until_status(ws, status: str) -> tuple[dict, list[dict], int]:  # noqa: ANN001 (test client WebSocket)
    """Read until a status message ``status``: (that message, the text messages before it, fragments before it)."""
    texts, fragments = [], 0
    while True:
        message = ws.receive()
        assert message["type"] != "websocket.close", message
        if message.get("text") is not None:
            msg = json.loads(message["text"])
            if msg.get("type") == "status" and msg["status"] == status:
                return msg, texts, fragments
            texts.append(msg)
        elif message.get("bytes"):
            fragments += _moofs(message["bytes"])


def test_a_frozen_camera_is_offline_for_viewers_and_newcomers_then_live_again(frozen) -> None:
    client, token, cams = frozen
    with client.websocket_connect("/api/live/yard/ws") as first:
        hello(first, token)
        _until_status(first, "live")
        hub = client.app.state.live_hub
        source = hub.sources[("yard", "main")]
        wait_for(lambda: source.fragments >= 30, 60, "video from the camera")
        sessions = source.sessions
        pid = cams._sources["yard"].process.pid  # noqa: SLF001 - the test camera's own source process
        os.kill(pid, signal.SIGSTOP)  # the camera hangs: its RTSP session stays open, no packet comes
        try:
            wait_for(lambda: source.status == "offline", 40, "the frozen camera reported offline")
            assert source.sessions == sessions and source.pid is not None  # ffmpeg still waits: not its stall
            offline, _texts, _fragments = _until_status(first, "offline")
            assert offline["reason_code"] == "no_video", offline
            assert offline["reason"].startswith("no video from the camera for "), offline
            info = client.get("/api/live/yard/info", headers={"Authorization": f"Bearer {token}"}).json()
            assert (info["status"], info["reason_code"]) == ("offline", "no_video"), info

            with client.websocket_connect("/api/live/yard/ws") as newcomer:
                hello(newcomer, token)
                status, texts, fragments = _until_status(newcomer, "offline")
                assert status["reason_code"] == "no_video", status
                assert fragments == 0, "a newcomer to a frozen camera got its old frames"
                assert [t["type"] for t in texts] == ["init"], texts  # the init segment only, for what comes next
                assert not any(t.get("status") == "live" for t in texts), texts
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: source.status == "live", 60, "the camera live again")
        again, _texts, _fragments = _until_status(first, "live")
        assert again["reason_code"] == "", again
        seen = 0
        while seen < 5:  # video flows again on the same socket (no new init: the stream goes on)
            message = first.receive()
            if message.get("bytes"):
                seen += _moofs(message["bytes"])
            else:
                assert json.loads(message["text"])["type"] != "init", message
        assert source.sessions == sessions  # the same upstream: nothing restarted


def test_the_protocol_and_setting_are_documented(frozen) -> None:
    client, token, _cams = frozen
    spec = client.get("/openapi.json").json()
    text = spec["paths"]["/api/live/{camera_id}/info"]["get"]["description"]
    assert "CCTV_LIVE_STALE_S" in text and "no_video" in text
    assert ApiSettings.model_fields["live_stale_s"].description
