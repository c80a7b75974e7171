"""Plate entries through the API: a province given with the entry, duplicates refused (409 naming the existing
entry), expiries already past refused (422)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)


def _plate_list(client: TestClient, adm: dict) -> str:
    return client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]


def test_a_plate_entry_can_be_tied_to_a_province(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = _plate_list(client, adm)
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กข1234", "province": "ภูเก็ต"})
    assert r.status_code == 201, r.text
    assert (r.json()["plate"], r.json()["province"]) == ("1กข1234", "ภูเก็ต")
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กข1234", "province": "Bangkok"})
    assert r.status_code == 201 and r.json()["province"] == "กรุงเทพมหานคร", r.text  # stored in Thai
    for body in ({"plate": "1กข5555", "province": "Atlantis"},
                 {"plate": "1กข5555 ตาก", "province": "ภูเก็ต"}):  # not the province typed with the plate
        r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith("province"), (body, r.text)
    # PATCH: set, then untie
    entry_id = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "2กข2"}).json()["entry_id"]
    url = f"/api/watchlists/{wid}/entries/{entry_id}"
    r = client.patch(url, headers=adm, json={"province": "Chiang Mai"})
    assert r.status_code == 200 and r.json()["province"] == "เชียงใหม่", r.text
    r = client.patch(url, headers=adm, json={"province": "nowhere"})
    assert r.status_code == 422 and r.json()["detail"].startswith("province"), r.text
    r = client.patch(url, headers=adm, json={"province": None})
    assert r.status_code == 200 and r.json()["province"] is None, r.text


def test_a_duplicate_plate_entry_is_refused_naming_the_existing_one(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = _plate_list(client, adm)
    first = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กช4986"}).json()
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1 กช-4986", "severity": "high"})
    assert r.status_code == 409, r.text
    assert r.json()["entry_id"] == first["entry_id"] and first["entry_id"] in r.json()["detail"]
    other = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กช4986", "province": "ตาก"})
    assert other.status_code == 201, other.text
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กช4986", "province": "Tak"})
    assert r.status_code == 409 and r.json()["entry_id"] == other.json()["entry_id"], r.text
    # PATCH into a duplicate: refused, the entry unchanged
    third = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "9กช9999"}).json()
    r = client.patch(f"/api/watchlists/{wid}/entries/{third['entry_id']}", headers=adm, json={"plate": "1กช 4986"})
    assert r.status_code == 409 and r.json()["entry_id"] == first["entry_id"], r.text
    listed = client.get(f"/api/watchlists/{wid}/entries", headers=adm).json()
    assert sorted((e["plate"], e["province"] or "") for e in listed) == [("1กช4986", ""), ("1กช4986", "ตาก"),
                                                                         ("9กช9999", "")]


def test_an_expiry_already_past_is_refused(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = _plate_list(client, adm)
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                    json={"plate": "1กข1234", "expires_at": time.time() - 3600})
    assert r.status_code == 422 and r.json()["detail"].startswith("expires_at"), r.text
    assert client.get(f"/api/watchlists/{wid}/entries", headers=adm).json() == []
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                    json={"plate": "1กข1234", "expires_at": time.time() - 10})  # within the clock skew
    assert r.status_code == 201, r.text
    url = f"/api/watchlists/{wid}/entries/{r.json()['entry_id']}"
    r = client.patch(url, headers=adm, json={"expires_at": time.time() - 86_400})
    assert r.status_code == 422 and r.json()["detail"].startswith("expires_at"), r.text
    assert client.patch(url, headers=adm, json={"expires_at": time.time() + 3600}).status_code == 200
