"""A restore killed outright (SIGKILL, against real redis-server processes) does not leave a half-restored store
for good: its durable journal and the marker key name it, ``restore --rollback`` (or the next ``restore DIR``)
puts the target's keys (values and TTLs) and the export manifests back exactly as they were, and ``backup``
refuses the half-restored store meanwhile. A restore failing in-process undoes the manifests with the keys."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from pipeline.models_manifest import sha256_file
from pipeline.store import backup as backup_module
from pipeline.store import keys
from pipeline.store.backup import RDB_FILE, BackupError, backup, restore
from tests.conftest import RedisServer
from tests.pipeline.store.test_backup_rollback import assert_as_before

REPO = Path(__file__).resolve().parents[3]
SOURCE_KEYS = 1600  # 4 batches of backup.BATCH (500)


@pytest.fixture()
def made_backup(own_redis: RedisServer, tmp_path: Path) -> Path:
    """A backup of 1600 keys (some with a TTL, some sharing a name with the target's) and three manifests."""
    source = redis.Redis.from_url(own_redis.url)
    write = source.pipeline(transaction=False)
    for i in range(SOURCE_KEYS):
        write.set(f"k:{i}", f"from-backup-{i}", ex=7200 if i % 7 == 0 else None)
    write.execute()
    exports = tmp_path / "source-exports"
    for name, body in (("cam-0_clip.json", "backup's clip"), ("case-c1/manifest.json", "case c1"),
                       ("case-c2/manifest.json", "case c2")):
        (exports / name).parent.mkdir(parents=True, exist_ok=True)
        (exports / name).write_text(json.dumps({"from": body}))
    folder = tmp_path / "backup"
    backup(source, folder, exports, progress=lambda _: None)
    return folder


def _operator_state(target: redis.Redis, exports: Path) -> None:
    """What the target holds before the restore: keys the backup replaces (one with a TTL, one of another type),
    keys it does not know, and an operator's own version of one manifest (mode 0640)."""
    target.set("k:1", "operator's own", ex=3600)
    target.rpush("k:2", "a", "list")
    target.hset("k:3", mapping={"field": "value"})
    target.set("local-only", "not in the backup")
    target.set("local-ttl", "x", px=900_000)
    exports.mkdir(parents=True)
    (exports / "cam-0_clip.json").write_text("operator's own clip manifest")
    os.chmod(exports / "cam-0_clip.json", 0o640)


def _keys(client: redis.Redis) -> dict[bytes, tuple[bytes, int]]:
    """Every key's DUMP payload and PTTL (ms; -1 without TTL)."""
    return {key: (client.dump(key), int(client.pttl(key))) for key in client.scan_iter(count=1000)}


def _files(exports: Path) -> dict[str, Any]:
    """Every file (bytes, mode) and folder under ``exports``."""
    return {str(p.relative_to(exports)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) if p.is_file() else "dir"
            for p in sorted(exports.rglob("*"))}


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "CCTV_REDIS_ADMIN_URL": url, "CCTV_REDIS_URL": url, "PYTHONUNBUFFERED": "1", **extra}


def _cli(args: list[str], url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=_env(url), capture_output=True,
                          text=True, timeout=300)


@contextmanager
def _killed_restore(args: list[str], url: str, pause: str, log: Path) -> Iterator[None]:
    """Run ``python -m pipeline restore ARGS`` until it pauses at ``pause`` (the test hook), let the ``with``
    block look at it waiting there, then SIGKILL it: no sleep, no race, whatever the machine's load."""
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "restore", *args], cwd=REPO,
                                env=_env(url, **{backup_module.PAUSE_ENV: pause}), stdout=out,
                                stderr=subprocess.PIPE, text=True)
    try:
        said = []
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line)
            if f"paused after {pause.replace(':', ' ')}" in line:
                break
        else:
            pytest.fail(f"the restore ended (rc {proc.wait()}) without pausing at {pause}: {''.join(said)[-2000:]}"
                        f"{log.read_text()[-2000:]}")
        yield
    finally:
        helpers = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
        # its throw-away snapshot server (the whole backup in memory) dies with it, never an orphan
        _, alive = psutil.wait_procs(helpers, timeout=30)
        assert not alive, [p.cmdline() for p in alive]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("pause", ["batch:2", "manifest:2"])
