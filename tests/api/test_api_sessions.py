"""Sessions that end (password, role, camera-limit change, deletion), API-key expiry and admin revocation, login
backoff per user and address, equal login cost, hash parameters and rehash, and the first-run admin."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore, hash_password, needs_rehash, token_hash
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.timeout(180)


def _login(client: TestClient, name: str, password: str = PASSWORD):
    return client.post("/api/auth/login", json={"username": name, "password": password})


def _bearer(r) -> dict:
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _key(client: TestClient, headers: dict, **body) -> str:
    r = client.post("/api/auth/api-keys", headers=headers, json={"name": "k", **body})
    assert r.status_code == 201, r.text
    return r.json()["key"]


@pytest.mark.parametrize("change", [{"password": "another password 1"}, {"role": "investigator"},
                                    {"cameras": ["walkway-01"]}])
def test_admin_changes_revoke_tokens_and_keys(client: TestClient, tokens: dict, change: dict) -> None:
    op = tokens["op"]
    key = _key(client, op)
    assert client.get("/api/alerts", headers={"X-API-Key": key}).status_code == 200
    assert client.patch("/api/users/op", headers=tokens["adm"], json=change).status_code == 200
    assert client.get("/api/auth/me", headers=op).status_code == 401
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 401
    # other users are untouched
    assert client.get("/api/auth/me", headers=tokens["inv"]).status_code == 200


def test_deleted_user_stays_revoked_when_the_name_is_re_created(client: TestClient, tokens: dict) -> None:
    op, adm = tokens["op"], tokens["adm"]
    key = _key(client, op)
    assert client.delete("/api/users/op", headers=adm).status_code == 204
    r = client.post("/api/users", headers=adm, json={"username": "op", "password": PASSWORD, "role": "admin"})
    assert r.status_code == 201
    assert client.get("/api/auth/me", headers=op).status_code == 401
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 401
    assert client.get("/api/auth/me", headers=_bearer(_login(client, "op"))).json()["role"] == "admin"


def test_own_password_change_revokes_other_sessions(client: TestClient, tokens: dict) -> None:
    first, second = tokens["inv"], _bearer(_login(client, "inv"))
    key = _key(client, first)
    r = client.post("/api/auth/password", headers=first, json={"current_password": "wrong", "new_password": "a much better one"})
    assert r.status_code == 403 and "current_password" in r.json()["detail"]
    r = client.post("/api/auth/password", headers=first,
                    json={"current_password": PASSWORD, "new_password": "a much better one"})
    assert r.status_code == 200, r.text
    fresh = _bearer(r)
    for old in (first, second, {"X-API-Key": key}):
        assert client.get("/api/auth/me", headers=old).status_code == 401
    assert client.get("/api/auth/me", headers=fresh).status_code == 200
    assert _login(client, "inv").status_code == 401
    assert _login(client, "inv", "a much better one").status_code == 200
    r = client.post("/api/auth/password", headers={"X-API-Key": _key(client, fresh)},
                    json={"current_password": "a much better one", "new_password": "yet another fine one"})
    assert r.status_code == 403


def test_api_key_expiry_and_bounds(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    inv, adm = tokens["inv"], tokens["adm"]
    r = client.post("/api/auth/api-keys", headers=inv, json={"name": "k"})
    assert r.status_code == 201 and 29 * 86400 < r.json()["expires_at"] - time.time() <= 30 * 86400
    r = client.post("/api/auth/api-keys", headers=inv, json={"name": "k", "expires_in_days": 365})
    assert r.status_code == 403 and "90" in r.json()["detail"]
    assert client.post("/api/auth/api-keys", headers=inv, json={"name": "k", "username": "op"}).status_code == 403
    r = client.post("/api/auth/api-keys", headers=adm, json={"name": "vms", "username": "op"})
    assert r.status_code == 201 and r.json()["expires_at"] is not None and r.json()["username"] == "op"  # every key expires
    # an expired key stops working even if Redis has not dropped it yet
    store = ApiStore(rclient, scrypt_n=16)
    key, meta = store.new_api_key("inv", "short", 60)
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 200
    raw = json.loads(rclient.get(f"apikey:{token_hash(key)}"))
    rclient.set(f"apikey:{token_hash(key)}", json.dumps(raw | {"expires_at": time.time() - 1}))
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_admin_lists_and_revokes_anyones_keys(client: TestClient, tokens: dict) -> None:
    key = _key(client, tokens["op"])
    listed = client.get("/api/api-keys", headers=tokens["adm"]).json()
    mine = [k for k in listed if k["username"] == "op"]
    assert len(mine) == 1 and mine[0]["key"] is None
    assert client.get("/api/api-keys?username=inv", headers=tokens["adm"]).json() == []
    assert client.get("/api/api-keys", headers=tokens["inv"]).status_code == 403
    assert client.delete(f"/api/api-keys/{mine[0]['key_id']}", headers=tokens["inv"]).status_code == 403
    assert client.delete(f"/api/api-keys/{mine[0]['key_id']}", headers=tokens["adm"]).status_code == 204
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 401
    assert client.delete(f"/api/api-keys/{mine[0]['key_id']}", headers=tokens["adm"]).status_code == 404
    audit = client.get("/api/audit?action=api_key_revoke", headers=tokens["adm"]).json()
    assert audit[-1]["params"] == {"key_id": mine[0]["key_id"], "owner": "op"}


def test_login_backoff_is_per_user_and_address_and_never_locks_out_from_elsewhere(
        redis_url: str, rclient: redis.Redis, tmp_path: Path) -> None:
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", scrypt_n=16,
                           login_max_per_user=3, login_max_per_ip=50, login_backoff_base_s=30,
                           admin_user="boss", admin_password=PASSWORD)
    app = create_app(settings)
    with TestClient(app, client=("10.0.0.1", 1000)) as attacker, TestClient(app, client=("10.0.0.2", 1000)) as desk:
        codes = [_login(attacker, "boss", "wrong").status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        r = _login(attacker, "boss")
        assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 30
        # the admin at another address is not held up
        assert _login(desk, "boss").status_code == 200
        # the delay grows: one more failure once the wait has passed doubles it
        rclient.hset("rl:login:u:boss|ip:10.0.0.1", "until", repr(time.time() - 1))
        assert _login(attacker, "boss", "wrong").status_code == 401
        assert 30 < int(_login(attacker, "boss").headers["Retry-After"]) <= 60
        # never permanent: after the wait a right password resets the pair
        rclient.hset("rl:login:u:boss|ip:10.0.0.1", "until", repr(time.time() - 1))
        assert _login(attacker, "boss").status_code == 200
        assert _login(attacker, "boss", "wrong").status_code == 401
        audit = [a for a in ApiStore(rclient).read_audit(None, 1000, "boss", None)]
        assert {a["action"] for a in audit} >= {"login", "login_failed", "login_refused"}
        assert {a["ip"] for a in audit} == {"10.0.0.1", "10.0.0.2"}


def test_unknown_and_known_users_cost_one_hash_each(rclient: redis.Redis, monkeypatch) -> None:
    import api.store as store_mod

    store = ApiStore(rclient, scrypt_n=16)
    store.put_user("known", "operator", PASSWORD)
    calls: list[int] = []
    real = store_mod.verify_password
    monkeypatch.setattr(store_mod, "verify_password", lambda p, s: calls.append(1) or real(p, s))
    real_hash = store_mod.hash_password
    monkeypatch.setattr(store_mod, "hash_password", lambda p, n: calls.append(10) or real_hash(p, n))
    store.dummy_hash()  # made once (the app makes it at start-up)
    calls.clear()
    assert not store.check_password("nobody", "x")
    assert calls == [1]
    calls.clear()
    assert not store.check_password("known", "x")
    assert calls == [1]


def test_hash_parameters_and_transparent_rehash(rclient: redis.Redis) -> None:
    assert ApiSettings().scrypt_n >= 2**17 and ApiStore(rclient).scrypt_n >= 2**17
    old = hash_password(PASSWORD, 2**4)
    assert needs_rehash(old, 2**5) and not needs_rehash(old, 2**4)
    weak = ApiStore(rclient, scrypt_n=2**4)
    weak.put_user("legacy", "operator", PASSWORD)
    strong = ApiStore(rclient, scrypt_n=2**6)
    assert strong.check_password("legacy", PASSWORD)
    stored = rclient.hget("user:legacy", "password").decode()
    assert stored.split("$")[1] == str(2**6) and strong.check_password("legacy", PASSWORD)
    assert not strong.check_password("legacy", "wrong")


def test_first_run_creates_an_admin_who_must_change_the_password(redis_url: str, tmp_path: Path, capsys,
                                                                 caplog) -> None:
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", scrypt_n=16,
                           admin_user=None, admin_password=None)
    with TestClient(create_app(settings)) as client:
        err = capsys.readouterr().err
        assert "First run" in err and "user name : admin" in err
        password = err.split("password  : ")[1].split()[0]
        assert password not in caplog.text  # printed to the console only, never to a logger
        r = _login(client, "admin", password)
        assert r.status_code == 200 and r.json()["must_change_password"] is True
        h = _bearer(r)
        r = client.get("/api/cameras", headers=h)
        assert r.status_code == 403 and "password change required" in r.json()["detail"]
        assert client.get("/api/auth/me", headers=h).json()["must_change_password"] is True
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/api/alerts/ws") as ws:
            ws.send_json({"token": h["Authorization"].split()[1]})  # nor live alerts before the change
            ws.receive_json()
        r = client.post("/api/auth/password", headers=h,
                        json={"current_password": password, "new_password": "my own good password"})
        assert r.status_code == 200 and r.json()["must_change_password"] is False
        assert client.get("/api/cameras", headers=_bearer(r)).status_code == 200
    # a restart does not create (or print) another one
    with TestClient(create_app(settings)):
        assert "First run" not in capsys.readouterr().err


def test_refused_requests_and_queries_are_audited(client: TestClient, tokens: dict) -> None:
    client.get("/api/plates/search?q=1234", headers={"Authorization": "Bearer nope"})
    client.get("/api/audit", headers=tokens["op"])
    client.get("/api/plates/search?q=1234&limit=0", headers=tokens["op"])
    client.get("/api/plates/1234/history", headers=tokens["inv"])
    client.get("/api/cameras/walkway-01/events", headers=tokens["op"])
    client.get("/api/exports", headers=tokens["inv"])
    client.get("/api/plates/1234/history?reason=case+99", headers=tokens["inv"])
    audit = client.get("/api/audit?limit=1000", headers=tokens["adm"]).json()
    got = [(a["user"], a["action"], a["status"], a["params"].get("path")) for a in audit]
    assert ("-", "refused", 401, "/api/plates/search") in got
    assert ("op", "refused", 403, "/api/audit") in got
    assert ("op", "refused", 422, "/api/plates/search") in got
    assert ("inv", "refused", 422, "/api/plates/1234/history") in got
    assert ("op", "query", 200, "/api/cameras/walkway-01/events") in got
    assert ("inv", "query", 200, "/api/exports") in got
    history = [a for a in audit if a["action"] == "plate_history"]
    assert history[-1]["params"]["reason"] == "case 99" and history[-1]["ip"]
    r = client.get("/api/plates/1234/history", headers=tokens["inv"])
    assert r.status_code == 422 and "reason" in r.json()["detail"] and "case number" in r.json()["detail"]
    newest = client.get("/api/audit?order=newest&limit=2", headers=tokens["adm"]).json()
    assert [(a["user"], a["status"]) for a in newest] == [("inv", 422), ("adm", 200)]
