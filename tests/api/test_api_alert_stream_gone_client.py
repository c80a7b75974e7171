"""A live-alert WebSocket whose client has already gone when its session ends (signed out, revoked) ends quietly:
the close the server then tries meets a gone client, which is normal, so no "Exception in ASGI application"
traceback (nor any ERROR record) is logged, and the server goes on serving.

A real uvicorn server (``tests.api.web.serving``), a real websockets client, real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
import redis

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.web.serving import served

PASSWORD = "correct horse battery"
pytestmark = pytest.mark.timeout(90)


def test_session_ending_after_the_client_left_logs_no_traceback(redis_url: str, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import websockets

    config = tmp_path / "cameras.yaml"
    config.write_text("cameras: []\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_poll_s=0.1, stream_recheck_s=0.2, live_preload="none")
    rclient = redis.Redis.from_url(redis_url)
    ApiStore(rclient, scrypt_n=16).put_user("op", "operator", PASSWORD, None)
    app = create_app(settings)
    with served(app, "alerts-gone-client") as base:
        # uvicorn's loggers do not propagate to the root logger caplog listens on: listen on them directly
        uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn")]
        for lg in uvicorn_loggers:
            lg.addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG)
        try:
            login = httpx.post(f"{base}/api/auth/login", json={"username": "op", "password": PASSWORD}, timeout=30)
            token = login.json()["access_token"]

            def open_streams() -> int:  # the slot table exists from the first alert WebSocket on
                slots = getattr(app.state, "alert_slots", None)
                return slots.total if slots is not None else 0

            async def connect_and_leave() -> None:
                ws = await websockets.connect(base.replace("http", "ws", 1) + "/api/alerts/ws")
                await ws.send(json.dumps({"token": token}))
                started = time.monotonic() + 20
                while not open_streams() and time.monotonic() < started:  # credentials accepted, tailing
                    await asyncio.sleep(0.05)
                assert open_streams() == 1, "the stream did not start"
                await ws.close()  # the client goes (the server notices at once, or at its next write or re-check)

            asyncio.run(connect_and_leave())
            r = httpx.post(f"{base}/api/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert r.status_code == 204, r.text
            deadline = time.monotonic() + 20
            while open_streams() and time.monotonic() < deadline:  # the stream ends, releasing its slot
                time.sleep(0.05)
            assert open_streams() == 0, "the stream of the client that left did not end"
            time.sleep(0.3)  # anything the handler logs on its way out
            # the server keeps serving, the alert WebSocket included
            assert httpx.get(f"{base}/api/health", timeout=30).status_code == 200
        finally:
            for lg in uvicorn_loggers:
                lg.removeHandler(caplog.handler)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
           or "Exception in ASGI application" in r.getMessage()]
    assert not bad, [(r.name, r.getMessage(), r.exc_info and r.exc_info[0]) for r in bad]
    assert any("alert websocket of op" in r.getMessage() for r in caplog.records)  # the quiet log line