def test_a_killed_restore_is_rolled_back_exactly(made_backup: Path, target_redis: RedisServer, tmp_path: Path,
                                                 pause: str) -> None:
    target = redis.Redis.from_url(target_redis.url)
    exports, journals = tmp_path / "exports", tmp_path / "var" / "restore"
    _operator_state(target, exports)
    keys_before, files_before = _keys(target), _files(exports)
    args = [str(made_backup), "--force", "--exports", str(exports), "--journal-dir", str(journals)]

    with _killed_restore(args, target_redis.url, pause, tmp_path / "restore.log"):
        marker = json.loads(target.get(keys.RESTORE_MARKER))
        journal = Path(marker["journal"])
        assert journal.parent == journals and journal.is_file()
        assert stat.S_IMODE(journal.stat().st_mode) == 0o600 and stat.S_IMODE(journals.stat().st_mode) == 0o700
        assert marker["backup_id"] == sha256_file(made_backup / RDB_FILE) and marker["host"] == socket.gethostname()
        restored = sum(key.startswith(b"k:") for key in target.scan_iter(count=1000))
        assert restored >= 1000 if pause == "batch:2" else restored == SOURCE_KEYS  # half restored, for real
        if pause == "manifest:2":
            assert (exports / "case-c1" / "manifest.json").exists()  # created, with its folder
            assert "backup's clip" in (exports / "cam-0_clip.json").read_text()  # the operator's one replaced

    assert target.exists(keys.RESTORE_MARKER) and journal.exists()  # the kill left both
    run = _cli(["backup", str(tmp_path / "backup-of-a-half-restore")], target_redis.url)
    assert run.returncode == 1 and "restore --rollback" in run.stderr and marker["backup_id"] in run.stderr

    run = _cli(["restore", "--rollback", "--journal-dir", str(journals)], target_redis.url)
    assert run.returncode == 0, run.stderr
    assert "rolled back (" in run.stdout
    assert_as_before(keys_before, _keys(target))
    assert _files(exports) == files_before
    assert not target.exists(keys.RESTORE_MARKER) and list(journals.iterdir()) == []

    run = _cli(["restore", "--rollback", "--journal-dir", str(journals)], target_redis.url)
    assert run.returncode == 0 and "nothing to roll back" in run.stdout


@pytest.mark.timeout(300)
def test_the_next_restore_rolls_back_a_killed_one_first(made_backup: Path, own_redis: RedisServer,
                                                        target_redis: RedisServer, tmp_path: Path) -> None:
    """Killed half-way into an empty target: the next plain ``restore DIR`` (no --force needed: the target is
    empty again once rolled back) says so, rolls it back and restores the backup whole."""
    target = redis.Redis.from_url(target_redis.url)
    exports, journals = tmp_path / "exports", tmp_path / "journals"
    args = [str(made_backup), "--exports", str(exports), "--journal-dir", str(journals)]
    with _killed_restore(args, target_redis.url, "batch:3", tmp_path / "restore.log"):
        assert target.exists(keys.RESTORE_MARKER) and target.dbsize() > 1000
    assert target.exists(keys.RESTORE_MARKER)

    run = _cli(["restore", *args], target_redis.url)
    assert run.returncode == 0, run.stderr
    assert "rolling back the unfinished restore" in run.stdout and "rolled back (" in run.stdout
    assert f"{SOURCE_KEYS}/{SOURCE_KEYS} keys" in run.stdout
    source = _keys(redis.Redis.from_url(own_redis.url))
    assert {k: v[0] for k, v in _keys(target).items()} == {k: v[0] for k, v in source.items()}
    assert not target.exists(keys.RESTORE_MARKER) and list(journals.iterdir()) == []
    assert sorted(_files(exports)) == ["cam-0_clip.json", "case-c1", "case-c1/manifest.json", "case-c2",
                                       "case-c2/manifest.json"]


