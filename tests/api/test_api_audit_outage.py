"""Audit records of a Redis outage: the 503 refusals are audited (who or who claimed, route, time,
``store_unavailable``), kept in a 0600 spool on disk while Redis is down and appended to the audit trail in order,
once, with their original times when it is back -- even when the API dies in the middle of that replay."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.engine.spool import EventSpool
from tests.conftest import RedisServer, wait_for

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
CLAIMED_PASSWORD = "alices-secret-password"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


class Crash(Exception):
    """The API process dying between an append to the audit stream and the commit of the spool position."""


@pytest.fixture()
def outage_settings(own_redis: RedisServer, tmp_path: Path) -> ApiSettings:
    return ApiSettings(redis_url=own_redis.url, recordings_dir=tmp_path / "rec", config_path=REPO / "cameras.yaml",
                       scrypt_n=16, audit_spool_dir=tmp_path / "audit-spool", audit_spool_retry_s=0.2)


@pytest.fixture()
def admin_headers(own_redis: RedisServer) -> Iterator[dict[str, str]]:
    """An admin with a token, written to disk at once (the test kills Redis with SIGKILL)."""
    rc = redis.Redis.from_url(own_redis.url)
    rc.config_set("appendfsync", "always")
    ApiStore(rc, scrypt_n=16).put_user("adm", "admin", PASSWORD)
    token = ApiStore(rc, scrypt_n=16).new_token("adm", 3600)
    rc.close()
    yield {"Authorization": f"Bearer {token}"}


def outage_requests(tc: TestClient, headers: dict[str, str]) -> list[str]:
    """A plate history, a face search, a sign-in and an export asked for while Redis is down: all 503; returns
    their paths in order."""
    answers = [
        tc.get("/api/plates/1AB1234/history", params={"reason": "case 42"}, headers=headers),
        tc.post("/api/faces/search", data={"reason": "case 43"}, files={"photo": ("f.jpg", JPEG, "image/jpeg")},
                headers=headers),
        tc.post("/api/auth/login", json={"username": "alice", "password": CLAIMED_PASSWORD}),
        tc.post("/api/exports", json={"camera_id": "walkway-01", "start": 1, "end": 2, "reason": "case 44"},
                headers=headers),
    ]
    assert [a.status_code for a in answers] == [503, 503, 503, 503], [a.text for a in answers]
    return ["/api/plates/1AB1234/history", "/api/faces/search", "/api/auth/login", "/api/exports"]


def outage_records(tc: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = tc.get("/api/audit", params={"action": "store_unavailable"}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_refusals_during_an_outage_are_spooled_0600_and_replayed_in_order_once(
        own_redis: RedisServer, outage_settings: ApiSettings, admin_headers: dict[str, str], tmp_path: Path) -> None:
    with TestClient(create_app(outage_settings)) as tc:
        own_redis.kill()
        began = time.time()
        paths = outage_requests(tc, admin_headers)
        ended = time.time()

        spooled = sorted((tmp_path / "audit-spool").rglob("spool-*.jsonl"))
        assert spooled, "nothing was spooled on disk while Redis was down"
        for path in spooled:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent
            text = path.read_text()
            assert CLAIMED_PASSWORD not in text and admin_headers["Authorization"].split()[1] not in text

        time.sleep(0.5)  # the background replay tries (and fails) meanwhile: nothing may be lost or doubled
        own_redis.start()
        wait_for(lambda: len(outage_records(tc, admin_headers)) >= len(paths), 30, "the outage's audit records")
        time.sleep(0.6)  # a few more replay rounds: still once each
        records = outage_records(tc, admin_headers)

    assert [r["params"]["path"] for r in records] == paths
    assert all(r["status"] == 503 and r["ip"] for r in records)
    times = [r["at"] for r in records]
    assert times == sorted(times) and began <= times[0] and times[-1] <= ended  # the original times, not the replay's
    by_path = {r["params"]["path"]: r for r in records}
    assert by_path["/api/auth/login"]["user"] == "alice"  # the claimed user, never the password
    assert by_path["/api/auth/login"]["params"]["authenticated"] is False
    assert by_path["/api/plates/1AB1234/history"]["params"]["reason"] == "case 42"
    assert by_path["/api/exports"]["params"]["method"] == "POST"
    rc = redis.Redis.from_url(own_redis.url)
    assert CLAIMED_PASSWORD.encode() not in json.dumps([str(f) for _, f in rc.xrange("audit")]).encode()
    rc.close()


def test_an_api_restart_in_the_middle_of_the_replay_appends_nothing_twice(
        own_redis: RedisServer, outage_settings: ApiSettings, admin_headers: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_commit = EventSpool.commit
    state = {"commits": 0, "crashed": False}

    def crashing_commit(self: EventSpool, record: Any) -> None:
        """The second replayed record reaches the audit stream, then the process 'dies' before committing it."""
        if not state["crashed"]:
            state["commits"] += 1
            if state["commits"] < 2:
                real_commit(self, record)
                return
            state["crashed"] = True
        raise Crash("killed after the append, before the spool position was saved")

    with TestClient(create_app(outage_settings)) as tc:
        own_redis.kill()
        paths = outage_requests(tc, admin_headers)
        monkeypatch.setattr(EventSpool, "commit", crashing_commit)
        own_redis.start()
        wait_for(lambda: state["crashed"], 30, "the replay to reach its second record")
    monkeypatch.setattr(EventSpool, "commit", real_commit)

    rc = redis.Redis.from_url(own_redis.url)
    in_stream = [json.loads(f[b"params"])["path"] for _, f in rc.xrange("audit")
                 if f[b"action"] == b"store_unavailable"]
    assert in_stream == paths[:2]  # the crash left the second record appended but not marked as delivered
    with TestClient(create_app(outage_settings)) as tc:  # the restarted API replays what is left, once
        wait_for(lambda: len(outage_records(tc, admin_headers)) >= len(paths), 30, "the rest of the replay")
        time.sleep(0.6)
        records = outage_records(tc, admin_headers)
    assert [r["params"]["path"] for r in records] == paths
    rids = [f[b"rid"] for _, f in rc.xrange("audit") if f[b"action"] == b"store_unavailable"]
    assert len(rids) == len(set(rids)) == len(paths)
    rc.close()


class DownRedis:
    """A client of a Redis that is down."""

    def xadd(self, *_: Any, **__: Any) -> None:
        raise redis.ConnectionError("Connection refused")

    def eval(self, *_: Any, **__: Any) -> None:
        raise redis.ConnectionError("Connection refused")


def test_a_full_spool_drops_the_oldest_and_says_how_many_once_redis_is_back(own_redis: RedisServer,
                                                                              tmp_path: Path) -> None:
    from pipeline.store.audit import audit_record
    from pipeline.store.audit_spool import AuditSpool

    spool = AuditSpool(tmp_path / "spool", max_bytes=8192, retry_s=0.0)
    written = [audit_record("inv", "plate_history", {"n": n, "reason": "x" * 100}, ip="10.0.0.1") for n in range(200)]
    for record in written:
        spool.write(DownRedis(), record)
    assert 0 < spool.pending < len(written)
    kept = spool.pending
    rc = redis.Redis.from_url(own_redis.url)
    assert spool.replay(rc) == kept
    spool.close()
    entries = [{k.decode(): v.decode() for k, v in f.items()} for _, f in rc.xrange("audit")]
    rc.close()
    replayed = [json.loads(e["params"])["n"] for e in entries if e["action"] == "plate_history"]
    assert replayed == list(range(len(written) - kept, len(written)))  # the newest, in order
    assert all(e["spooled"] == "1" for e in entries if e["action"] == "plate_history")
    lost = [json.loads(e["params"]) for e in entries if e["action"] == "audit_records_lost"]
    assert [x["count"] for x in lost] == [len(written) - kept]
