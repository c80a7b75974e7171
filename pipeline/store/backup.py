"""Backup and restore of everything the service keeps in Redis, plus the export manifests (never the video).

``python -m pipeline backup DIR``
    1. ``BGSAVE`` on the live server and wait for it: a point-in-time, consistent RDB snapshot of every key (plate
       and face events with their indexes, alerts, users, API keys, watchlists, persons, cases, export jobs, the
       audit stream);
    2. copy the snapshot file from the server's data folder (``CONFIG GET dir``: the backup runs on the Redis
       machine with the admin user, ``CCTV_REDIS_ADMIN_URL``) into ``DIR/redis.rdb``;
    3. load the copy into a private, throw-away ``redis-server`` (unix socket only) to prove it reads and to count
       what it holds;
    4. copy the export and case manifests (``*.json`` under the exports folder) into ``DIR/manifests/``: regular
       files only, reached through no symbolic link (a link, e.g. to ``/etc/passwd``, is left out and reported);
    5. write ``DIR/manifest.json`` with the SHA-256 and size of every file and the counts (mode 0600 throughout: the
       backup holds password hashes and session tokens).

``python -m pipeline restore DIR``
    validates ``manifest.json`` and every file's SHA-256, refuses a target Redis that holds any key unless
    ``--force`` (then keys of the same name are replaced, other keys are kept), loads ``redis.rdb`` into a private
    ``redis-server`` and copies every key of the backed-up database into the target with ``DUMP``/``RESTORE`` (the
    remaining TTL kept; keys that expired meanwhile, e.g. old sessions, stay gone), then puts back the manifests
    that are missing (an existing different file is kept and reported unless ``--force``), with the mode the
    service writes them with (:data:`EXPORT_MANIFEST_MODE`).

    The Redis part is all or nothing: before a batch is written, the target's current value and TTL of each of
    its keys is saved (``DUMP``/``PTTL``) into a private, unnamed temporary file; when any batch fails, the keys
    the restore created are deleted and the replaced ones are put back with their remaining TTL (one whose TTL ran
    out meanwhile stays gone), then the error is raised. (A restore killed outright cannot roll back.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import struct
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
EXPORT_MANIFEST_MODE = 0o644
"""Mode of a restored export or case manifest: the one :mod:`pipeline.recording.export` creates them with (its
``_claim_names``), set explicitly so that the restoring process's umask does not widen or narrow it."""
_ROLLBACK_HEADER = struct.Struct(">IqQ")  # key length, TTL deadline (monotonic ms, -1: none), payload length

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


def _manifest_files(exports_root: Path, progress: Progress = print) -> list[Path]:
    """The ``*.json`` regular files under ``exports_root``, found without following any symbolic link (a linked
    file or folder is left out and reported: a backup never holds what a link points at)."""
    if not exports_root.is_dir():
        return []
    found: list[Path] = []
    for top, folders, names in os.walk(exports_root, followlinks=False):
        for name in sorted(folders + names):
            path = Path(top) / name
            if path.is_symlink() and (name.endswith(".json") or name in folders):
                progress(f"backup: left out the symbolic link {path} (a backup holds no link nor its target)")
        found += [Path(top) / n for n in names if n.endswith(".json") and _is_plain_file(Path(top) / n)]
    return sorted(found)


