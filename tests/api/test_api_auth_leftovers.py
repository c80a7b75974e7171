"""Authentication gaps closed: read-only API keys may run searches sent as POST (and nothing that writes), the idle
timeout in force applies to tokens already issued, and API keys made before every key had to expire end
CCTV_API_KEY_MAX_DAYS after their creation."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from api.store import ApiStore, token_hash
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.timeout(300)
DAY = 86400
# the routes sent as POST (for their body) that only read: a read-only API key may call them
READING_WRITES = {("POST", "/api/faces/search")}
# routes a read-only key never reaches the read-only check of (no authentication at all)
UNAUTHENTICATED = {("POST", "/api/auth/login")}


def _read_only_key(client: TestClient, tokens: dict, owner: str) -> dict:
    r = client.post("/api/auth/api-keys", headers=tokens["adm"], json={"name": "integrator", "username": owner,
                                                                        "scope": "read"})
    assert r.status_code == 201 and r.json()["scope"] == "read", r.text
    return {"X-API-Key": r.json()["key"]}


def _login(client: TestClient, name: str) -> tuple[dict, str]:
    """Bearer headers of a fresh session of ``name`` and the Redis key of its token."""
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return {"Authorization": f"Bearer {token}"}, f"token:{token_hash(token)}"


def _last_seen(rclient: redis.Redis, key: str, ago_s: float) -> None:
    rclient.set(key, json.dumps(json.loads(rclient.get(key)) | {"s": time.time() - ago_s}), keepttl=True)


def _legacy_key(rclient: redis.Redis, owner: str, created_ago_s: float | None, scope: str = "full") -> tuple[str, str]:
    """An API key as made before every key had to expire (no ``expires_at``), created ``created_ago_s`` ago (None:
    a record without ``created_at``); returns the key and its id."""
    key, meta = ApiStore(rclient, scrypt_n=16).new_api_key(owner, "legacy", None, scope)
    record_key = f"apikey:{token_hash(key)}"
    record = json.loads(rclient.get(record_key))
    assert record["expires_at"] is None and rclient.ttl(record_key) == -1
    record.pop("expires_at")
    if created_ago_s is None:
        record.pop("created_at")
    else:
        record["created_at"] = time.time() - created_ago_s
    rclient.set(record_key, json.dumps(record))
    return key, meta["key_id"]


# -- 1. read-only API keys: reads by route, not by HTTP method ------------------------------------------------------
def test_a_read_only_key_runs_a_face_search_and_it_is_audited(client: TestClient, tokens: dict,
                                                              shared_dir: Path) -> None:
    ro = _read_only_key(client, tokens, "inv")
    photo = (shared_dir / "data" / "faces_lfw" / "images" / "Angela_Bassett" / "Angela_Bassett_0001.jpg").read_bytes()
    r = client.post("/api/faces/search", headers=ro, data={"reason": "case 2026/7"},
                    files={"image": ("q.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["faces_found"] >= 1
    audit = client.get("/api/audit?action=face_search", headers=tokens["adm"]).json()
    assert [(a["user"], a["params"]["reason"]) for a in audit] == [("inv", "case 2026/7")]


def test_a_read_only_key_is_still_refused_where_the_face_search_needs_more(client: TestClient, tokens: dict) -> None:
    """The reading marker lifts the method rule only: the role check and the form's checks stay."""
    r = client.post("/api/faces/search", headers=_read_only_key(client, tokens, "op"), data={"reason": "case 1"},
                    files={"image": ("q.jpg", b"x", "image/jpeg")})
    assert r.status_code == 403 and "investigator" in r.json()["detail"], r.text
    r = client.post("/api/faces/search", headers=_read_only_key(client, tokens, "inv"),
                    data={"reason": "case 1", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                    files={"image": ("q.jpg", b"x", "image/jpeg")})
    assert r.status_code == 422, r.text


def test_a_read_only_key_still_cannot_write(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    ro = _read_only_key(client, tokens, "adm")
    wid = client.post("/api/watchlists", headers=tokens["adm"], json={"kind": "plate", "name": "stolen"}).json()["id"]
    attempts = [
        ("POST", f"/api/watchlists/{wid}/plates", {"plate": "1กข1234"}),
        ("POST", "/api/alerts/0-1/ack", {"note": "seen"}),
        ("POST", "/api/exports", {"camera_id": "bkk-night-01", "start": 1000.0, "end": 1010.0}),
        ("POST", "/api/users", {"username": "sneaky", "password": "x" * 12, "role": "admin"}),
        ("POST", "/api/auth/api-keys", {"name": "more", "username": "adm"}),
        ("DELETE", f"/api/watchlists/{wid}", None),
        ("DELETE", "/api/users/op", None),
        ("PATCH", "/api/users/op", {"role": "admin"}),
        ("PUT", "/api/live/layout", {"grid": 4, "tiles": []}),
    ]
    for method, url, body in attempts:
        r = client.request(method, url, headers=ro, json=body)
        assert r.status_code == 403 and "read-only" in r.json()["detail"], (method, url, r.status_code, r.text)
    assert client.get(f"/api/watchlists/{wid}", headers=tokens["adm"]).status_code == 200
    assert client.get("/api/users/op", headers=tokens["adm"]).json()["role"] == "operator"
    assert [k["name"] for k in client.get("/api/auth/api-keys", headers=tokens["adm"]).json()] == ["integrator"]


def test_every_other_write_route_refuses_a_read_only_key(client: TestClient, tokens: dict) -> None:
    """Every POST/PUT/PATCH/DELETE route of the OpenAPI schema but the declared reading ones answers a read-only
    key 403 (path parameters filled with a placeholder: the read-only check comes before any other)."""
    ro = _read_only_key(client, tokens, "adm")
    checked = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method in sorted(m.upper() for m in operations if m in ("post", "put", "patch", "delete")):
            if (method, path) in READING_WRITES | UNAUTHENTICATED:
                continue
            r = client.request(method, re.sub(r"\{[^}]+\}", "x0", path), headers=ro)
            assert r.status_code == 403 and "read-only" in r.json()["detail"], (method, path, r.text)
            checked.append((method, path))
    assert len(checked) > 20, checked
    assert READING_WRITES <= {(m.upper(), p) for p, ops in client.get("/openapi.json").json()["paths"].items()
                              for m in ops}


# -- 2. the idle timeout in force applies to tokens already issued --------------------------------------------------
def test_lowering_the_idle_timeout_signs_idle_sessions_out_at_once(client: TestClient, tokens: dict,
                                                                   rclient: redis.Redis,
                                                                   api_settings: ApiSettings) -> None:
    idle, idle_key = _login(client, "inv")  # issued under the default 30 min
    busy, busy_key = _login(client, "op")
    _last_seen(rclient, idle_key, 200)
    _last_seen(rclient, busy_key, 100)
    client.app.state.settings = api_settings.model_copy(update={"session_idle_s": 120})
    assert client.get("/api/auth/me", headers=idle).status_code == 401
    assert not rclient.exists(idle_key)
    assert client.get("/api/auth/me", headers=busy).status_code == 200  # used within the new timeout: goes on
    # a session in use more often than the new timeout stays alive (its last-seen time is written often enough)
    _last_seen(rclient, busy_key, 100)
    assert client.get("/api/auth/me", headers=busy).status_code == 200
    assert time.time() - json.loads(rclient.get(busy_key))["s"] < 5
    assert api_settings.session_ttl_s - 60 < rclient.ttl(busy_key) <= api_settings.session_ttl_s  # lifetime kept


def test_raising_the_idle_timeout_keeps_sessions_issued_under_a_shorter_one(client: TestClient, tokens: dict,
                                                                           rclient: redis.Redis,
                                                                           api_settings: ApiSettings) -> None:
    client.app.state.settings = api_settings.model_copy(update={"session_idle_s": 120})
    h, key = _login(client, "inv")
    _last_seen(rclient, key, 200)
    client.app.state.settings = api_settings  # back to 30 min
    assert client.get("/api/auth/me", headers=h).status_code == 200


def test_a_revoked_token_is_not_brought_back_by_the_idle_timeout(client: TestClient, tokens: dict,
                                                                 api_settings: ApiSettings,
                                                                 rclient: redis.Redis) -> None:
    h, key = _login(client, "inv")
    assert client.post("/api/auth/logout", headers=h).status_code == 204
    client.app.state.settings = api_settings.model_copy(update={"session_idle_s": 120})
    assert client.get("/api/auth/me", headers=h).status_code == 401
    assert not rclient.exists(key)


# -- 3. API keys made before every key had to expire ----------------------------------------------------------------
def test_a_key_made_without_expiry_ends_the_maximum_after_its_creation(client: TestClient, tokens: dict,
                                                                       rclient: redis.Redis,
                                                                       api_settings: ApiSettings) -> None:
    old, _ = _legacy_key(rclient, "inv", 400 * DAY)
    recent, recent_id = _legacy_key(rclient, "inv", 11 * DAY)
    assert client.get("/api/auth/me", headers={"X-API-Key": old}).status_code == 401  # past 365 days
    assert client.get("/api/auth/me", headers={"X-API-Key": recent}).status_code == 200
    client.app.state.settings = api_settings.model_copy(update={"api_key_max_days": 10})
    assert client.get("/api/auth/me", headers={"X-API-Key": recent}).status_code == 401
    client.app.state.settings = api_settings.model_copy(update={"api_key_max_days": 12})
    assert client.get("/api/auth/me", headers={"X-API-Key": recent}).status_code == 200
    r = client.post("/api/exports", headers={"X-API-Key": old},
                    json={"camera_id": "bkk-night-01", "start": 1000.0, "end": 1010.0})
    assert r.status_code == 401  # the body-request pre-check refuses it too, under the same maximum


def test_listings_show_the_effective_expiry_of_a_key_made_without_one(client: TestClient, tokens: dict,
                                                                      rclient: redis.Redis,
                                                                      api_settings: ApiSettings) -> None:
    _, key_id = _legacy_key(rclient, "inv", 11 * DAY)
    client.app.state.settings = api_settings.model_copy(update={"api_key_max_days": 30})
    for url, headers in (("/api/api-keys", tokens["adm"]), ("/api/auth/api-keys", tokens["inv"])):
        listed = {k["key_id"]: k for k in client.get(url, headers=headers).json()}
        key = listed[key_id]
        assert key["expires_at"] == pytest.approx(key["created_at"] + 30 * DAY), url
        assert 18 * DAY < key["expires_at"] - time.time() < 20 * DAY
    new = client.post("/api/auth/api-keys", headers=tokens["inv"], json={"name": "new", "expires_in_days": 5}).json()
    listed = {k["key_id"]: k for k in client.get("/api/auth/api-keys", headers=tokens["inv"]).json()}
    assert listed[new["key_id"]]["expires_at"] == pytest.approx(new["expires_at"])  # a key's own expiry stays


def test_a_key_without_expiry_or_creation_time_is_refused_as_expired(client: TestClient, tokens: dict,
                                                                     rclient: redis.Redis,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    key, key_id = _legacy_key(rclient, "inv", None)
    with caplog.at_level("WARNING", logger="api.deps"):
        assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 401
    assert any(key_id in r.getMessage() and "treated as expired" in r.getMessage() for r in caplog.records)
    for url, headers in (("/api/api-keys", tokens["adm"]), ("/api/auth/api-keys", tokens["inv"])):
        r = client.get(url, headers=headers)  # the damaged record is listed (shown expired), not a 500
        assert r.status_code == 200, (url, r.text)
        listed = {k["key_id"]: k for k in r.json()}
        assert listed[key_id]["created_at"] == 0.0 and listed[key_id]["expires_at"] < time.time()


def test_websockets_apply_the_current_idle_timeout_and_key_lifetime(client: TestClient, tokens: dict,
                                                                     rclient: redis.Redis,
                                                                     api_settings: ApiSettings) -> None:
    """The alert WebSocket (and every other path resolving credentials) uses the settings in force: a token idle
    past a lowered timeout and a key made without expiry longer ago than the maximum are refused (close 4401)."""
    from starlette.websockets import WebSocketDisconnect

    (idle, idle_key), old = _login(client, "op"), _legacy_key(rclient, "op", 40 * DAY)[0]
    _last_seen(rclient, idle_key, 200)
    client.app.state.settings = api_settings.model_copy(update={"session_idle_s": 120, "api_key_max_days": 30})
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/api/alerts/ws") as ws:
        ws.send_json({"token": idle["Authorization"].split()[1]})
        ws.receive_json()
    assert closed.value.code == 4401
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect("/api/alerts/ws", headers={"X-API-Key": old}) as ws:
        ws.receive_json()
    assert closed.value.code == 4401
