"""The API on a Redis that hangs (``SIGSTOP``: connections are accepted, nothing answers), with a short command
timeout: a Redis timeout is the usual ``503`` "store unavailable", audited as ``store_unavailable`` (kept on disk
without asking Redis again, appended once it answers), and the live alert WebSocket is closed with 1013 (try again
later; the page reconnects) instead of failing with an HTTP answer it cannot send. The server is always continued."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.websockets import WebSocketDisconnect

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.conftest import RedisServer

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@contextmanager
def hung(server: RedisServer) -> Iterator[None]:
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


@pytest.fixture()
def hang_app(own_redis: RedisServer, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The API on ``own_redis`` through a client that waits at most 0.5 s per command, and an admin's headers."""
    rc = redis.Redis.from_url(own_redis.url)
    store = ApiStore(rc, scrypt_n=16)
    store.put_user("adm", "admin", PASSWORD)
    headers = {"Authorization": f"Bearer {store.new_token('adm', 3600)}"}
    rc.close()
    settings = ApiSettings(redis_url=own_redis.url, recordings_dir=tmp_path / "rec", config_path=REPO / "cameras.yaml",
                           scrypt_n=16, audit_spool_dir=tmp_path / "spool", audit_spool_retry_s=0.2)
    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                  retry=Retry(NoBackoff(), 0))
    with TestClient(create_app(settings, client)) as tc:
        yield tc, headers


def test_a_redis_timeout_is_a_503_audited_as_store_unavailable(own_redis: RedisServer, hang_app) -> None:
    tc, headers = hang_app
    spool = tc.app.state.api_store.audit_spool
    with hung(own_redis):
        answer = tc.get("/api/plates/search", params={"q": "1AB1234", "reason": "case 7"}, headers=headers)
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"detail": "the event store is unavailable; try again",
                                 "code": "store_unavailable"}
        assert spool.pending >= 1  # on disk while Redis hangs
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # appended by the replay once Redis answers
        records = tc.get("/api/audit", params={"action": "store_unavailable"}, headers=headers)
        if records.status_code == 200 and records.json():
            break
        time.sleep(0.2)
    assert records.status_code == 200, records.text
    [record] = records.json()
    assert record["status"] == 503 and record["params"]["authenticated"] is False  # the token was not read
    assert record["params"]["path"] == "/api/plates/search"


def test_the_alert_websocket_is_closed_with_1013_when_redis_hangs(own_redis: RedisServer, hang_app) -> None:
    tc, headers = hang_app
    token = headers["Authorization"].removeprefix("Bearer ")
    with hung(own_redis), tc.websocket_connect("/api/alerts/ws") as ws:
        ws.send_json({"token": token})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1013, closed.value
    assert "event store is unavailable" in closed.value.reason
    assert tc.get("/api/auth/me", headers=headers).status_code == 200  # and all is well once Redis answers
