"""An attacker's tries at the sign-in: parallel password guesses against the login backoff."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(180)

GUESSES = 12
WAIT_S = 60.0  # generous: only reached if the app hangs


class _Gate:
    """Holds every password check until each parallel request has either reached the check or been answered, so
    that all guesses are in flight together (what an attacker's burst does while scrypt runs)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.entered = 0
        self.answered = 0
        self.cond = threading.Condition()

    def _all_in(self) -> bool:
        return self.entered + self.answered >= self.total

    def enter(self) -> None:
        with self.cond:
            self.entered += 1
            self.cond.notify_all()
            assert self.cond.wait_for(self._all_in, WAIT_S), "the parallel logins never all arrived"

    def answer(self) -> None:
        with self.cond:
            self.answered += 1
            self.cond.notify_all()


def test_parallel_guesses_cannot_slip_past_the_login_backoff(client: TestClient, tokens: dict,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of wrong guesses for one user from one address: only the free failures are checked (3 here); the
    others are refused with 429 at once instead of each being a free guess while the first ones hash."""
    store = client.app.state.api_store
    real_check = store.check_password
    gate = _Gate(GUESSES)

    def held_check(username: str, password: str) -> bool:
        gate.enter()
        return real_check(username, password)

    monkeypatch.setattr(store, "check_password", held_check)

    def guess(i: int) -> int:
        try:
            r = client.post("/api/auth/login", json={"username": "op", "password": f"guess-{i}"})
            return r.status_code
        finally:
            gate.answer()

    with ThreadPoolExecutor(GUESSES) as pool:
        codes = list(pool.map(guess, range(GUESSES)))
    assert gate.entered <= 3, f"{gate.entered} guesses were checked in parallel; codes {codes}"
    assert codes.count(401) == gate.entered and codes.count(429) == GUESSES - gate.entered
    monkeypatch.setattr(store, "check_password", real_check)
    # the right password is still held up by the backoff afterwards, and nothing is left pending
    r = client.post("/api/auth/login", json={"username": "op", "password": "correct horse battery"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert not [k for k in store.client.keys("rl:login:*:pending")]


def test_stolen_token_is_no_password_oracle(client: TestClient, tokens: dict) -> None:
    """Wrong current passwords at POST /api/auth/password share the login backoff (3 free here): a stolen token
    cannot guess the user's password at hashing speed."""
    def change(current: str):
        return client.post("/api/auth/password", headers=tokens["inv"],
                           json={"current_password": current, "new_password": "a brand new password"})

    codes = [change(f"guess-{i}").status_code for i in range(5)]
    assert codes[:3] == [403, 403, 403] and codes[3:] == [429, 429], codes
    r = change("correct horse battery")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # the token still works otherwise (no lockout of the session), and the attempts are audited
    assert client.get("/api/auth/me", headers=tokens["inv"]).status_code == 200
    audit = client.get("/api/audit?user=inv", headers=tokens["adm"]).json()
    assert {"password_change_refused", "login_refused"} <= {a["action"] for a in audit}


@pytest.mark.parametrize("call", [("post", "/api/users", {"username": "weak", "role": "operator"}),
                                  ("patch", "/api/users/op", {})])
def test_admin_set_passwords_meet_the_same_minimum_as_own_passwords(client: TestClient, tokens: dict,
                                                                    call: tuple) -> None:
    """An admin cannot give anyone an 8-character password that the user could not set themselves (12)."""
    method, path, body = call
    weak = client.request(method, path, headers=tokens["adm"], json={**body, "password": "abcdefgh1"})
    assert weak.status_code == 422 and weak.json()["detail"].startswith("password")
    ok = client.request(method, path, headers=tokens["adm"], json={**body, "password": "abcdefgh1-long"})
    assert ok.status_code in (200, 201), ok.text
