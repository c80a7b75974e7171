"""Admin-set passwords are one-time passwords, sessions end when idle, and API keys always expire (bounded,
configurable) and may be read-only."""

from __future__ import annotations

import json
import time

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.settings import ApiSettings
from api.store import ApiStore, token_hash
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.timeout(120)
DAY = 86400


def _login(client: TestClient, name: str, password: str = PASSWORD):
    return client.post("/api/auth/login", json={"username": name, "password": password})


def _bearer(r) -> dict:
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _token_key(headers: dict) -> str:
    return f"token:{token_hash(headers['Authorization'].split()[1])}"


# -- 1. admin-set passwords must be changed at the next login ---------------------------------------------------------
def test_a_user_an_admin_created_must_change_the_password_first(client: TestClient, tokens: dict) -> None:
    r = client.post("/api/users", headers=tokens["adm"],
                    json={"username": "newbie", "password": "handed-over pass 1", "role": "operator"})
    assert r.status_code == 201 and r.json()["must_change_password"] is True
    r = _login(client, "newbie", "handed-over pass 1")
    assert r.json()["must_change_password"] is True
    h = _bearer(r)
    r = client.get("/api/alerts", headers=h)
    assert r.status_code == 403 and "password change required" in r.json()["detail"]
    assert client.post("/api/auth/api-keys", headers=h, json={"name": "k"}).status_code == 403
    r = client.post("/api/auth/password", headers=h,
                    json={"current_password": "handed-over pass 1", "new_password": "my very own pass"})
    assert r.status_code == 200 and r.json()["must_change_password"] is False
    assert client.get("/api/alerts", headers=_bearer(r)).status_code == 200
    assert client.get("/api/users/newbie", headers=tokens["adm"]).json()["must_change_password"] is False


