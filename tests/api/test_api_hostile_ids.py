"""What an attacker sends beyond the intended paths: ids that would reach another record's Redis key, a body
declared as a form to a route that takes none, a portrait phone photo (EXIF orientation), and the OpenAPI schema's
status codes for them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from api.store import ApiStore

pytestmark = pytest.mark.timeout(300)


def _watchlist_with_entry(client: TestClient, adm: dict) -> str:
    wl = client.post("/api/watchlists", headers=adm, json={"kind": "plate", "name": "stolen"}).json()["id"]
    assert client.post(f"/api/watchlists/{wl}/plates", headers=adm, json={"plate": "1กข1234"}).status_code == 201
    return wl


def test_watchlist_ids_cannot_reach_the_entries_key(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm, inv = tokens["adm"], tokens["inv"]
    wl = _watchlist_with_entry(client, adm)
    before = rclient.hgetall(f"wl:{wl}:entries")
    assert client.get(f"/api/watchlists/{wl}:entries", headers=inv).status_code == 404
    assert client.patch(f"/api/watchlists/{wl}:entries", headers=adm, json={"name": "x"}).status_code == 404
    assert client.delete(f"/api/watchlists/{wl}:entries", headers=adm).status_code == 404
    assert client.delete(f"/api/watchlists/{wl}/entries/x:y", headers=adm).status_code == 404
    assert rclient.hgetall(f"wl:{wl}:entries") == before  # nothing written, nothing deleted
    entries = client.get(f"/api/watchlists/{wl}/entries", headers=inv)
    assert entries.status_code == 200 and [e["plate"] for e in entries.json()] == ["1กข1234"]


def test_person_and_case_ids_cannot_name_the_index_keys(client: TestClient, tokens: dict,
                                                        rclient: redis.Redis) -> None:
    rclient.sadd("person:ids", "0123456789abcdef")
    assert client.delete("/api/persons/ids", headers=tokens["adm"]).status_code == 404
    assert client.get("/api/persons/ids", headers=tokens["inv"]).status_code == 404
    assert rclient.smembers("person:ids") == {b"0123456789abcdef"}  # the list of persons is still there
    case = client.post("/api/cases", headers=tokens["inv"], json={"name": "stolen pickup"}).json()["id"]
    for method, path in (("GET", f"/api/cases/{case}:items"), ("POST", f"/api/cases/{case}:items/close")):
        assert client.request(method, path, headers=tokens["inv"]).status_code == 404, path
    assert client.get(f"/api/cases/{case}", headers=tokens["inv"]).json()["status"] == "open"


def test_user_names_cannot_reach_the_api_keys_hash(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    key = client.post("/api/auth/api-keys", headers=tokens["inv"], json={"name": "vms"}).json()
    adm = tokens["adm"]
    assert client.get("/api/users/inv:apikeys", headers=adm).status_code == 404
    assert client.delete("/api/users/inv:apikeys", headers=adm).status_code == 404
    assert client.patch("/api/users/inv:apikeys", headers=adm, json={"role": "admin"}).status_code == 404
    assert not rclient.exists("user:inv:apikeys:apikeys") and b"inv:apikeys" not in rclient.smembers("users")
    assert [k["key_id"] for k in client.get("/api/api-keys", params={"username": "inv"}, headers=adm).json()] == \
        [key["key_id"]]  # still listed, so still revocable
    assert client.delete(f"/api/api-keys/{key['key_id']}", headers=adm).status_code == 204
    assert client.get("/api/auth/me", headers={"X-API-Key": key["key"]}).status_code == 401


def test_malformed_ids_still_need_a_login_first(client: TestClient) -> None:
    for path in ("/api/watchlists/x:entries", "/api/persons/ids", "/api/users/a:b", "/api/cases/c:items",
                 "/api/exports/e:f"):
        assert client.get(path).status_code == 401, path


def test_a_form_body_to_a_route_without_uploads_gets_the_json_limit(client: TestClient, tokens: dict,
                                                                    api_settings) -> None:
    big = b"x" * (api_settings.max_body_bytes + 1)
    form = {"Content-Type": "multipart/form-data; boundary=zz"}
    r = client.post("/api/auth/login", content=big, headers=form)  # anonymous: read only up to the JSON limit
    assert r.status_code == 413, r.text
    assert client.post("/api/cases", content=big, headers={**form, **tokens["inv"]}).status_code == 413
    # the upload routes keep their own limit: a form of the same size is read (and refused for what it holds)
    r = client.post("/api/faces/search", content=big, headers={**form, **tokens["inv"]})
    assert r.status_code != 413, r.text


def test_a_portrait_phone_photo_is_accepted(client: TestClient, tokens: dict, shared_dir: Path) -> None:
    """A JPEG stored sideways with EXIF orientation 6 (as phones save portrait photos) is turned upright by the
    decoder; it used to be refused as corrupt because its decoded size is the header's, swapped."""
    photo = shared_dir / "data" / "faces_lfw" / "images" / "Angela_Bassett" / "Angela_Bassett_0001.jpg"
    upright = Image.open(photo).convert("RGB").crop((0, 0, 250, 180))  # not square: the swap shows
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # sideways, as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to display
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes())
    r = client.post("/api/faces/search", headers=tokens["inv"], data={"reason": "case 12"},
                    files={"image": ("portrait.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200, r.text


def test_openapi_lists_the_codes_these_routes_send(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "413" in paths["/api/auth/login"]["post"]["responses"]
    for path in ("/api/exports/{job_id}/download", "/api/exports/{job_id}/manifest"):
        assert "409" in paths[path]["get"]["responses"], path
    assert "404" in paths["/api/watchlists/{watchlist_id}"]["get"]["responses"]


def test_ids_the_service_makes_pass_the_checks(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    """Every id the service creates (16 hex digits) and every valid user name still reaches its record."""
    from api.ids import STORE_ID
    from pipeline.store.watchlists import new_id

    assert all(STORE_ID.fullmatch(new_id()) for _ in range(50))
    ApiStore(rclient, scrypt_n=16).put_user("a.b-c_d@e", "operator", "pw-long-enough-1", None)
    r = client.get("/api/users/a.b-c_d@e", headers=tokens["adm"])
    assert r.status_code == 200 and r.json()["username"] == "a.b-c_d@e"
