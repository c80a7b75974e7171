"""Cross-origin players: only the configured origins are allowed, and they may read the playback headers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.recordings import PLAYBACK_HEADERS
from api.settings import ApiSettings

ORIGIN = "https://wall.control-room.example"


@pytest.fixture()
def cors_client(api_settings: ApiSettings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"cors_origins": [ORIGIN]})
    with TestClient(create_app(settings)) as tc:
        yield tc


def test_allowed_origin_may_read_playback_headers(cors_client: TestClient) -> None:
    r = cors_client.get("/api/health", headers={"Origin": ORIGIN})
    assert r.headers.get("access-control-allow-origin") == ORIGIN
    exposed = {h.strip().lower() for h in r.headers.get("access-control-expose-headers", "").split(",")}
    assert {h.lower() for h in PLAYBACK_HEADERS} | {"content-disposition"} <= exposed
    # a cross-origin alert console pages filtered alert lists by these (GET /api/alerts)
    assert {"x-alerts-scanned", "x-alerts-scan-complete", "x-alerts-scan-next"} <= exposed


def test_preflight_from_allowed_origin_allows_the_token_header(cors_client: TestClient) -> None:
    r = cors_client.options("/api/recordings/walkway-01/stream", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == ORIGIN
    assert "authorization" in r.headers.get("access-control-allow-headers", "").lower()


def test_other_origins_get_no_cors_grant(cors_client: TestClient) -> None:
    r = cors_client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = cors_client.options("/api/recordings/walkway-01/stream", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def test_without_configured_origins_no_cors_headers(client: TestClient) -> None:
    r = client.get("/api/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in r.headers
