"""Password guessing at one account from many addresses (a botnet, the addresses of one IPv6 /64): the per-account
limit, its cap, the exemption of addresses where the user signed in, and IPv6 addresses counted per /64."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.limits import LOGIN_ACCOUNT_BACKOFF_MAX_S, account_free_failures, login_address
from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.timeout(180)

PER_USER, PER_IP = 3, 6
FREE = account_free_failures(PER_USER)  # 12 here
WAIT_S = 60.0  # generous: only reached if the app hangs


@pytest.fixture()
def app(redis_url: str, rclient: redis.Redis, tmp_path: Path) -> Iterator[FastAPI]:
    """An app (started) with the user "op"; the per-pair and per-address limits as in the other API tests."""
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", scrypt_n=16,
                           login_max_per_user=PER_USER, login_max_per_ip=PER_IP, admin_user="boss",
                           admin_password=PASSWORD)
    ApiStore(rclient, scrypt_n=16).put_user("op", "operator", PASSWORD)
    application = create_app(settings)
    with TestClient(application):
        yield application


def _at(app: FastAPI, address: str) -> TestClient:
    """A client of the started ``app`` whose requests come from ``address``."""
    return TestClient(app, client=(address, 1000))


def _login(client: TestClient, name: str = "op", password: str = PASSWORD):
    return client.post("/api/auth/login", json={"username": name, "password": password})


def test_guesses_from_many_addresses_are_slowed_per_account(app: FastAPI) -> None:
    """One wrong guess each from many addresses: past the account's free failures further guesses wait (429), from
    any new address, however many the attacker has. The user at an address where they signed in is not held up."""
    assert _login(_at(app, "10.9.9.9")).status_code == 200  # the user's desk
    codes = [_login(_at(app, f"198.51.100.{i}"), password=f"guess-{i}").status_code for i in range(FREE + 2)]
    assert codes == [401] * FREE + [429, 429]
    r = _login(_at(app, "203.0.113.7"))  # the right password from yet another address waits too (no oracle)
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= LOGIN_ACCOUNT_BACKOFF_MAX_S
    assert _login(_at(app, "10.9.9.9")).status_code == 200  # never at the user's known address


def test_the_account_wait_is_capped_at_a_few_minutes(app: FastAPI, rclient: redis.Redis) -> None:
    """However long the attack went on, the account's wait is at most LOGIN_ACCOUNT_BACKOFF_MAX_S (the per-pair cap,
    CCTV_LOGIN_BACKOFF_MAX_S, is 900 s here): an attacker cannot keep the user out for long."""
    rclient.hset("rl:login:acct:op", mapping={"failures": 60, "until": repr(time.time() - 1)})
    assert _login(_at(app, "198.51.100.1"), password="wrong").status_code == 401
    r = _login(_at(app, "198.51.100.2"), password="wrong")
    assert r.status_code == 429
    assert LOGIN_ACCOUNT_BACKOFF_MAX_S - 5 < int(r.headers["Retry-After"]) <= LOGIN_ACCOUNT_BACKOFF_MAX_S
    rclient.hset("rl:login:acct:op", "until", repr(time.time() - 1))  # the wait has passed: the user signs in
    assert _login(_at(app, "203.0.113.7")).status_code == 200


class _Gate:
    """Holds every password check until each parallel request has reached the check or been answered."""

    def __init__(self, total: int) -> None:
        self.total, self.entered, self.answered = total, 0, 0
        self.cond = threading.Condition()

    def enter(self) -> None:
        with self.cond:
            self.entered += 1
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: self.entered + self.answered >= self.total, WAIT_S)

    def answer(self) -> None:
        with self.cond:
            self.answered += 1
            self.cond.notify_all()


def test_parallel_guesses_from_many_addresses_cannot_slip_past_the_account_limit(
        app: FastAPI, rclient: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The account has used its free failures: a burst of guesses from as many addresses gets one checked at a
    time (the wait check and the turn are one atomic step), the rest 429 at once."""
    rclient.hset("rl:login:acct:op", mapping={"failures": FREE, "until": repr(time.time() - 1)})
    store = app.state.api_store
    real_check = store.check_password
    gate = _Gate(8)

    def held_check(username: str, password: str) -> bool:
        gate.enter()
        return real_check(username, password)

    monkeypatch.setattr(store, "check_password", held_check)
    clients = [_at(app, f"198.51.100.{i}") for i in range(8)]

    def guess(i: int) -> int:
        try:
            return _login(clients[i], password=f"guess-{i}").status_code
        finally:
            gate.answer()

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(guess, range(8)))
    assert gate.entered == 1 and sorted(codes) == [401] + [429] * 7, codes
    assert not rclient.keys("rl:login:*:pending")


def test_ipv6_addresses_are_counted_per_64(app: FastAPI) -> None:
    """Rotating through the addresses of one IPv6 /64 does not reset the per-address limit; another /64 is not
    held up."""
    codes = [_login(_at(app, f"2001:db8:1:2::{i:x}"), name=f"user{i}", password="wrong").status_code
             for i in range(1, PER_IP + 2)]
    assert codes == [401] * PER_IP + [429]
    assert _login(_at(app, "2001:db8:1:3::1"), name="someone", password="wrong").status_code == 401


@pytest.mark.parametrize(("address", "group"), [
    ("192.0.2.1", "192.0.2.1"), ("2001:db8:1:2:aa:bb:cc:dd", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.1", "192.0.2.1"), ("fe80::1%eth0", "fe80::/64"), ("testclient", "testclient"),
])
def test_login_address_groups(address: str, group: str) -> None:
    assert login_address(address) == group
