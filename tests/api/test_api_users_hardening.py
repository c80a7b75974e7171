"""User hardening: password rules everywhere a password is set, case-insensitive unique names, disabled users."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.store import ApiStore
from tests.api.conftest import PASSWORD

GOOD = "Tangerine-Kiln-47"


def _login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    return client.post("/api/auth/login", json={"username": name, "password": password}).status_code


def _field_error(r, field: str, words: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field}: ") and words in r.json()["detail"], r.text


@pytest.mark.parametrize(("password", "words"), [
    (" " * 12, "whitespace"), ("aaaaaaaaaaaa", "different characters"), ("abababababab", "different characters"),
    ("password1234", "common"), ("QWERTYUIOP12", "common"), ("123456789012", "common"),
    ("newbie-Secret-9", "user name"), ("xxNEWBIExx-7", "user name"),
])
def test_create_user_refuses_weak_passwords(client: TestClient, tokens: dict, password: str, words: str) -> None:
    r = client.post("/api/users", headers=tokens["adm"],
                    json={"username": "newbie", "password": password, "role": "operator"})
    _field_error(r, "password", words)
    assert client.get("/api/users/newbie", headers=tokens["adm"]).status_code == 404


def test_admin_reset_and_own_change_refuse_weak_passwords(client: TestClient, tokens: dict) -> None:
    _field_error(client.patch("/api/users/op", headers=tokens["adm"], json={"password": "password1234"}),
                 "password", "common")
    _field_error(client.patch("/api/users/limited", headers=tokens["adm"], json={"password": "my-LIMITED-9"}),
                 "password", "user name")
    body = {"current_password": PASSWORD, "new_password": "INV-is-me-2024"}
    _field_error(client.post("/api/auth/password", headers=tokens["inv"], json=body), "new_password", "user name")
    body["new_password"] = "            "
    _field_error(client.post("/api/auth/password", headers=tokens["inv"], json=body), "new_password", "whitespace")
    body["new_password"] = GOOD
    assert client.post("/api/auth/password", headers=tokens["inv"], json=body).status_code == 200
    assert client.patch("/api/users/limited", headers=tokens["adm"], json={"password": GOOD}).status_code == 200


def test_openapi_states_the_password_rules(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "common passwords" in schemas["UserCreate"]["properties"]["password"]["description"]
    assert "disabled" in schemas["UserUpdate"]["properties"] and "disabled" in schemas["UserOut"]["properties"]


def test_disabled_is_always_a_boolean(client: TestClient, tokens: dict) -> None:
    """Every user response (list, one, create, update) and the OpenAPI schema carry ``disabled`` as a boolean, also
    for enabled users (it was left out unless true)."""
    adm = tokens["adm"]
    created = client.post("/api/users", headers=adm, json={"username": "newop", "password": GOOD, "role": "operator"})
    assert created.status_code == 201 and created.json()["disabled"] is False, created.text
    listed = client.get("/api/users", headers=adm).json()
    assert listed and all(u["disabled"] is False for u in listed), listed
    assert client.get("/api/users/op", headers=adm).json()["disabled"] is False
    assert client.patch("/api/users/op", headers=adm, json={"role": "investigator"}).json()["disabled"] is False
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    out = schema.get("UserOut") or schema["UserOut-Output"]
    assert out["properties"]["disabled"]["type"] == "boolean" and "disabled" in out["required"]


def test_user_names_unique_ignoring_case(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    r = client.post("/api/users", headers=tokens["adm"], json={"username": "ADM", "password": GOOD, "role": "admin"})
    assert r.status_code == 409 and "'adm'" in r.json()["detail"], r.text
    # an existing mixed-case pair (made before the rule) still signs in, each with its own record
    ApiStore(rclient, scrypt_n=16).put_user("Op", "operator", GOOD)
    assert _login(client, "Op", GOOD) == 200 and _login(client, "op") == 200


def test_disabled_user_is_locked_out_then_enabled(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    store = ApiStore(rclient, scrypt_n=16)
    key = client.post("/api/auth/api-keys", headers=tokens["inv"], json={"name": "k"}).json()["key"]
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 200
    r = client.patch("/api/users/inv", headers=tokens["adm"], json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True, r.text
    listed = {u["username"]: u for u in client.get("/api/users", headers=tokens["adm"]).json()}
    assert listed["inv"]["disabled"] is True and listed["op"]["disabled"] is False
    assert client.get("/api/auth/me", headers=tokens["inv"]).status_code == 401
    assert client.get("/api/auth/me", headers={"X-API-Key": key}).status_code == 401
    r = client.post("/api/auth/login", json={"username": "inv", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    audit = [e for e in store.read_audit(None, 100, "inv", "login_failed")]
    assert audit and audit[-1]["status"] == 401
    assert client.patch("/api/users/inv", headers=tokens["adm"], json={"disabled": False}).json()["disabled"] is False
    assert _login(client, "inv") == 200
    assert store.get_user("inv")["role"] == "investigator"


def test_admin_cannot_disable_themself(client: TestClient, tokens: dict) -> None:
    r = client.patch("/api/users/adm", headers=tokens["adm"], json={"disabled": True})
    assert r.status_code == 409 and "yourself" in r.json()["detail"]
    assert client.get("/api/auth/me", headers=tokens["adm"]).status_code == 200
