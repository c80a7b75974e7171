"""Backup and restore against real redis-server processes, where they went wrong: a restore that fails in a later
batch leaves the target exactly as it was (replaced keys back with their TTL, created keys gone); a backup never
follows a symbolic link out of the exports folder; restored manifests get the service's mode whatever the umask."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.store import backup as backup_module
from pipeline.store.backup import MANIFEST, BackupError, backup, restore
from tests.conftest import RedisServer

DENIED = "zzz:denied"  # sorted last: written in the last batch, where the target refuses it
SERVICE_MANIFEST_MODE = 0o640  # pipeline.recording.export writes export manifests with this mode (private)


def _sorted_small_batches(client: redis.Redis) -> Iterator[list[bytes]]:
    """The snapshot's keys in name order, three per batch: the refused key comes in a later batch."""
    names = sorted(client.scan_iter())
    for start in range(0, len(names), 3):
        yield names[start:start + 3]


def _source_backup(own_redis: RedisServer, tmp_path: Path) -> Path:
    source = redis.Redis.from_url(own_redis.url)
    for i in range(8):
        source.set(f"a:{i}", f"from-backup-{i}")
    source.set("ttl:session", "from-backup", ex=7200)
    source.rpush("a:list", "x", "y")
    source.set(DENIED, "cannot be written")
    folder = tmp_path / "backup"
    backup(source, folder, tmp_path / "no-exports", progress=lambda _: None)
    return folder


def _limited_user(target: redis.Redis, target_redis: RedisServer) -> redis.Redis:
    """A client of a user who may read every key but write none named ``zzz:*``: RESTORE of ``DENIED`` fails."""
    target.acl_setuser("restorer", enabled=True, passwords=["+restorer-pw"], commands=["+@all"],
                       keys=["~a:*", "~ttl:*", "~local*", "%R~zzz:*"])
    return redis.Redis.from_url(f"redis://restorer:restorer-pw@127.0.0.1:{target_redis.port}/0")


def _snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes, int]]:
    """Every key's DUMP payload and PTTL (ms; -1 without TTL)."""
    return {key: (client.dump(key), int(client.pttl(key))) for key in client.scan_iter()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("force", [True, False], ids=["forced", "into-empty"])
def test_a_restore_failing_in_a_later_batch_leaves_the_target_as_it_was(
        own_redis: RedisServer, target_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        force: bool) -> None:
    folder = _source_backup(own_redis, tmp_path)
    admin = redis.Redis.from_url(target_redis.url)
    if force:
        admin.set("a:1", "operator's own", ex=3600)  # replaced by the backup, with a TTL to keep
        admin.rpush("a:2", "a", "list", "where", "the", "backup", "has", "a", "string")
        admin.hset("a:3", mapping={"field": "value"})
        admin.set("local-only", "not in the backup")
    before = _snapshot(admin)
    monkeypatch.setattr(backup_module, "_key_batches", _sorted_small_batches)
    said: list[str] = []
    with pytest.raises(BackupError, match="RESTORE refused"):
        restore(_limited_user(admin, target_redis), folder, tmp_path / "exports", force=force, progress=said.append)
    assert any(line.startswith("restore: 6/") for line in said), said  # earlier batches were written
    assert_as_before(before, _snapshot(admin))


@pytest.mark.timeout(300)
def test_a_key_scan_names_twice_is_restored_once(own_redis: RedisServer, target_redis: RedisServer,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCAN may return a key twice: without --force the second RESTORE of it must not fail (BUSYKEY)."""
    folder = _source_backup(own_redis, tmp_path)

    def twice(client: redis.Redis) -> Iterator[list[bytes]]:
        batches = list(_sorted_small_batches(client))
        yield from batches
        yield [batches[0][0]]

    monkeypatch.setattr(backup_module, "_key_batches", twice)
    target = redis.Redis.from_url(target_redis.url)
    result = restore(target, folder, tmp_path / "exports", progress=lambda _: None)
    assert result.keys == target.dbsize() == 11


@pytest.mark.timeout(300)
def test_a_backup_does_not_follow_symbolic_links(own_redis: RedisServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"secret": "outside the exports"}')
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "cam-0_clip.json").write_text('{"sha256": "ab"}')
    (exports / "passwd.json").symlink_to("/etc/passwd")
    (exports / "secret.json").symlink_to(outside / "secret.json")
    (exports / "linked-folder").symlink_to(outside, target_is_directory=True)
    folder = tmp_path / "backup"
    said: list[str] = []
    result = backup(redis.Redis.from_url(own_redis.url), folder, exports, progress=said.append)
    listed = [f["path"] for f in json.loads((folder / MANIFEST).read_text())["files"]]
    assert listed == ["redis.rdb", "manifests/cam-0_clip.json"] and result.manifests == 1
    stored = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    assert b"root:" not in stored and b"outside the exports" not in stored
    assert not any(p.is_symlink() for p in folder.rglob("*"))
    assert sum("symbolic link" in line for line in said) == 3, said


@pytest.mark.timeout(300)
@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_restored_manifests_get_the_service_mode_whatever_the_umask(
        own_redis: RedisServer, target_redis: RedisServer, tmp_path: Path, umask: int) -> None:
    exports = tmp_path / "exports"
    (exports / "case-c1").mkdir(parents=True)
    (exports / "cam-0_clip.json").write_text('{"sha256": "ab"}')
    (exports / "case-c1" / "manifest.json").write_text('{"case": "c1"}')
    folder = tmp_path / "backup"
    backup(redis.Redis.from_url(own_redis.url), folder, exports, progress=lambda _: None)
    restored = tmp_path / "restored"
    old = os.umask(umask)
    try:
        result = restore(redis.Redis.from_url(target_redis.url), folder, restored, progress=lambda _: None)
    finally:
        os.umask(old)
    assert result.manifests == 2
    for name in ("cam-0_clip.json", "case-c1/manifest.json"):
        assert stat.S_IMODE((restored / name).stat().st_mode) == SERVICE_MANIFEST_MODE, name


def assert_as_before(before: dict[bytes, tuple[bytes, int]], after: dict[bytes, tuple[bytes, int]]) -> None:
    """The same keys with the same values, and each TTL the remaining one (not a fresh one, nor none)."""
    assert set(after) == set(before)
    for key, (payload, ttl) in before.items():
        assert after[key][0] == payload, key
        if ttl < 0:
            assert after[key][1] == ttl, key
        else:
            assert ttl - 60_000 < after[key][1] <= ttl, key
