"""Fixtures of the API tests: an app on the session's real Redis, users of each role with their tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@pytest.fixture()
def api_settings(redis_url: str, tmp_path: Path) -> ApiSettings:
    return ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=REPO / "cameras.yaml",
                       scrypt_n=16, login_max_per_user=3, login_max_per_ip=6, ws_poll_s=0.2,
                       admin_user="root", admin_password="bootstrap-pass")


@pytest.fixture()
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture()
def client(api_settings: ApiSettings) -> Iterator[TestClient]:
    (api_settings.recordings_dir / "crops" / "bkk-night-01").mkdir(parents=True)
    with TestClient(create_app(api_settings)) as tc:
        yield tc


@pytest.fixture()
def tokens(client: TestClient, rclient: redis.Redis) -> dict[str, str]:
    """Bearer headers per role; 'limited' is an investigator limited to walkway-01."""
    store = ApiStore(rclient, scrypt_n=16)
    for name, role, cams in (("op", "operator", None), ("inv", "investigator", None), ("adm", "admin", None),
                             ("limited", "investigator", ["walkway-01"])):
        store.put_user(name, role, PASSWORD, cams)
    out = {}
    for name in ("op", "inv", "adm", "limited"):
        r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        out[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out
