"""A wall tile whose camera the viewer may not see asks again every 30 s: the audit trail gets one ``live_refused``
record per user, camera and reason per window (``api.routes.live.REFUSAL_WINDOW_S``, 10 min), and the next record after
the window says how many refusals it stood for (``repeats``), instead of two records a minute per tile.

Real Redis, real API (TestClient); the camera URLs answer nothing (no video is needed to be refused)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.live import RefusalThrottle
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.live_ws import until_closed

PASSWORD = "correct horse battery"
CAMERAS = ("cameras:\n  - {id: dead, name: Dead, url: 'rtsp://127.0.0.1:9/none'}\n"
           "  - {id: other, name: Other, url: 'rtsp://127.0.0.1:9/other'}\n")
pytestmark = pytest.mark.timeout(90)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def limited(redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict, redis.Redis, Clock]]:
    config = tmp_path / "cameras.yaml"
    config.write_text(CAMERAS, encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_auth_timeout_s=1.0, live_linger_s=0.5, live_preload_default_wall=False,
                           live_preload="none")
    rclient = redis.Redis.from_url(redis_url)
    store = ApiStore(rclient, scrypt_n=16)
    store.put_user("op", "operator", PASSWORD, ["other"])
    store.put_user("op2", "operator", PASSWORD, ["other"])
    clock = Clock()
    with TestClient(create_app(settings)) as client:
        client.app.state.live_refusals = RefusalThrottle(window_s=600.0, clock=clock)
        tokens = {}
        for name in ("op", "op2"):
            r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[name] = r.json()["access_token"]
        yield client, tokens, rclient, clock
    rclient.close()


def ask(client: TestClient, token: str, camera: str) -> int | None:
    """Open the camera's live WebSocket as ``token``'s user; the close code."""
    with client.websocket_connect(f"/api/live/{camera}/ws") as ws:
        ws.send_text(json.dumps({"token": token}))
        return until_closed(ws)[1]


def refusals(rclient: redis.Redis) -> list[dict]:
    out = []
    for _, fields in rclient.xrange("audit"):
        if fields.get(b"action") == b"live_refused":
            out.append({"user": fields[b"user"].decode(), **json.loads(fields[b"params"])})
    return out


def test_a_tile_retrying_a_refused_camera_writes_one_record_per_window_with_its_repeats(limited) -> None:
    client, tokens, rclient, clock = limited
    for _ in range(5):  # a tile retrying every 30 s for 2.5 minutes
        assert ask(client, tokens["op"], "dead") == 4404
        clock.now += 30
    records = refusals(rclient)
    assert records == [{"user": "op", "camera_id": "dead", "reason": "not found or not permitted"}], records
    # another user, and another camera of the same user, are refusals of their own
    assert ask(client, tokens["op2"], "dead") == 4404
    assert ask(client, tokens["op"], "nope") == 4404
    assert [(r["user"], r["camera_id"]) for r in refusals(rclient)][1:] == [("op2", "dead"), ("op", "nope")]
    # once the window is over, the next refusal is recorded again, with the four it stood for
    clock.now += 600
    assert ask(client, tokens["op"], "dead") == 4404
    last = refusals(rclient)[-1]
    assert last == {"user": "op", "camera_id": "dead", "reason": "not found or not permitted", "repeats": 4}, last
    # and a refusal after a quiet window carries no repeats
    clock.now += 601
    assert ask(client, tokens["op"], "dead") == 4404
    assert "repeats" not in refusals(rclient)[-1]
    assert len(refusals(rclient)) == 5


def test_the_throttle_forgets_nothing_it_still_has_to_record() -> None:
    clock = Clock()
    throttle = RefusalThrottle(window_s=10.0, clock=clock)
    assert throttle.note("u", "c", "r") == 0
    assert throttle.note("u", "c", "r") is None
    clock.now += 10
    assert throttle.note("u", "c", "r") == 1
    assert throttle.note("u", "c2", "r") == 0
