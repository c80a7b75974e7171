"""The API refuses to start against a Redis that keeps nothing on disk, unless CCTV_REDIS_ALLOW_VOLATILE says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from pipeline.settings import get_settings
from pipeline.store.durability import VolatileRedisError
from tests.conftest import RedisServer

REPO = Path(__file__).resolve().parents[2]




def settings_for(url: str, tmp_path: Path) -> ApiSettings:
    return ApiSettings(redis_url=url, recordings_dir=tmp_path / "rec", config_path=REPO / "cameras.yaml", scrypt_n=16)


def test_api_refuses_a_volatile_redis_and_starts_with_the_override(volatile_redis: RedisServer, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCTV_REDIS_ALLOW_VOLATILE", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(VolatileRedisError, match="CCTV_REDIS_ALLOW_VOLATILE=1"):
            with TestClient(create_app(settings_for(volatile_redis.url, tmp_path))):
                pass
        monkeypatch.setenv("CCTV_REDIS_ALLOW_VOLATILE", "1")
        get_settings.cache_clear()
        with TestClient(create_app(settings_for(volatile_redis.url, tmp_path))) as client:
            assert client.get("/api/health").json()["redis"] is True
    finally:
        get_settings.cache_clear()


def test_api_starts_against_the_durable_test_redis(redis_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(redis_url, tmp_path))) as client:
        assert client.get("/").status_code == 200