def _is_plain_file(path: Path) -> bool:
    """True for a regular file that is not a symbolic link."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _copy_plain_file(path: Path, dest: Path) -> bool:
    """Copy ``path`` to a new ``dest`` (mode 0600) only when it is still a regular file, opened without following
    a link (``O_NOFOLLOW``: one swapped in since the listing is refused); False when it was not copied."""
    try:
        src_fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(src_fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            return False
        dest_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(dest_fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return True


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
    for path in _manifest_files(exports_root, progress):
        rel = Path(MANIFESTS_DIR) / path.relative_to(exports_root)
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not _copy_plain_file(path, dest):
            progress(f"backup: left out {path}: no longer a regular file")
            continue
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
    with snapshot_server(folder / RDB_FILE, int(manifest.get("db", 0))) as snap, _Rollback(client) as rollback:
        try:
            restored = _copy_keys(snap, client, force, rollback, progress)
        except BaseException as exc:
            rollback.undo(exc, progress)
            raise
    counts = store_counts(client)
    progress("restore: the store now holds " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    put_back = sum(_put_back(folder / entry["path"], dest, entry["sha256"], force, progress)
                   for entry, dest in targets)  # fmt: skip
    progress(f"restore: put back {put_back} manifests; done")
    return BackupResult(folder, restored, counts, put_back)


def _copy_keys(snap: redis.Redis, client: redis.Redis, force: bool, rollback: _Rollback,
               progress: Progress) -> int:
    """Copy every key of the snapshot to the target, batch by batch, each saved in ``rollback`` first; the number
    of keys written (a key that SCAN names twice is copied once)."""
    restored, expired = 0, 0
    total = int(snap.dbsize())
    seen: set[bytes] = set()
    for scanned in _key_batches(snap):
        batch = [key for key in dict.fromkeys(scanned) if key not in seen]
        seen.update(batch)
        written, gone = _restore_batch(snap, client, batch, force, restored, rollback)
        restored, expired = restored + written, expired + gone
        progress(f"restore: {restored}/{total} keys" + (f" ({expired} expired meanwhile)" if expired else ""))
    return restored


class _Rollback:
    """The target's keys as they were before a restore wrote them: replaced values (``DUMP`` payload and the
    monotonic time their TTL ends) in a private, unnamed temporary file, created keys in memory; :meth:`undo`
    puts the target back."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._file: Any = None
        self._created: list[bytes] = []
        self._saved = 0
        self._unchanged: set[bytes] = set()

    def __enter__(self) -> _Rollback:
        self._file = tempfile.TemporaryFile(prefix="cctv-restore-rollback-")  # mode 0600, unlinked already
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def save(self, batch: list[bytes]) -> None:
        """Record the current value and TTL of every key of ``batch`` in the target, before it is written."""
        if not batch:
            return
        read = self._client.pipeline(transaction=True)  # PTTL and DUMP of a key seen at one instant
        for key in batch:
            read.pttl(key)
            read.dump(key)
        answers = read.execute()
        now_ms = int(time.monotonic() * 1000)
        for key, ttl, payload in zip(batch, answers[0::2], answers[1::2], strict=True):
            if payload is None:
                self._created.append(key)
                continue
            deadline = now_ms + int(ttl) if int(ttl) >= 0 else -1
            self._file.write(_ROLLBACK_HEADER.pack(len(key), deadline, len(payload)) + key + payload)
            self._saved += 1

    def forget(self, keys: list[bytes]) -> None:
        """``keys`` were saved but the target refused to write them: they are as they were, the rollback leaves
        them alone (it may not even have the right to write them)."""
        self._unchanged.update(keys)

    def undo(self, cause: BaseException, progress: Progress) -> None:
        """Delete the keys the restore created and put back those it replaced; BackupError naming ``cause`` when
        the target cannot be put back."""
        created = [key for key in self._created if key not in self._unchanged]
        logger.warning("restore failed (%s); rolling back %d created and %d replaced keys", cause, len(created),
                       self._saved)
        try:
            for start in range(0, len(created), BATCH):  # first: frees memory for what follows
                self._client.delete(*created[start:start + BATCH])
            self._put_back_saved()
        except Exception as exc:  # noqa: BLE001 (reported with the cause; the target is then partly restored)
            raise BackupError(f"the restore failed ({cause}) and so did putting the target back ({exc}): the "
                              "target Redis now holds part of the backup; restore it again") from exc
        progress(f"restore: failed; the target is as it was ({len(created)} created keys deleted, "
                 f"{self._saved} replaced keys put back)")

    def _put_back_saved(self) -> None:
        self._file.flush()
        self._file.seek(0)
        write = self._client.pipeline(transaction=False)
        for count, (key, deadline, payload) in enumerate(self._records(), 1):
            if key in self._unchanged:
                continue
            remaining = deadline - int(time.monotonic() * 1000)
            if deadline >= 0 and remaining <= 0:
                write.delete(key)  # its TTL ran out meanwhile: it would be gone by now
            else:
                write.restore(key, remaining if deadline >= 0 else 0, payload, replace=True)
            if count % BATCH == 0:
                write.execute()
        write.execute()

    def _records(self) -> Iterator[tuple[bytes, int, bytes]]:
        while header := self._file.read(_ROLLBACK_HEADER.size):
            key_len, deadline, payload_len = _ROLLBACK_HEADER.unpack(header)
            key = self._file.read(key_len)
            yield key, deadline, self._file.read(payload_len)


def _restore_batch(snap: redis.Redis, client: redis.Redis, batch: list[bytes], force: bool,
                   restored: int, rollback: _Rollback) -> tuple[int, int]:
    """Copy one batch of keys from the snapshot to the target, saving what they replace in ``rollback`` first;
    ``(written, expired)``: a key that expired (or is about to, PTTL 0) between SCAN and DUMP is not written and
    not counted as restored. BackupError when the target refuses a key (the refused keys are unchanged: the
    rollback leaves them alone; the message never shows a payload)."""
    read = snap.pipeline(transaction=False)
    for key in batch:
        read.pttl(key)
        read.dump(key)
    answers = read.execute()
    live = [(key, int(ttl), payload) for key, ttl, payload in zip(batch, answers[0::2], answers[1::2], strict=True)
            if payload is not None and int(ttl) not in (0, -2)]  # gone; RESTORE with TTL 0 would make it immortal
    rollback.save([key for key, _, _ in live])
    write = client.pipeline(transaction=False)
    for key, ttl, payload in live:
        write.restore(key, max(ttl, 0), payload, replace=force)
    results = write.execute(raise_on_error=False) if live else []
    refused = [(key, result) for (key, _, _), result in zip(live, results, strict=True)
               if isinstance(result, Exception)]
    if refused:
        rollback.forget([key for key, _ in refused])
        key, error = refused[0]
        raise BackupError(f"RESTORE refused after {restored} keys: {len(refused)} key(s) of the next batch, first "
                          f"{key!r}: {error} (without --force an existing key is never replaced; the admin URL is "
                          "needed for RESTORE)")
    return len(live), len(batch) - len(live)


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
    tmp.unlink(missing_ok=True)  # a leftover of an interrupted restore (or a link planted there)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, EXPORT_MANIFEST_MODE)
        with os.fdopen(fd, "wb") as dst, source.open("rb") as src:
            os.fchmod(dst.fileno(), EXPORT_MANIFEST_MODE)  # not narrowed (nor widened) by the umask
            shutil.copyfileobj(src, dst, 1 << 20)
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
