"""Crafted, damaged and foreign backups against real redis-server processes: each is refused with one clear line
(never a traceback) before anything is written, and a restore reports the keys it really wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.models_manifest import sha256_file
from pipeline.store import backup as backup_module
from pipeline.store.backup import MANIFEST, RDB_FILE, BackupError, backup, restore
from tests.conftest import RedisServer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def made_backup(own_redis: RedisServer, tmp_path: Path) -> Path:
    """A genuine backup of a small store (a few keys, one with a TTL) and two export manifests."""
    source = redis.Redis.from_url(own_redis.url)
    for i in range(20):
        source.set(f"plate:{i}", f"value-{i}")
    source.set("session:x", "op", ex=3600)
    exports = tmp_path / "exports"
    (exports / "case-c1").mkdir(parents=True)
    (exports / "cam-0_clip.json").write_text(json.dumps({"sha256": "ab" * 32}))
    (exports / "case-c1" / "manifest.json").write_text(json.dumps({"case": "c1"}))
    folder = tmp_path / "backup"
    backup(source, folder, exports, progress=lambda _: None)
    return folder


def _edit_manifest(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        replaced = change(manifest)
        (folder / MANIFEST).write_text(json.dumps(manifest if replaced is None else replaced))
    return tamper


def _relist(manifest: dict[str, Any], folder: Path, name: str) -> None:
    """Add ``folder/name`` to the manifest with its true size and SHA-256 (a crafted but consistent backup)."""
    manifest["files"].append({"path": name, "bytes": (folder / name).stat().st_size,
                              "sha256": sha256_file(folder / name)})


def _symlinked_member(folder: Path) -> None:
    """The export manifest replaced by a link to a file outside the backup with the same bytes (SHA-256 ok)."""
    member = folder / "manifests" / "cam-0_clip.json"
    outside = folder.parent / "outside.json"
    outside.write_bytes(member.read_bytes())
    member.unlink()
    member.symlink_to(outside)


def _symlinked_folder(folder: Path) -> None:
    outside = folder.parent / "outside-dir"
    shutil.move(folder / "manifests", outside)
    (folder / "manifests").symlink_to(outside)


def _truncated_rdb(folder: Path) -> None:
    """redis.rdb cut in half and the manifest rewritten to match it (only the snapshot server can tell)."""
    rdb = folder / RDB_FILE
    rdb.write_bytes(rdb.read_bytes()[: rdb.stat().st_size // 2])

    def fix(manifest: dict[str, Any]) -> None:
        for entry in manifest["files"]:
            if entry["path"] == RDB_FILE:
                entry.update(bytes=rdb.stat().st_size, sha256=sha256_file(rdb))
    _edit_manifest(fix)(folder)


def _huge_member(folder: Path) -> None:
    big = folder / "manifests" / "big.json"
    with big.open("wb") as file:
        file.truncate(backup_module.MAX_EXPORT_MANIFEST_BYTES + 1)
    _edit_manifest(lambda m: _relist(m, folder, "manifests/big.json"))(folder)


def _huge_manifest(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["padding"] = "x" * (backup_module.MAX_MANIFEST_BYTES + 1)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _outside_path(path: str) -> Callable[[Path], None]:
    return _edit_manifest(lambda m: m["files"].append({"path": path, "bytes": 1, "sha256": "0" * 64}))


TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "traversal": (_outside_path("manifests/../../escape.json"), "leaves the backup folder"),
    "absolute": (_outside_path("/etc/passwd"), "leaves the backup folder"),
    "foreign member": (_outside_path("notes.txt"), "is neither redis.rdb nor a manifest"),
    "symlinked member": (_symlinked_member, "symbolic link"),
    "symlinked folder": (_symlinked_folder, "symbolic link"),
    "manifest is a list": (_edit_manifest(lambda m: [m]), "is not a backup manifest"),
    "entry without sha256": (_edit_manifest(lambda m: m["files"][0].pop("sha256") and None), "files[0] is malformed"),
    "files not a list": (_edit_manifest(lambda m: m.update(files={"redis.rdb": 1})), "malformed manifest"),
    "newer version": (_edit_manifest(lambda m: m.update(version=2)), "written by a newer version"),
    "boolean version": (_edit_manifest(lambda m: m.update(version=True)), "unknown backup format version"),
    "truncated rdb": (_truncated_rdb, "does not load"),
    "huge member": (_huge_member, "too big for a manifest"),
    "huge manifest": (_huge_manifest, "more than a backup manifest can be"),
}


def _state(client: redis.Redis, exports: Path) -> tuple[dict[bytes, bytes], dict[str, str]]:
    keys = {key: client.dump(key) for key in client.scan_iter()}
    files = {str(p.relative_to(exports)): p.read_text() for p in sorted(exports.rglob("*")) if p.is_file()}
    return keys, files


@pytest.mark.timeout(300)
def test_a_crafted_backup_is_refused_before_anything_is_written(made_backup: Path, target_redis: RedisServer,
                                                                tmp_path: Path) -> None:
    target = redis.Redis.from_url(target_redis.url)
    target.set("plate:3", "kept by the operator")  # a key the backup would replace under --force
    target.set("local-only", "x")
    exports = tmp_path / "target-exports"
    (exports / "case-c1").mkdir(parents=True)
    (exports / "cam-0_clip.json").write_text("operator's own")
    before = _state(target, exports)
    failures = {}
    for name, (tamper, expected) in TAMPERS.items():
        folder = tmp_path / f"crafted-{name.replace(' ', '-')}"
        shutil.copytree(made_backup, folder, symlinks=True)
        tamper(folder)
        try:
            restore(target, folder, exports, force=True, progress=lambda _: None)
            failures[name] = "accepted"
        except BackupError as exc:
            if expected not in str(exc):
                failures[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - what the CLI would show as a traceback
            failures[name] = f"{type(exc).__name__}: {exc}"
        assert _state(target, exports) == before, name
    assert not failures, failures


@pytest.mark.timeout(300)
def test_an_export_manifest_that_cannot_go_back_stops_the_restore_before_redis_is_written(
        made_backup: Path, target_redis: RedisServer, tmp_path: Path) -> None:
    exports = tmp_path / "target-exports"
    (exports / "cam-0_clip.json").mkdir(parents=True)  # a folder where a manifest goes back
    target = redis.Redis.from_url(target_redis.url)
    with pytest.raises(BackupError, match="is a link or a folder"):
        restore(target, made_backup, exports, progress=lambda _: None)
    assert target.dbsize() == 0  # not half restored: a retry into the empty store needs no --force


def test_cli_reports_a_malformed_manifest_in_one_line(made_backup: Path, target_redis: RedisServer,
                                                      tmp_path: Path) -> None:
    _edit_manifest(lambda m: [m])(made_backup)
    env = {**os.environ, "CCTV_REDIS_ADMIN_URL": target_redis.url, "CCTV_REDIS_URL": target_redis.url}
    run = subprocess.run([sys.executable, "-m", "pipeline", "restore", str(made_backup), "--exports",
                          str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "restore failed:" in run.stderr and "is not a backup manifest" in run.stderr


@pytest.mark.timeout(300)
def test_restore_counts_only_the_keys_it_wrote(made_backup: Path, target_redis: RedisServer,
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A key that expires between SCAN and DUMP (simulated: SCAN names a key the snapshot no longer holds) is
    not restored and must not be counted as restored."""
    real = backup_module._key_batches

    def with_a_vanished_key(client: redis.Redis) -> Iterator[list[bytes]]:
        for i, batch in enumerate(real(client)):
            yield [*batch, b"session:expired-meanwhile"] if i == 0 else batch

    monkeypatch.setattr(backup_module, "_key_batches", with_a_vanished_key)
    said: list[str] = []
    target = redis.Redis.from_url(target_redis.url)
    result = restore(target, made_backup, tmp_path / "out", progress=said.append)
    assert result.keys == target.dbsize() == 21
    assert any(line.startswith("restore: 21/21 keys") for line in said), said
