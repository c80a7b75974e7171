"""The API child of the supervisor: it serves the cameras file the workers run, and believes X-Forwarded-For only
from configured proxies (a real uvicorn server on loopback)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import requests
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import pipeline.service as service
from pipeline.config import parse_config
from pipeline.service import build_children, proxy_options
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(60)


def _client_address(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.client.host if request.client else "")


def _address_seen(options: dict, forwarded: str) -> str:
    """The client address a real uvicorn server with ``options`` gives the app for a request from 127.0.0.1
    carrying ``X-Forwarded-For: forwarded``."""
    port = free_port()
    app = Starlette(routes=[Route("/", _client_address)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return requests.get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": forwarded}, timeout=10).text
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_forwarded_headers_are_not_believed_by_default() -> None:
    """Before: uvicorn's default believed X-Forwarded-For from 127.0.0.1, so a local client (or anything
    relaying through the host) chose the address that the login limits and the audit trail see."""
    assert _address_seen(proxy_options(""), "10.9.8.1") == "127.0.0.1"


def test_forwarded_headers_are_believed_from_a_configured_proxy() -> None:
    assert proxy_options(" 127.0.0.1 , 10.0.0.0/8") == {"proxy_headers": True,
                                                         "forwarded_allow_ips": "127.0.0.1,10.0.0.0/8"}
    assert _address_seen(proxy_options("127.0.0.1"), "10.9.8.1") == "10.9.8.1"


def test_the_api_child_serves_the_cameras_file_the_workers_run(tmp_path: Path, monkeypatch) -> None:
    """``pipeline run --config FILE``: the API child gets FILE (before: it read the repository's cameras.yaml and
    listed other cameras than the workers ran)."""
    cameras = tmp_path / "site.yaml"
    cameras.write_text("cameras:\n  - {id: dead-01, name: Dead, url: 'rtsp://127.0.0.1:9/x', "
                       "analytics: {plates: false, faces: false}}\n")
    config = parse_config(cameras.read_text())
    [api] = [c for c in build_children(config, None, None, "127.0.0.1", 0, True, cameras) if c.name == "api"]
    seen: dict[str, str | None] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.update(path=os.environ.get("CCTV_CONFIG_PATH"),
                                                                       proxy=str(k.get("proxy_headers"))))
    monkeypatch.setenv("CCTV_CONFIG_PATH", str(tmp_path / "other.yaml"))  # restored after the test
    service._api_child(*api.args)
    assert seen == {"path": str(cameras.resolve()), "proxy": "False"}