def test_a_password_an_admin_resets_must_be_changed_but_not_the_admins_own(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    assert client.patch("/api/users/op", headers=adm, json={"role": "investigator"}).json()[
        "must_change_password"] is False  # no password given: no change forced
    r = client.patch("/api/users/op", headers=adm, json={"password": "reset by the admin"})
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    h = _bearer(_login(client, "op", "reset by the admin"))
    assert client.get("/api/auth/me", headers=h).json()["must_change_password"] is True
    assert client.get("/api/persons", headers=h).status_code == 403
    # an admin setting their own password chose it: nothing to force
    r = client.patch("/api/users/adm", headers=adm, json={"password": "my own new secret phrase"})
    assert r.status_code == 200 and r.json()["must_change_password"] is False
    h = _bearer(_login(client, "adm", "my own new secret phrase"))
    assert client.get("/api/users", headers=h).status_code == 200


def test_the_cli_sets_a_working_password_unless_told_otherwise(redis_url: str, rclient: redis.Redis,
                                                                monkeypatch) -> None:
    from api.__main__ import main

    monkeypatch.setenv("CCTV_REDIS_URL", redis_url)
    monkeypatch.setenv("CCTV_SCRYPT_N", "16")
    monkeypatch.setenv("PW", "console password 1")
    assert main(["create-user", "boot", "--role", "admin", "--password-env", "PW"]) == 0
    assert ApiStore(rclient).get_user("boot")["must_change"] is False
    assert main(["create-user", "handed", "--role", "operator", "--password-env", "PW", "--must-change"]) == 0
    assert ApiStore(rclient).get_user("handed")["must_change"] is True


# -- 2. idle timeout on top of the absolute lifetime ---------------------------------------------------------------
def test_a_session_unused_past_the_idle_timeout_ends(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    key = _token_key(tokens["op"])
    assert client.get("/api/alerts", headers=tokens["op"]).status_code == 200
    # last seen 31 minutes ago (default idle timeout 30 min), well within the 8 h lifetime
    rclient.set(key, json.dumps(json.loads(rclient.get(key)) | {"s": time.time() - 31 * 60}), keepttl=True)
    assert client.get("/api/alerts", headers=tokens["op"]).status_code == 401
    assert client.get("/api/alerts", headers=tokens["inv"]).status_code == 200


def test_an_idle_session_ends_and_use_keeps_it_alive_with_few_writes(client: TestClient, tokens: dict,
                                                                     rclient: redis.Redis,
                                                                     api_settings: ApiSettings) -> None:
    r = _login(client, "inv")
    assert r.json()["idle_timeout"] == api_settings.session_idle_s == 1800
    h = _bearer(r)
    key = _token_key(h)
    seen = json.loads(rclient.get(key))["s"]
    for _ in range(3):
        assert client.get("/api/auth/me", headers=h).status_code == 200
    assert json.loads(rclient.get(key))["s"] == seen  # used within the minute: no write

    def set_seen(ago_s: float) -> None:
        rclient.set(key, json.dumps(json.loads(rclient.get(key)) | {"s": time.time() - ago_s}), keepttl=True)

    set_seen(1700)  # nearly idle out: a use refreshes it, and keeps the absolute lifetime
    assert client.get("/api/alerts", headers=h).status_code == 200
    assert time.time() - json.loads(rclient.get(key))["s"] < 5
    assert api_settings.session_ttl_s - 60 < rclient.ttl(key) <= api_settings.session_ttl_s
    set_seen(1801)
    assert client.get("/api/alerts", headers=h).status_code == 401
    assert not rclient.exists(key)
    assert client.get("/api/alerts", headers=tokens["op"]).status_code == 200  # other sessions go on


def test_the_idle_timeout_is_a_bounded_setting(client: TestClient, tokens: dict, rclient: redis.Redis,
                                               api_settings: ApiSettings) -> None:
    for bad in (0, 59, 86401):
        with pytest.raises(ValidationError):
            ApiSettings(session_idle_s=bad)
    client.app.state.settings = api_settings.model_copy(update={"session_idle_s": 120})
    r = _login(client, "op")
    assert r.json()["idle_timeout"] == 120
    h = _bearer(r)
    key = _token_key(h)
    record = json.loads(rclient.get(key))
    rclient.set(key, json.dumps(record | {"s": time.time() - 100}), keepttl=True)
    assert client.get("/api/auth/me", headers=h).status_code == 200
    rclient.set(key, json.dumps(record | {"s": time.time() - 121}), keepttl=True)
    assert client.get("/api/auth/me", headers=h).status_code == 401


# -- 3. API keys always expire, within a configurable maximum; read-only keys -------------------------------------
def test_api_keys_always_expire_within_the_configured_maximum(client: TestClient, tokens: dict,
                                                              api_settings: ApiSettings) -> None:
    adm = tokens["adm"]
    r = client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "username": "op"})
    assert r.status_code == 201 and 29 * DAY < r.json()["expires_at"] - time.time() <= 30 * DAY
    r = client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "expires_in_days": None})
    assert r.status_code == 422 and r.json()["detail"].startswith("expires_in_days: API keys must expire")
    r = client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "expires_in_days": 366})
    assert r.status_code == 422 and r.json()["detail"] == "expires_in_days: at most 365 days (CCTV_API_KEY_MAX_DAYS)"
    r = client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "expires_in_days": 365})
    assert r.status_code == 201 and 364 * DAY < r.json()["expires_at"] - time.time() <= 365 * DAY
    # non-admins keep their tighter limit
    r = client.post("/api/auth/api-keys", headers=tokens["inv"], json={"name": "k", "expires_in_days": 91})
    assert r.status_code == 403
    # the maximum is a bounded setting
    for bad in (0, 3651):
        with pytest.raises(ValidationError):
            ApiSettings(api_key_max_days=bad)
    client.app.state.settings = api_settings.model_copy(update={"api_key_max_days": 10})
    r = client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "expires_in_days": 11})
    assert r.status_code == 422 and "at most 10 days" in r.json()["detail"]
    assert client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "expires_in_days": 10}).status_code \
        == 201
    # the schema does not offer a key that never expires
    field = client.get("/openapi.json").json()["components"]["schemas"]["ApiKeyCreate"]["properties"][
        "expires_in_days"]
    assert field.get("type") == "integer" and "anyOf" not in field


def test_a_read_only_api_key_only_reads(client: TestClient, tokens: dict) -> None:
    r = client.post("/api/auth/api-keys", headers=tokens["adm"], json={"name": "wall", "scope": "read"})
    assert r.status_code == 201 and r.json()["scope"] == "read"
    ro = {"X-API-Key": r.json()["key"]}
    assert client.get("/api/users", headers=ro).status_code == 200
    assert client.get("/api/alerts", headers=ro).status_code == 200
    r = client.post("/api/users", headers=ro, json={"username": "sneaky", "password": "x" * 12, "role": "admin"})
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    assert client.delete("/api/users/op", headers=ro).status_code == 403
    assert client.get("/api/users/op", headers=tokens["adm"]).status_code == 200
    listed = client.get("/api/auth/api-keys", headers=tokens["adm"]).json()
    assert [k["scope"] for k in listed] == ["read"]
    full = client.post("/api/auth/api-keys", headers=tokens["adm"], json={"name": "vms"}).json()
    assert full["scope"] == "full"
    r = client.post("/api/users", headers={"X-API-Key": full["key"]},
                    json={"username": "viakey", "password": "Tangerine-Kiln-47", "role": "operator"})
    assert r.status_code == 201
