"""The live-alert WebSocket gives its stream slot back as soon as the client goes, with no alert arriving: a client
that closes (cleanly, or by dropping the connection) more often than the per-user limit allows still gets a stream
the next time. And a graceful stop of the server ends an open alert WebSocket instead of waiting for it forever.

A real uvicorn server in a thread (``tests.api.web.serving``), a real websockets client, real Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from api.main import create_app
from api.routes.alerts import _slots
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.web.serving import free_port, served

PASSWORD = "correct horse battery"
PER_USER = 2
WAIT_S = 15.0  # generous: a loaded CI machine; a working server needs well under a second
pytestmark = pytest.mark.timeout(120)


def _settings(redis_url: str, tmp_path: Path) -> ApiSettings:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras: []\n", encoding="utf-8")
    # recheck far away: the credential re-check must not be what frees (or ends) a stream here
    return ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                       ws_poll_s=0.2, stream_recheck_s=30, live_preload="none", alert_streams_per_user=PER_USER)


def _login(base: str, redis_url: str) -> str:
    ApiStore(redis.Redis.from_url(redis_url), scrypt_n=16).put_user("op", "operator", PASSWORD, None)
    login = httpx.post(f"{base}/api/auth/login", json={"username": "op", "password": PASSWORD}, timeout=30)
    assert login.status_code == 200, login.text
    return login.json()["access_token"]


async def _until(check: Callable[[], bool], what: str) -> None:
    """Wait (without blocking the client's event loop) until ``check()`` holds, at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")
        await asyncio.sleep(0.05)


async def _open(ws_url: str, token: str, slots) -> object:  # noqa: ANN001 (StreamSlots of the served app)
    """An alert WebSocket whose stream runs (its slot taken: one more open stream than before)."""
    import websockets

    before = slots.total
    ws = await websockets.connect(ws_url)
    await ws.send(json.dumps({"token": token}))
    await _until(lambda: slots.total == before + 1, "the stream started (a refused one closes with 4429)")
    assert ws.close_code is None, (ws.close_code, ws.close_reason)
    return ws


def test_slot_is_released_when_the_client_leaves_with_no_alerts(redis_url: str, tmp_path: Path) -> None:
    app = create_app(_settings(redis_url, tmp_path))
    with served(app, "alerts-ws-release") as base:
        token = _login(base, redis_url)
        ws_url = base.replace("http", "ws", 1) + "/api/alerts/ws"

        async def scenario() -> None:
            slots = _slots(app)  # the app's stream slots (made now if no stream was opened yet)
            for i in range(2 * PER_USER + 2):  # more than the per-user limit, half clean closes, half dropped
                ws = await _open(ws_url, token, slots)
                if i % 2:
                    ws.transport.abort()  # the connection drops: no close frame
                else:
                    await ws.close()
                await _until(lambda: slots.total == 0, f"the slot of stream {i + 1} was released")
            last = await _open(ws_url, token, slots)  # a further stream is accepted, not refused with 4429
            await last.close()
            await _until(lambda: slots.total == 0, "the slot of the last stream was released")

        asyncio.run(scenario())
        assert httpx.get(f"{base}/api/health", timeout=30).status_code == 200


def test_graceful_stop_ends_an_open_alert_websocket(redis_url: str, tmp_path: Path) -> None:
    import uvicorn
    import websockets

    from pipeline.service import API_SERVER_OPTIONS

    app = create_app(_settings(redis_url, tmp_path))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws_ping_interval=None, **API_SERVER_OPTIONS))
    thread = threading.Thread(target=server.run, name="alerts-ws-stop", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        token = _login(base, redis_url)
        slots = _slots(app)

        async def scenario() -> int | None:
            ws = await _open(base.replace("http", "ws", 1) + "/api/alerts/ws", token, slots)
            server.should_exit = True  # a graceful stop, as on SIGTERM
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT_S)  # the server closes the socket (no alert ever comes)
            await asyncio.to_thread(thread.join, 10.0)
            return ws.close_code

        code = asyncio.run(scenario())
        assert not thread.is_alive(), "the server did not stop within 10 s with an alert WebSocket open"
        assert code in (1001, 1012), code  # going away / service restart (uvicorn's close on shutdown)
        assert slots.total == 0
    finally:
        server.should_exit = server.force_exit = True  # a hung stop (the defect) must not outlive the test
        thread.join(timeout=20)
