"""Refusals a client shows in its own language carry a stable machine ``code`` next to the unchanged English
``detail`` (case closed, alert already acknowledged, entry already on the watchlist, store unavailable), and the
OpenAPI error model documents it. Real Redis, real API (TestClient)."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.schemas.errors import ERROR_CODES
from tests.api.test_api_alert_ack_once import publish
from tests.api.test_api_case_items import _new_case

pytestmark = pytest.mark.timeout(120)


def test_a_closed_case_refuses_with_code_case_closed(client: TestClient, tokens: dict) -> None:
    case_id = _new_case(client, tokens["inv"])
    assert client.post(f"/api/cases/{case_id}/close", headers=tokens["inv"]).status_code == 200
    r = client.post(f"/api/cases/{case_id}/items", json={"kind": "plate", "ref": "nothing"}, headers=tokens["inv"])
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": f"case {case_id!r} is closed", "code": "case_closed"}


def test_a_second_acknowledgement_says_already_acknowledged(client: TestClient, tokens: dict,
                                                            rclient: redis.Redis) -> None:
    alert = publish(rclient)
    url = f"/api/alerts/{alert.alert_id}/ack"
    assert client.post(url, headers=tokens["op"], json={"note": "patrol sent"}).status_code == 200
    r = client.post(url, headers=tokens["adm"], json={"note": "again"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "already_acknowledged" and "already acknowledged by op" in r.json()["detail"]


def test_a_duplicate_entry_says_already_listed(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]
    first = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กช4986"}).json()
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กช4986"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "already_listed" and r.json()["entry_id"] == first["entry_id"]


def test_plain_refusals_keep_their_body_and_headers(client: TestClient, tokens: dict) -> None:
    r = client.get("/api/cases/no-such-case", headers=tokens["inv"])
    assert r.status_code == 404 and set(r.json()) == {"detail"}, r.text
    r = client.get("/api/auth/me")
    assert r.status_code == 401 and set(r.json()) == {"detail"}, r.text


def test_the_openapi_error_model_documents_the_codes(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    code = schemas["ErrorOut"]["properties"]["code"]
    assert all(f"`{name}`" in code["description"] for name in ERROR_CODES)
    ack_code = schemas["AckConflictOut"]["properties"]["code"]
    assert ack_code.get("const", (ack_code.get("enum") or [None])[0]) == "already_acknowledged", ack_code
