"""Authentication, roles, rate limiting, API keys, audit, 404/422 answers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)

# (method, path, minimum role) for routes that need no setup to be reachable
ROUTES = [
    ("GET", "/api/alerts", "operator"),
    ("GET", "/api/cameras", "operator"),
    ("GET", "/api/plates/search?q=1234", "operator"),
    ("GET", "/api/plates/1กข1234/history?reason=case-42", "investigator"),
    ("GET", "/api/exports", "investigator"),
    ("GET", "/api/cases", "investigator"),
    ("GET", "/api/persons", "investigator"),
    ("GET", "/api/watchlists", "investigator"),
    ("GET", "/api/users", "admin"),
    ("GET", "/api/audit", "admin"),
    ("POST", "/api/watchlists", "admin"),
]
RANK = {"op": 0, "inv": 1, "adm": 2}
NEED = {"operator": 0, "investigator": 1, "admin": 2}


def test_health_needs_no_auth_and_everything_else_does(client: TestClient) -> None:
    health = client.get("/api/health").json()  # no capture worker runs here: cameras unknown, so "degraded"
    assert health["redis"] is True and health["status"] == "degraded" and health["cameras"]["unknown"] >= 1
    for method, path, _ in ROUTES:
        assert client.request(method, path).status_code == 401, path
    assert client.get("/api/plates/search?q=1234", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/media/x.jpg").status_code == 401


@pytest.mark.parametrize("who", ["op", "inv", "adm"])
def test_each_role_allowed_and_forbidden_routes(client: TestClient, tokens: dict, who: str) -> None:
    for method, path, role in ROUTES:
        body = {"kind": "plate", "name": "x"} if method == "POST" else None
        status = client.request(method, path, headers=tokens[who], json=body).status_code
        if RANK[who] >= NEED[role]:
            assert status in (200, 201, 404), (who, path, status)
        else:
            assert status == 403, (who, path, status)


def test_bootstrap_admin_and_user_admin(client: TestClient, tokens: dict) -> None:
    r = client.post("/api/auth/login", json={"username": "root", "password": "bootstrap-pass"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    adm = tokens["adm"]
    r = client.post("/api/users", headers=adm, json={"username": "new", "password": "abcdefgh1-long", "role": "operator"})
    assert r.status_code == 201
    assert client.post("/api/users", headers=adm, json={"username": "new", "password": "abcdefgh1-long",
                                                         "role": "operator"}).status_code == 409
    assert client.patch("/api/users/new", headers=adm, json={"role": "investigator"}).json()["role"] == "investigator"
    assert client.get("/api/users/ghost", headers=adm).status_code == 404
    assert client.delete("/api/users/new", headers=adm).status_code == 204
    me = client.get("/api/auth/me", headers=tokens["limited"]).json()
    assert me == {"username": "limited", "role": "investigator", "cameras": ["walkway-01"],
                  "must_change_password": False, "disabled": False}


def test_logout_revokes_token(client: TestClient, tokens: dict) -> None:
    assert client.post("/api/auth/logout", headers=tokens["op"]).status_code == 204
    assert client.get("/api/auth/me", headers=tokens["op"]).status_code == 401


def test_api_key_works_and_is_stored_hashed(client: TestClient, tokens: dict, rclient) -> None:
    r = client.post("/api/auth/api-keys", headers=tokens["inv"], json={"name": "vms"})
    assert r.status_code == 201
    key = r.json()["key"]
    assert client.get("/api/persons", headers={"X-API-Key": key}).status_code == 200
    assert not any(key.encode() in k or key.encode() in (rclient.get(k) or b"")
                   for k in rclient.keys("apikey:*"))
    assert client.get("/api/auth/api-keys", headers=tokens["inv"]).json()[0]["key"] is None
    assert client.delete(f"/api/auth/api-keys/{r.json()['key_id']}", headers=tokens["inv"]).status_code == 204
    assert client.get("/api/persons", headers={"X-API-Key": key}).status_code == 401
    assert client.post("/api/auth/api-keys", headers=tokens["inv"],
                       json={"name": "x", "username": "op"}).status_code == 403


def test_login_is_rate_limited_per_user(client: TestClient, tokens: dict) -> None:
    codes = [client.post("/api/auth/login", json={"username": "op", "password": "wrong-pass"}).status_code
             for _ in range(4)]
    assert codes[:2] == [401, 401] and codes[-1] == 429  # 'op' already logged in once in the fixture
    r = client.post("/api/auth/login", json={"username": "op", "password": "correct horse battery"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_login_is_rate_limited_per_ip(client: TestClient) -> None:
    codes = [client.post("/api/auth/login", json={"username": f"u{i}", "password": "x"}).status_code
             for i in range(8)]
    assert codes[0] == 401 and codes[-1] == 429


def test_422_names_the_field(client: TestClient, tokens: dict) -> None:
    r = client.get("/api/plates/search?q=1234&limit=0", headers=tokens["op"])
    assert r.status_code == 422 and "limit" in r.json()["detail"]
    r = client.get("/api/plates/search?q=*", headers=tokens["op"])
    assert r.status_code == 422 and r.json()["detail"].startswith("q:")
    r = client.get("/api/plates/search?q=" + "1" * 40, headers=tokens["op"])
    assert r.status_code == 422 and "q" in r.json()["detail"]
    r = client.get("/api/plates/search?q=1234&province=Atlantis", headers=tokens["op"])
    assert r.status_code == 422 and "province" in r.json()["detail"]
    r = client.post("/api/watchlists", headers=tokens["adm"], json={"kind": "boat", "name": "x"})
    assert r.status_code == 422 and "kind" in r.json()["detail"]
    r = client.post("/api/auth/login", json={"username": "a b", "password": "x"})
    assert r.status_code == 422 and "username" in r.json()["detail"]
    r = client.get("/api/alerts?after=DROP", headers=tokens["op"])
    assert r.status_code == 422 and "after" in r.json()["detail"]


def test_unknown_ids_are_404(client: TestClient, tokens: dict) -> None:
    h = tokens["adm"]
    for path in ("/api/watchlists/nope", "/api/persons/nope", "/api/exports/nope", "/api/cases/nope",
                 "/api/cameras/nope", "/api/users/nope", "/api/watchlists/nope/entries"):
        assert client.get(path, headers=h).status_code == 404, path
    assert client.post("/api/alerts/nope/ack", headers=h, json={"note": "x"}).status_code == 404
    assert client.delete("/api/watchlists/nope", headers=h).status_code == 404


def test_media_is_traversal_safe(client: TestClient, tokens: dict, api_settings) -> None:
    crop = api_settings.recordings_dir / "crops" / "bkk-night-01" / "a.jpg"
    crop.write_bytes(b"\xff\xd8\xffcrop")
    secret = api_settings.recordings_dir.parent / "secret.txt"
    secret.write_text("secret")
    assert client.get("/api/media/crops/bkk-night-01/a.jpg", headers=tokens["op"]).content == b"\xff\xd8\xffcrop"
    for bad in ("../secret.txt", "..%2Fsecret.txt", "crops/../../secret.txt", "%2Fetc%2Fpasswd"):
        assert client.get(f"/api/media/{bad}", headers=tokens["op"]).status_code == 404, bad
    assert client.get("/api/media/crops/bkk-night-01/a.jpg", headers=tokens["limited"]).status_code == 404


def test_watchlist_changes_are_audited(client: TestClient, tokens: dict) -> None:
    r = client.post("/api/watchlists", headers=tokens["adm"], json={"kind": "plate", "name": "stolen"})
    wid = r.json()["id"]
    r = client.post(f"/api/watchlists/{wid}/plates", headers=tokens["adm"],
                    json={"plate": "1กข1234", "fuzzy": True, "severity": "high", "reason": "stolen"})
    assert r.status_code == 201 and r.json()["plate"] == "1กข1234"
    client.get("/api/plates/search?q=1234", headers=tokens["op"])
    audit = client.get("/api/audit", headers=tokens["adm"]).json()
    actions = [(a["user"], a["action"]) for a in audit]
    assert ("adm", "watchlist_create") in actions and ("adm", "watchlist_entry_add") in actions
    search = next(a for a in audit if a["action"] == "plate_search")
    assert search["user"] == "op" and search["params"]["q"] == "1234" and search["results"] == 0
    assert client.get("/api/audit?action=plate_search", headers=tokens["adm"]).json()[0]["action"] == "plate_search"
