"""The web page's static files answer while every worker thread is taken: many Redis-bound requests at once (a hung
primary) fill AnyIO's default limiter, and Starlette's StaticFiles, which looks files up and reads them in worker
threads, queued the page behind them. Served from memory, index.html and its JS still load.

A real uvicorn server (``tests.api.web.serving``), real Redis, real HTTP clients; the worker threads are held by a
test-only synchronous route (FastAPI runs it in a worker thread) until the test releases them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from api.main import STATIC_DIR, create_app
from api.settings import ApiSettings
from tests.api.web.serving import served

pytestmark = pytest.mark.timeout(180)
WORKER_THREADS = 40  # AnyIO's default limiter, which FastAPI's synchronous routes and StaticFiles share
HELD = WORKER_THREADS + 5
BOUND_S = 20.0  # far above any real answer from memory, far below "never" (the held threads wait until released)


def test_the_page_loads_while_every_worker_thread_waits(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras: []\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           audit_spool_dir=tmp_path / "spool", live_preload="none")
    app = create_app(settings)
    release = threading.Event()
    entered: list[int] = []

    def hold() -> dict[str, bool]:  # a synchronous route: runs in a worker thread, as Redis-bound routes do
        entered.append(1)
        release.wait(120)
        return {"released": True}

    app.router.routes.insert(0, APIRoute("/api/test-hold", hold, methods=["GET"]))
    clients: list[threading.Thread] = []
    with served(app, "static-no-threads") as base:
        try:
            answers: list[int] = []
            for _ in range(HELD):
                thread = threading.Thread(target=lambda: answers.append(
                    httpx.get(f"{base}/api/test-hold", timeout=150).status_code), daemon=True)
                thread.start()
                clients.append(thread)
            deadline = time.monotonic() + 90
            while len(entered) < WORKER_THREADS:
                assert time.monotonic() < deadline, f"only {len(entered)} requests hold a worker thread ({answers})"
                time.sleep(0.05)
            assert len(entered) == WORKER_THREADS  # the limiter is full: the other requests wait for a thread
            page = httpx.get(f"{base}/", timeout=BOUND_S)
            script = httpx.get(f"{base}/app.js", timeout=BOUND_S)
            head = httpx.head(f"{base}/app.js", timeout=BOUND_S)
            again = httpx.get(f"{base}/app.js", headers={"If-None-Match": script.headers.get("etag", "")},
                              timeout=BOUND_S)  # fmt: skip
        finally:
            release.set()
            for thread in clients:
                thread.join(timeout=150)
    assert page.status_code == 200 and page.content == (STATIC_DIR / "index.html").read_bytes()
    assert page.headers["content-type"].startswith("text/html")
    assert script.status_code == 200 and script.content == (STATIC_DIR / "app.js").read_bytes()
    assert "javascript" in script.headers["content-type"]
    assert head.status_code == 200 and head.headers["content-length"] == str(len(script.content))
    assert again.status_code == 304
