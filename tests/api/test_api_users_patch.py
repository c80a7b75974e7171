"""User administration: role and camera-limit changes revoke the user's sessions and take effect at the next
sign-in; refusals name fields."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.timeout(120)


def _login(client: TestClient, name: str) -> dict:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_role_and_cameras_changes_end_sessions_and_apply_at_next_login(client: TestClient, tokens: dict) -> None:
    adm, op = tokens["adm"], tokens["op"]
    assert {c["id"] for c in client.get("/api/cameras", headers=op).json()} == {"bkk-night-01", "walkway-01",
                                                                                  "stage-01"}
    r = client.patch("/api/users/op", headers=adm, json={"role": "investigator", "cameras": ["walkway-01"]})
    assert r.status_code == 200 and r.json() == {"username": "op", "role": "investigator", "cameras": ["walkway-01"],
                                                 "must_change_password": False, "disabled": False}
    # the old token is revoked; a new sign-in has the new role and limit
    assert client.get("/api/cameras", headers=op).status_code == 401
    op = _login(client, "op")
    assert [c["id"] for c in client.get("/api/cameras", headers=op).json()] == ["walkway-01"]
    assert client.get("/api/persons", headers=op).status_code == 200
    assert client.get("/api/cameras/bkk-night-01/events", headers=op).status_code == 404
    # omitted fields stay; all_cameras lifts the limit
    assert client.patch("/api/users/op", headers=adm, json={"role": "operator"}).json()["cameras"] == ["walkway-01"]
    assert client.patch("/api/users/op", headers=adm, json={"all_cameras": True}).json()["cameras"] is None
    assert client.get("/api/cameras", headers=op).status_code == 401
    assert len(client.get("/api/cameras", headers=_login(client, "op")).json()) == 3
    audit = client.get("/api/audit?action=user_update", headers=adm).json()
    assert audit[0]["params"]["cameras"] == ["walkway-01"] and audit[-1]["params"]["cameras"] is None


def test_user_patch_refusals(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    for body, name in (({"cameras": ["walkway-01", "mars-01"]}, "cameras[1]"), ({"role": "king"}, "role"),
                       ({"cameras": ["walkway-01"], "all_cameras": True}, "cameras"), ({"password": "short"},
                                                                                        "password")):
        r = client.patch("/api/users/op", headers=adm, json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith(name), (body, r.text)
    assert client.get("/api/users/op", headers=adm).json() == {"username": "op", "role": "operator", "cameras": None,
                                                                "must_change_password": False, "disabled": False}
    assert client.patch("/api/users/ghost", headers=adm, json={"role": "admin"}).status_code == 404
    assert client.patch("/api/users/op", headers=tokens["inv"], json={"role": "admin"}).status_code == 403
    r = client.post("/api/users", headers=adm, json={"username": "x1", "password": "abcdefgh1-long", "role": "operator",
                                                     "cameras": ["nowhere"]})
    assert r.status_code == 422 and r.json()["detail"].startswith("cameras[0]")


def test_last_admin_cannot_be_demoted(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    # 'root' (bootstrap) and 'adm' are admins: one may go, the last one may not
    assert client.patch("/api/users/root", headers=adm, json={"role": "operator"}).status_code == 200
    r = client.patch("/api/users/adm", headers=adm, json={"role": "investigator"})
    assert r.status_code == 409 and "last admin" in r.json()["detail"]
    assert client.get("/api/auth/me", headers=adm).json()["role"] == "admin"
