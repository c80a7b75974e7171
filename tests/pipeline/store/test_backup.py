"""``python -m pipeline backup`` / ``restore`` between two real, durable redis-server processes: the restored store
answers the same plate searches, logins, tokens, watchlists, cases and audit; bad backups and non-empty targets are
refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from api.store import ApiStore, token_hash
from pipeline.events import PlateEvent
from pipeline.search.plates import PlateSearcher
from pipeline.store import EventStore, WatchlistStore
from pipeline.store.backup import MANIFEST, RDB_FILE, store_counts
from tests.conftest import RedisServer

REPO = Path(__file__).resolve().parents[3]
PLATES = ["1กข1234", "1กข1235", "2ขค999", "3กก4321", "9ฮฮ9999"]


def populate(client: redis.Redis, exports: Path) -> dict[str, Any]:
    """A small but complete store: events with indexes, users with a token and an API key, a watchlist, a case,
    audit records, export manifests (and a clip, which the backup must leave out)."""
    events = EventStore(client)
    now = time.time()
    for i, plate in enumerate(PLATES * 3):
        events.publish_plate_event(PlateEvent(camera_id=f"cam-{i % 2}", track_id=i, started_at=now - 100 + i,
                                              ended_at=now - 99 + i, frame_time=now - 99 + i, plate_text=plate,
                                              province="กรุงเทพมหานคร", confidence=0.8 + i / 100))
    store = ApiStore(client, scrypt_n=16)
    store.put_user("chief", "admin", "chief-password")
    store.put_user("op", "operator", "operator-password", ["cam-0"])
    token = store.new_token("op", 3600)
    key, _ = store.new_api_key("chief", "integrator")
    watchlists = WatchlistStore(client)
    wl = watchlists.create_watchlist("plate", "stolen cars")["id"]
    watchlists.put_entry(wl, {"plate": "1กข1234", "reason": "stolen", "fuzzy": False, "max_distance": 1.0,
                              "severity": "high"})
    client.hset("case:c1", mapping={"id": "c1", "name": "robbery", "created_by": "chief"})
    client.hset("case:c1:items", "plate:x", json.dumps({"kind": "plate", "ref": "x"}))
    client.zadd("cases", {"c1": now})
    for q in ("1กข", "2ขค999"):
        store.audit("chief", "plates.search", {"q": q}, results=3)
    (exports / "case-c1").mkdir(parents=True)
    (exports / "cam-0_clip.json").write_text(json.dumps({"sha256": "ab" * 32}))
    (exports / "case-c1" / "manifest.json").write_text(json.dumps({"case": "c1"}))
    (exports / "cam-0_clip.mp4").write_bytes(b"\0" * 4096)
    return {"token": token, "key": key, "watchlist": wl}


def answers(client: redis.Redis, made: dict[str, Any]) -> dict[str, Any]:
    """What the control room sees: searches, logins, sessions, watchlists, cases, audit."""
    searcher = PlateSearcher(client)
    store = ApiStore(client, scrypt_n=16)

    def hits(query: str, mode: str = "auto") -> list[tuple]:
        return [(h.plate, h.camera_id, h.stream_id, round(h.frame_time, 3)) for h in searcher.search(query, mode).hits]

    return {
        "exact": hits("1กข1234", "exact"), "partial": hits("กข"), "wildcard": hits("?กข12*"),
        "fuzzy": hits("1กข1284", "fuzzy"),
        "login_chief": store.check_password("chief", "chief-password"),
        "login_wrong": store.check_password("chief", "wrong-password"),
        "user_op": {k: v for k, v in (store.get_user("op") or {}).items() if k != "created_at"},
        "token": store.token_user(made["token"]), "api_key": store.api_key_user(made["key"]),
        "watchlists": WatchlistStore(client).list_watchlists(),
        "entries": [{k: v for k, v in e.items()} for e in WatchlistStore(client).list_entries(made["watchlist"])],
        "plate_entries": [e.plate for e in WatchlistStore(client).plate_entries()],
        "case": client.hgetall("case:c1"), "case_items": client.hgetall("case:c1:items"),
        "audit": [(r["user"], r["action"], r["params"]) for r in store.read_audit(None, 100, None, None)],
        "counts": store_counts(client),
    }


def cli(command: list[str], url: str, exports: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CCTV_REDIS_ADMIN_URL": url, "CCTV_REDIS_URL": url}
    return subprocess.run([sys.executable, "-m", "pipeline", *command, "--exports", str(exports)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(300)
def test_backup_and_restore_give_a_store_with_the_same_answers(own_redis: RedisServer, target_redis: RedisServer,
                                                              tmp_path: Path) -> None:
    source = redis.Redis.from_url(own_redis.url)
    exports = tmp_path / "exports"
    made = populate(source, exports)
    expected = answers(source, made)
    assert expected["exact"] and expected["fuzzy"] and expected["login_chief"] and expected["token"] == "op"

    folder = tmp_path / "backup"
    run = cli(["backup", str(folder)], own_redis.url, exports)
    assert run.returncode == 0, run.stderr
    assert "snapshot (BGSAVE) started" in run.stdout and "copied 2 export/case manifests" in run.stdout
    assert f"{expected['counts']['plate_events']} plate_events" in run.stdout
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["counts"] == expected["counts"]
    assert sorted(f["path"] for f in manifest["files"]) == sorted([RDB_FILE, "manifests/cam-0_clip.json",
                                                                 "manifests/case-c1/manifest.json"])  # no video
    for path in (folder / MANIFEST, folder / RDB_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert own_redis.password not in (folder / MANIFEST).read_text()

    restored_exports = tmp_path / "restored-exports"
    run = cli(["restore", str(folder)], target_redis.url, restored_exports)
    assert run.returncode == 0, run.stderr
    assert "SHA-256 ok" in run.stdout and "restore: put back 2 manifests" in run.stdout
    assert f"{expected['counts']['keys']}/{expected['counts']['keys']} keys" in run.stdout
    target = redis.Redis.from_url(target_redis.url)
    assert answers(target, made) == expected
    assert target.ttl(f"token:{token_hash(made['token'])}") > 3000  # sessions keep their remaining lifetime
    assert (restored_exports / "case-c1" / "manifest.json").read_text() == json.dumps({"case": "c1"})
    assert not (restored_exports / "cam-0_clip.mp4").exists()

    # the restored store survives a crash of its Redis like any other (it was written through AOF)
    target_redis.kill()
    target_redis.start()
    assert answers(redis.Redis.from_url(target_redis.url), made) == expected

    # a second restore into the now non-empty store is refused, unless --force
    run = cli(["restore", str(folder)], target_redis.url, restored_exports)
    assert run.returncode == 1 and "already holds" in run.stderr and "--force" in run.stderr
    run = cli(["restore", str(folder), "--force"], target_redis.url, restored_exports)
    assert run.returncode == 0, run.stderr
    assert answers(redis.Redis.from_url(target_redis.url), made) == expected


def test_restore_refuses_a_damaged_or_foreign_backup(own_redis: RedisServer, target_redis: RedisServer,
                                                     tmp_path: Path) -> None:
    source = redis.Redis.from_url(own_redis.url)
    exports = tmp_path / "exports"
    populate(source, exports)
    folder = tmp_path / "backup"
    assert cli(["backup", str(folder)], own_redis.url, exports).returncode == 0
    run = cli(["backup", str(folder)], own_redis.url, exports)
    assert run.returncode == 1 and "not empty" in run.stderr

    rdb = folder / RDB_FILE
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rdb.write_bytes(bytes(data))
    run = cli(["restore", str(folder)], target_redis.url, tmp_path / "out")
    assert run.returncode == 1 and "damaged" in run.stderr and "SHA-256" in run.stderr
    assert redis.Redis.from_url(target_redis.url).dbsize() == 0

    run = cli(["restore", str(tmp_path / "nothing-here")], target_redis.url, tmp_path / "out")
    assert run.returncode == 1 and "not a backup" in run.stderr
