"""The page and every answer carry security headers: CSP with frame-ancestors (clickjacking), nosniff, no referrer."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.main import STATIC_DIR


def _directives(csp: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in csp.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/index.html", "/app.js", "/styles.css", "/views/users.js"])
def test_page_and_static_files_refuse_framing_and_sniffing(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers.get("x-frame-options") == "DENY"
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") == "no-referrer"
    csp = _directives(r.headers.get("content-security-policy", ""))
    assert csp.get("frame-ancestors") == "frame-ancestors 'none'"
    assert csp.get("script-src") == "script-src 'self'" and csp.get("object-src") == "object-src 'none'"


def test_page_header_policy_is_at_least_the_meta_policy(client: TestClient) -> None:
    meta = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"',
                     (STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert meta is not None
    header = _directives(client.get("/").headers["content-security-policy"])
    for name, directive in _directives(meta.group(1)).items():
        assert header.get(name) == directive


@pytest.mark.parametrize("call", [("get", "/api/health", None), ("get", "/api/auth/me", None),
                                  ("post", "/api/users", {"username": "x"}),
                                  ("post", "/api/auth/login", {"username": "nobody", "password": "x"})])
def test_api_answers_and_refusals_carry_a_locked_down_policy(client: TestClient, call: tuple) -> None:
    method, path, body = call
    r = client.request(method, path, json=body)
    assert r.headers.get("x-frame-options") == "DENY"
    assert r.headers.get("x-content-type-options") == "nosniff"
    csp = _directives(r.headers.get("content-security-policy", ""))
    assert csp.get("default-src") == "default-src 'none'" and csp.get("frame-ancestors") == "frame-ancestors 'none'"
    assert r.headers.get("cache-control") == "no-store"  # personal data: no copy in a browser's or proxy's cache


def test_docs_stay_usable_but_unframeable(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers.get("content-security-policy") == "frame-ancestors 'none'"
    assert r.headers.get("x-frame-options") == "DENY"
