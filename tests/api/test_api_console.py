"""`python -m api create-user` in a plain shell: it must reach the service's Redis, not the machine's 6379."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

import api.__main__ as console
from api.store import ApiStore
from pipeline.settings import get_settings
from tests.conftest import RedisServer

URL_VARIABLES = ("CCTV_REDIS_URL", "CCTV_API_REDIS_URL", "CCTV_REDIS_ADMIN_URL", "CCTV_REDIS_SENTINELS")


def test_create_user_in_a_plain_shell_reaches_the_projects_redis(own_redis: RedisServer, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """README's and the console's "Lost it? python -m api create-user admin" run without the credentials loaded:
    the user goes to the Redis of var/secrets/redis.env (here CCTV_REDIS_SECRETS_FILE), which the service runs on;
    it used to go to redis://127.0.0.1:6379/0, the machine's Redis, while the service kept the lost password."""
    secrets_file = tmp_path / "redis.env"
    secrets_file.write_text(f"# generated\nCCTV_REDIS_URL={own_redis.url}\nCCTV_REDIS_ADMIN_URL={own_redis.url}\n")
    for name in URL_VARIABLES:  # set then removed: monkeypatch then also removes what create-user loads
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("CCTV_REDIS_SECRETS_FILE", str(secrets_file))
    monkeypatch.setenv("CCTV_SCRYPT_N", "16")
    monkeypatch.setenv("PW", "console password 1")
    urls: list[str] = []

    def client(url: str, **kwargs: object) -> redis.Redis:
        urls.append(url)
        if url != own_redis.url:  # never touch another server (the machine's 6379)
            raise AssertionError(f"create-user went to {url}")
        return redis.Redis.from_url(url, **kwargs)

    monkeypatch.setattr(console, "redis_client", client)
    try:
        assert console.main(["create-user", "admin", "--role", "admin", "--password-env", "PW"]) == 0
    finally:
        get_settings.cache_clear()  # read from the loaded URLs: not for the next test
    assert urls == [own_redis.url]
    assert ApiStore(redis.Redis.from_url(own_redis.url)).get_user("admin")["role"] == "admin"
    assert str(secrets_file) in capsys.readouterr().err
