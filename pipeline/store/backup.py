"""Backup and restore of everything the service keeps in Redis, plus the export manifests (never the video).

``python -m pipeline backup DIR``
    1. ``BGSAVE`` on the live server and wait for it: a point-in-time, consistent RDB snapshot of every key (plate
       and face events with their indexes, alerts, users, API keys, watchlists, persons, cases, export jobs, the
       audit stream);
    2. copy the snapshot file from the server's data folder (``CONFIG GET dir``: the backup runs on the Redis
       machine with the admin user, ``CCTV_REDIS_ADMIN_URL``) into ``DIR/redis.rdb``;
    3. load the copy into a private, throw-away ``redis-server`` (unix socket only) to prove it reads and to count
       what it holds;
    4. copy the export and case manifests (``*.json`` under the exports folder) into ``DIR/manifests/``;
    5. write ``DIR/manifest.json`` with the SHA-256 and size of every file and the counts (mode 0600 throughout: the
       backup holds password hashes and session tokens).

``python -m pipeline restore DIR``
    validates ``manifest.json`` and every file's SHA-256, refuses a target Redis that holds any key unless
    ``--force`` (then keys of the same name are replaced, other keys are kept), loads ``redis.rdb`` into a private
    ``redis-server`` and copies every key of the backed-up database into the target with ``DUMP``/``RESTORE`` (the
    remaining TTL kept; keys that expired meanwhile, e.g. old sessions, stay gone), then puts back the manifests
    that are missing (an existing different file is kept and reported unless ``--force``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pipeline.models_manifest import sha256_file
from pipeline.store import keys
from pipeline.store.redis_setup import write_private

logger = logging.getLogger(__name__)

FORMAT = "thai-cctv-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RDB_FILE = "redis.rdb"
MANIFESTS_DIR = "manifests"
BATCH = 500
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""Largest ``manifest.json`` read (a real one lists one line per export manifest: a few hundred KiB)."""
MAX_EXPORT_MANIFEST_BYTES = 16 * 1024 * 1024
"""Largest export or case manifest put back (they are small JSON files; a bigger one is not ours)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[str], None]


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    """What a backup or restore did."""

    folder: Path
    keys: int
    counts: dict[str, int]
    manifests: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def store_counts(client: redis.Redis) -> dict[str, int]:
    """What a store holds, by kind (the figures a backup and its restore are compared on)."""
    def xlen(name: str) -> int:
        return int(client.xlen(name)) if client.exists(name) else 0

    return {
        "keys": int(client.dbsize()),
        "plate_events": xlen(keys.PLATE_STREAM),
        "distinct_plates": int(client.zcard(keys.PLATE_LAST_SEEN)),
        "face_events": xlen(keys.FACE_STREAM),
        "alerts": xlen(keys.ALERT_STREAM),
        "users": int(client.scard("users")),
        "watchlists": int(client.scard(keys.WATCHLIST_IDS)),
        "persons": int(client.scard(keys.PERSON_IDS)),
        "cases": int(client.zcard("cases")),
        "exports": int(client.zcard("exports")),
        "audit": xlen("audit"),
    }


# -- the throw-away server that reads a snapshot ----------------------------------------------------------------
@contextmanager
def snapshot_server(rdb: Path, db: int = 0) -> Iterator[redis.Redis]:
    """A private ``redis-server`` on a unix socket (no TCP port) that has loaded ``rdb``, as a client of its
    database ``db``; stopped on exit."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise BackupError("redis-server is not installed here; it is needed to read the snapshot (apt install "
                          "redis-server)")
    with tempfile.TemporaryDirectory(prefix="cctv-restore-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        shutil.copyfile(rdb, work / "dump.rdb")
        sock = work / "redis.sock"
        conf = work / "redis.conf"
        write_private(conf, "\n".join([
            "port 0", f'unixsocket "{sock}"', "unixsocketperm 700", f'dir "{work}"', 'dbfilename "dump.rdb"',
            "appendonly no", 'save ""', f'logfile "{work / "redis.log"}"', "",
        ]))
        proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(unix_socket_path=str(sock), db=db, socket_timeout=60)
        try:
            deadline = time.monotonic() + 600
            while True:
                if proc.poll() is not None:
                    log = (work / "redis.log").read_text(errors="replace")[-2000:]
                    raise BackupError(f"the snapshot {rdb} does not load (redis-server exited {proc.returncode}): "
                                      f"{log.strip()}")
                try:
                    client.ping()
                    break
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        raise BackupError(f"the snapshot {rdb} did not load within 10 minutes") from None
                    time.sleep(0.05)
            yield client
        finally:
            client.close()
            proc.kill()
            proc.wait(timeout=30)


# -- backup -----------------------------------------------------------------------------------------------------
def _bgsave(client: redis.Redis, progress: Progress, timeout_s: float = 3600) -> None:
    """Run a fresh BGSAVE and wait until it has finished successfully."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.bgsave()  # the fork happens before the reply: from here rdb_bgsave_in_progress is 1 until done
            break
        except redis.ResponseError as exc:  # another save or an AOF rewrite is running: wait for it, then ours
            busy = "in progress" in str(exc).lower() or "another child" in str(exc).lower()
            if isinstance(exc, redis.exceptions.NoPermissionError):
                raise BackupError(f"BGSAVE refused ({exc}): run the backup with the admin URL "
                                  "(CCTV_REDIS_ADMIN_URL from var/secrets/redis.env)") from None
            if not busy or time.monotonic() > deadline:
                raise BackupError(f"BGSAVE refused: {exc}") from None
            time.sleep(0.2)
    progress("backup: snapshot (BGSAVE) started")
    said = time.monotonic()
    while True:
        info = client.info("persistence")
        if not int(info.get("rdb_bgsave_in_progress", 0)):
            if _text(info.get("rdb_last_bgsave_status", "ok")) != "ok":
                raise BackupError("Redis could not write its snapshot (rdb_last_bgsave_status is "
                                  f"{info.get('rdb_last_bgsave_status')}): see the Redis log, disk space?")
            return
        if time.monotonic() > deadline:
            raise BackupError(f"BGSAVE did not finish within {timeout_s:.0f}s")
        if time.monotonic() - said > 5:
            progress("backup: snapshot still being written ...")
            said = time.monotonic()
        time.sleep(0.1)


def _manifest_files(exports_root: Path) -> list[Path]:
    if not exports_root.is_dir():
        return []
    return sorted(p for p in exports_root.rglob("*.json") if p.is_file())


def backup(client: redis.Redis, folder: Path, exports_root: Path, progress: Progress = print) -> BackupResult:
    """Write a backup of the Redis store behind ``client`` (admin rights) and the manifests into ``folder``."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty; give a new folder for the backup")
    try:
        config = {_text(k): _text(v) for k, v in client.config_get("dir").items()}
        config.update({_text(k): _text(v) for k, v in client.config_get("dbfilename").items()})
    except redis.ResponseError as exc:
        raise BackupError(f"the Redis user may not read CONFIG ({exc}): run the backup with the admin URL "
                          "(CCTV_REDIS_ADMIN_URL from var/secrets/redis.env)") from None
    db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    source = Path(config["dir"]) / config["dbfilename"]
    _bgsave(client, progress)
    if not os.access(source, os.R_OK):
        raise BackupError(f"cannot read the snapshot {source}: run the backup on the Redis machine as a user who "
                          "may read its data folder")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    target = folder / RDB_FILE
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    progress(f"backup: copied the snapshot ({target.stat().st_size} bytes)")
    with snapshot_server(target, db) as snap:
        counts = store_counts(snap)
    progress("backup: the snapshot loads; it holds " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    files = [{"path": RDB_FILE, "bytes": target.stat().st_size, "sha256": sha256_file(target)}]
    copied = 0
    for path in _manifest_files(exports_root):
        rel = Path(MANIFESTS_DIR) / path.relative_to(exports_root)
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        os.chmod(dest, 0o600)
        files.append({"path": str(rel), "bytes": dest.stat().st_size, "sha256": sha256_file(dest)})
        copied += 1
    progress(f"backup: copied {copied} export/case manifests")
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "created_at": time.time(), "db": db,
        "redis_version": _text(client.info("server").get("redis_version", "?")), "counts": counts, "files": files,
    }
    write_private(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    progress(f"backup: done, {folder}")
    return BackupResult(folder, counts["keys"], counts, copied)


# -- restore ----------------------------------------------------------------------------------------------------
def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _load_manifest_json(path: Path, folder: Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` (a regular file of at most :data:`MAX_MANIFEST_BYTES`, a JSON object)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise BackupError(f"{path} not found: {folder} is not a backup written by `python -m pipeline backup`") \
            from None
    if not stat.S_ISREG(info.st_mode):
        raise BackupError(f"{path} is not a regular file (a link or a folder): refused")
    if info.st_size > MAX_MANIFEST_BYTES:
        raise BackupError(f"{path} is {info.st_size} bytes, more than a backup manifest can be: refused")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not valid JSON ({exc}): the backup is damaged") from None
    if not isinstance(manifest, dict):
        raise BackupError(f"{path} is not a backup manifest (a JSON object is expected)")
    return manifest


def _check_format(manifest: dict[str, Any], path: Path) -> None:
    """BackupError for a foreign format, a newer version or malformed top-level fields."""
    version = manifest.get("version")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.get('format')!r} (expected {FORMAT!r})")
    if _is_count(version) and version > FORMAT_VERSION:
        raise BackupError(f"{path}: the backup was written by a newer version of the software (backup format "
                          f"version {version}; this one reads version {FORMAT_VERSION}): restore it with that "
                          "version or newer")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BackupError(f"{path}: unknown backup format version {version!r} (expected {FORMAT_VERSION})")
    if not _is_count(manifest.get("db", 0)) or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{path}: malformed manifest ('db' must be a database number, 'files' a list)")


def _member_path(entry: Any, index: int, path: Path) -> str:
    """The checked relative path of one ``files`` entry: ``redis.rdb`` or ``manifests/...json``, nothing that
    leaves the folder; BackupError for a malformed entry."""
    if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and _is_count(entry.get("bytes"))
            and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])):
        raise BackupError(f"{path}: files[{index}] is malformed (path, bytes and sha256 expected)")
    name = entry["path"]
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise BackupError(f"{path}: file path {name!r} leaves the backup folder")
    if name != RDB_FILE and not (parts[0] == MANIFESTS_DIR and len(parts) > 1 and name.endswith(".json")):
        raise BackupError(f"{path}: file path {name!r} is neither {RDB_FILE} nor a manifest under {MANIFESTS_DIR}/")
    return name


def _check_member(folder: Path, name: str, entry: dict[str, Any], path: Path) -> None:
    """BackupError unless ``folder/name`` is a regular file, reached through no link, of the listed size and
    SHA-256 (an export manifest at most :data:`MAX_EXPORT_MANIFEST_BYTES`)."""
    current = folder
    for part in name.split("/"):
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            raise BackupError(f"the backup is incomplete: {folder / name} is missing") from None
        if stat.S_ISLNK(info.st_mode):
            raise BackupError(f"the backup holds a symbolic link ({current}): refused, a backup holds plain files")
    if not stat.S_ISREG(info.st_mode):
        raise BackupError(f"the backup is damaged: {current} is not a regular file")
    if name != RDB_FILE and info.st_size > MAX_EXPORT_MANIFEST_BYTES:
        raise BackupError(f"the backup is damaged: {current} is {info.st_size} bytes, too big for a manifest")
    if info.st_size != entry["bytes"] or sha256_file(current) != entry["sha256"]:
        raise BackupError(f"the backup is damaged: {current} does not match its SHA-256 in {path}")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The backup's manifest after checking its format and every file's size and SHA-256; :class:`BackupError`
    for a missing, malformed, foreign or newer manifest, a path leaving the folder, a link or a damaged file."""
    folder = Path(folder)
    path = folder / MANIFEST
    manifest = _load_manifest_json(path, folder)
    _check_format(manifest, path)
    names = [_member_path(entry, i, path) for i, entry in enumerate(manifest["files"])]
    if len(set(names)) != len(names):
        raise BackupError(f"{path}: a file is listed twice")
    if RDB_FILE not in names:
        raise BackupError(f"{path} lists no {RDB_FILE}")
    for name, entry in zip(names, manifest["files"], strict=True):
        _check_member(folder, name, entry, path)
    return manifest


def _manifest_targets(manifest: dict[str, Any], exports_root: Path) -> list[tuple[dict[str, Any], Path]]:
    """Every export manifest of the backup with where it goes back to; BackupError, before anything is written,
    when one cannot go back (its place is a folder or a link, a folder on its way is a file)."""
    out = []
    for entry in manifest["files"]:
        if not entry["path"].startswith(MANIFESTS_DIR + "/"):
            continue
        dest = exports_root / Path(entry["path"]).relative_to(MANIFESTS_DIR)
        if dest.is_symlink() or (dest.exists() and not dest.is_file()):
            raise BackupError(f"cannot put back {dest}: it is a link or a folder (nothing was restored)")
        for parent in dest.relative_to(exports_root).parents:
            if (exports_root / parent).exists() and not (exports_root / parent).is_dir():
                raise BackupError(f"cannot put back {dest}: {exports_root / parent} is not a folder "
                                  "(nothing was restored)")
        out.append((entry, dest))
    return out


def restore(client: redis.Redis, folder: Path, exports_root: Path, force: bool = False,
            progress: Progress = print) -> BackupResult:
    """Restore a backup written by :func:`backup` into the Redis behind ``client`` (admin rights) and the
    manifests into ``exports_root``."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    progress(f"restore: {folder} checked ({len(manifest['files'])} files, SHA-256 ok)")
    targets = _manifest_targets(manifest, Path(exports_root))
    present = int(client.dbsize())
    if present and not force:
        raise BackupError(f"the target Redis already holds {present} keys; restore only into an empty database, or "
                          "pass --force to replace keys of the same name (other keys are kept)")
    restored, expired = 0, 0
    with snapshot_server(folder / RDB_FILE, int(manifest.get("db", 0))) as snap:
        total = int(snap.dbsize())
        for batch in _key_batches(snap):
            written, gone = _restore_batch(snap, client, batch, force, restored)
            restored, expired = restored + written, expired + gone
            progress(f"restore: {restored}/{total} keys" + (f" ({expired} expired meanwhile)" if expired else ""))
    counts = store_counts(client)
    progress("restore: the store now holds " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    put_back = sum(_put_back(folder / entry["path"], dest, entry["sha256"], force, progress)
                   for entry, dest in targets)  # fmt: skip
    progress(f"restore: put back {put_back} manifests; done")
    return BackupResult(folder, restored, counts, put_back)


def _restore_batch(snap: redis.Redis, client: redis.Redis, batch: list[bytes], force: bool,
                   restored: int) -> tuple[int, int]:
    """Copy one batch of keys from the snapshot to the target; ``(written, expired)``: a key that expired (or
    is about to, PTTL 0) between SCAN and DUMP is not written and not counted as restored."""
    read = snap.pipeline(transaction=False)
    for key in batch:
        read.pttl(key)
        read.dump(key)
    answers = read.execute()
    write = client.pipeline(transaction=False)
    written = 0
    for key, ttl, payload in zip(batch, answers[0::2], answers[1::2], strict=True):
        if payload is None or int(ttl) == 0 or int(ttl) == -2:
            continue  # gone; RESTORE with TTL 0 would even make it live for ever
        write.restore(key, max(int(ttl), 0), payload, replace=force)
        written += 1
    try:
        write.execute()
    except redis.ResponseError as exc:
        raise BackupError(f"RESTORE refused after {restored} keys: {exc} (without --force an existing key "
                          "is never replaced; the admin URL is needed for RESTORE)") from None
    return written, len(batch) - written


def _put_back(source: Path, dest: Path, sha256: str, force: bool, progress: Progress) -> int:
    """Copy one export manifest back (through a temporary file, so that a full disk leaves no half file); 1 when
    it was written."""
    if dest.exists() and sha256_file(dest) == sha256:
        return 0
    if dest.exists() and not force:
        progress(f"restore: kept the existing, different {dest} (--force replaces it)")
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.restore-tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return 1


def _key_batches(client: redis.Redis) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in client.scan_iter(count=BATCH):
        batch.append(key)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
