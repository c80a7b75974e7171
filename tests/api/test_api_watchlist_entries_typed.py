"""Plate watchlist entries as operators type them (province included) and hostile entries (clear 4xx)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)


def _plate_list(client: TestClient, adm: dict) -> str:
    r = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(("typed", "plate", "province"), [
    ("1กข 1234 กรุงเทพมหานคร", "1กข1234", "กรุงเทพมหานคร"),
    ("1กช ภูเก็ต 4986", "1กช4986", "ภูเก็ต"),
    ("กข 1234 Chon Buri", "กข1234", "ชลบุรี"),
    ("1กข 1234", "1กข1234", None),
])
def test_a_plate_typed_with_its_province_is_stored_as_registration_and_province(
        client: TestClient, tokens: dict, typed: str, plate: str, province: str | None) -> None:
    adm = tokens["adm"]
    wid = _plate_list(client, adm)
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": typed})
    assert r.status_code == 201, r.text
    assert (r.json()["plate"], r.json()["province"]) == (plate, province)
    url = f"/api/watchlists/{wid}/entries/{r.json()['entry_id']}"
    r = client.patch(url, headers=adm, json={"plate": "อคม 888 เชียงใหม่"})
    assert r.status_code == 200, r.text
    assert (r.json()["plate"], r.json()["province"]) == ("อคม888", "เชียงใหม่")


@pytest.mark.parametrize("body", [
    {"plate": "\x00\x01\x1f"},                      # control characters only
    {"plate": "\u200b\u200d\ufeff"},                 # invisible characters only
    {"plate": "ุ ิ ่ ้"},                            # Thai marks only
    {"plate": "1กข1234" * 12},                       # far too long
    {"plate": "1กข1234", "expires_at": "NaN"},
    {"plate": "1กข1234", "expires_at": "Infinity"},
    {"plate": "1กข1234", "max_distance": 5},
    {"plate": "1กข1234", "cameras": []},
])
def test_hostile_plate_entries_are_refused_with_422(client: TestClient, tokens: dict, body: dict) -> None:
    adm = tokens["adm"]
    wid = _plate_list(client, adm)
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json=body)
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert client.get(f"/api/watchlists/{wid}/entries", headers=adm).json() == []
