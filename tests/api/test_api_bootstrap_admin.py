"""The administrator from CCTV_ADMIN_USER / CCTV_ADMIN_PASSWORD (README: Settings, Security), unit level."""

from __future__ import annotations

import logging

import pytest
import redis

from api.main import bootstrap_admin
from api.settings import ApiSettings
from api.store import ApiStore


@pytest.mark.parametrize("weak", ["letmein1", "boss-password-1", "aaaaaaaaaaaaaaaa"])
def test_a_weak_admin_password_from_the_environment_is_refused(rclient: redis.Redis, weak: str,
                                                               caplog: pytest.LogCaptureFixture,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """CCTV_ADMIN_PASSWORD follows the rules of every password (12 characters, 5 different, not the user name):
    an ERROR names the variable (never its value) and the first-run admin with a generated password is made
    instead, so nobody is locked out. It used to become the admin's password as it was ("letmein1" included)."""
    store = ApiStore(rclient, 16)
    settings = ApiSettings(admin_user="boss", admin_password=weak, scrypt_n=16)
    with caplog.at_level(logging.WARNING, logger="api.main"):
        bootstrap_admin(store, settings)
    assert store.get_user("boss") is None
    assert "CCTV_ADMIN_PASSWORD" in caplog.text and "boss not created" in caplog.text and weak not in caplog.text
    assert store.get_user("admin")["must_change"] is True and "user name : admin" in capsys.readouterr().err


def test_an_admin_user_without_its_password_is_named(rclient: redis.Redis, caplog: pytest.LogCaptureFixture,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """CCTV_ADMIN_USER set, CCTV_ADMIN_PASSWORD not (a mistyped name): a WARNING says so; the first-run admin is
    made as before (it used to happen without a word about the variable that was ignored)."""
    store = ApiStore(rclient, 16)
    with caplog.at_level(logging.WARNING, logger="api.main"):
        bootstrap_admin(store, ApiSettings(admin_user="boss", admin_password=None, scrypt_n=16))
    assert "CCTV_ADMIN_USER is set but CCTV_ADMIN_PASSWORD is not" in caplog.text
    assert store.get_user("boss") is None and store.get_user("admin") is not None
    capsys.readouterr()


def test_a_good_admin_password_from_the_environment_still_works(rclient: redis.Redis) -> None:
    store = ApiStore(rclient, 16)
    bootstrap_admin(store, ApiSettings(admin_user="boss", admin_password="Chiang-Mai river 42", scrypt_n=16))
    assert store.get_user("boss")["role"] == "admin" and store.get_user("admin") is None
