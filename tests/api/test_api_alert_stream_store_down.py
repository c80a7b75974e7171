"""The live alerts' Server-Sent Events stream when Redis hangs mid-stream (``SIGSTOP``: the bounded command wait of
CCTV_API_REDIS_TIMEOUT_S runs out): the stream ends with an ``unavailable`` event and closes (the browser's
EventSource reconnects), logged once at WARNING; no "response already started" traceback, no ERROR record, and the
server goes on serving. It used to try the 503 of the app's Redis error handler on the started response.

A real uvicorn server (``tests.api.web.serving``), a real redis-server that is stopped and continued."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.settings import get_settings
from tests.api.web.serving import served
from tests.conftest import RedisServer

PASSWORD = "correct horse battery"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def short_redis_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API's Redis commands wait at most 0.5 s (CCTV_API_REDIS_TIMEOUT_S), no retry."""
    monkeypatch.setenv("CCTV_API_REDIS_TIMEOUT_S", "0.5")
    monkeypatch.setenv("CCTV_API_REDIS_RETRIES", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _read_stream(base: str, token: str, on_first_line) -> tuple[list[str], str | None]:
    """The lines of one SSE stream until it closes (and the transport error that ended it, if any);
    ``on_first_line`` runs once the stream has sent something (it has started)."""
    lines: list[str] = []
    try:
        with httpx.stream("GET", f"{base}/api/alerts/stream", headers={"Authorization": f"Bearer {token}"},
                          timeout=httpx.Timeout(60)) as reply:  # fmt: skip
            assert reply.status_code == 200, reply.read()
            for line in reply.iter_lines():
                if not lines:
                    on_first_line()
                lines.append(line)
    except httpx.HTTPError as exc:  # the connection cut without the end of the chunked body
        return lines, repr(exc)
    return lines, None


def test_the_sse_stream_ends_with_an_unavailable_event_when_redis_hangs(
        own_redis: RedisServer, tmp_path: Path, short_redis_wait: None, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras: []\n", encoding="utf-8")
    settings = ApiSettings(redis_url=own_redis.url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_poll_s=0.2, audit_spool_dir=tmp_path / "spool", live_preload="none")
    rclient = redis.Redis.from_url(own_redis.url)
    store = ApiStore(rclient, scrypt_n=16)
    store.put_user("op", "operator", PASSWORD, None)
    token = store.new_token("op", 3600)
    rclient.close()
    app = create_app(settings)
    assert own_redis.process is not None
    stopped: list[bool] = []

    def hang() -> None:
        own_redis.process.send_signal(signal.SIGSTOP)
        stopped.append(True)

    with served(app, "alerts-sse-store-down") as base:
        uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn")]
        for lg in uvicorn_loggers:
            lg.addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG)
        try:
            lines, cut = _read_stream(base, token, hang)
        finally:
            if stopped:
                own_redis.process.send_signal(signal.SIGCONT)
            for lg in uvicorn_loggers:
                lg.removeHandler(caplog.handler)
        deadline = time.monotonic() + 30
        while app.state.alert_slots.total and time.monotonic() < deadline:  # the stream's slot is given back
            time.sleep(0.05)
        assert app.state.alert_slots.total == 0
        assert httpx.get(f"{base}/api/health", timeout=30).status_code == 200  # still serving
    assert stopped, "the stream sent nothing before Redis was stopped"
    assert cut is None, f"the stream was cut instead of ending: {cut}; {lines}"
    assert "event: unavailable" in lines, lines
    assert lines[lines.index("event: unavailable") + 1].startswith("data: ")
    assert "unavailable" in lines[lines.index("event: unavailable") + 1]
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
           or "Exception in ASGI application" in r.getMessage()]
    assert not bad, [(r.name, r.getMessage(), r.exc_info and r.exc_info[0]) for r in bad]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "alert stream of op" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