def _failing_put_back(real: Any) -> Any:
    """``_put_back`` that writes the first manifest, then fails like a full disk."""
    calls = []

    def put_back(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)
    return put_back


@pytest.mark.timeout(300)
def test_a_restore_failing_on_a_manifest_undoes_the_keys_and_the_manifests(
        made_backup: Path, target_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = redis.Redis.from_url(target_redis.url)
    exports, journals = tmp_path / "exports", tmp_path / "journals"
    _operator_state(target, exports)
    keys_before, files_before = _keys(target), _files(exports)
    monkeypatch.setattr(backup_module, "_put_back", _failing_put_back(backup_module._put_back))
    with pytest.raises(OSError, match="No space left"):
        restore(target, made_backup, exports, force=True, progress=lambda _: None, journal_dir=journals)
    assert_as_before(keys_before, _keys(target))
    assert _files(exports) == files_before
    assert not target.exists(keys.RESTORE_MARKER) and list(journals.iterdir()) == []


@pytest.mark.timeout(300)
def test_an_undo_that_fails_keeps_the_journal_for_a_later_rollback(
        made_backup: Path, target_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Redis connection is lost while the failed restore undoes itself: the marker and journal stay, the
    error names ``restore --rollback``, and the rollback run later puts everything back."""
    target = redis.Redis.from_url(target_redis.url)
    exports, journals = tmp_path / "exports", tmp_path / "journals"
    _operator_state(target, exports)
    keys_before, files_before = _keys(target), _files(exports)
    monkeypatch.setattr(backup_module, "_put_back", _failing_put_back(backup_module._put_back))
    real_put_back_replaced = backup_module._put_back_replaced

    def connection_lost(*_: Any) -> int:
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(backup_module, "_put_back_replaced", connection_lost)
    with pytest.raises(BackupError, match="restore --rollback"):
        restore(target, made_backup, exports, force=True, progress=lambda _: None, journal_dir=journals)
    assert target.exists(keys.RESTORE_MARKER) and len(list(journals.iterdir())) == 1

    monkeypatch.setattr(backup_module, "_put_back_replaced", real_put_back_replaced)
    said: list[str] = []
    assert backup_module.rollback(target, journals, progress=said.append) == 1
    assert_as_before(keys_before, _keys(target))
    assert _files(exports) == files_before
    assert not target.exists(keys.RESTORE_MARKER) and list(journals.iterdir()) == []


@pytest.mark.timeout(300)
def test_a_marker_whose_journal_is_gone_is_refused_with_what_to_do(made_backup: Path, target_redis: RedisServer,
                                                                   tmp_path: Path) -> None:
    target = redis.Redis.from_url(target_redis.url)
    journals = tmp_path / "journals"
    journals.mkdir(mode=0o700)
    target.set(keys.RESTORE_MARKER, json.dumps({"journal": str(journals / "restore-x.journal"), "backup": "b",
                                                "backup_id": "ab12", "host": socket.gethostname(), "pid": None}))
    with pytest.raises(BackupError, match="is gone"):
        restore(target, made_backup, tmp_path / "exports", force=True, progress=lambda _: None,
                journal_dir=journals)
    assert target.dbsize() == 1  # nothing written
    other_host = {"journal": "/var/restore/restore-x.journal", "backup_id": "ab12", "host": "elsewhere"}
    target.set(keys.RESTORE_MARKER, json.dumps(other_host))
    with pytest.raises(BackupError, match="restore --rollback` on elsewhere"):
        backup_module.rollback(target, journals, progress=lambda _: None)
