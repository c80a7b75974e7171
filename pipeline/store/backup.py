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

    The restore is all or nothing, and stays so when it is killed outright (SIGKILL, power loss): before a
    batch of keys is written, the target's current value and TTL of each of its keys (``DUMP``/``PTTL``, the
    deadline in the target's own clock) or the fact that it is new is appended to a named undo journal, a private
    file (0600, in a 0700 folder: ``var/restore`` by default, ``--journal-dir`` otherwise; local, durable state
    beside ``var/redis``, never ``/tmp``), and fsynced; so is each manifest file and folder before it is created
    or replaced. While it runs, the key :data:`pipeline.store.keys.RESTORE_MARKER` of the target names the
    journal, the backup id (the SHA-256 of ``redis.rdb``) and the host. When anything fails, the keys the restore
    created are deleted, the replaced ones are put back with ``RESTORE ... ABSTTL`` (one whose TTL ran out
    meanwhile stays gone) and the manifests are undone, then the error is raised; after success, or after the
    undo, the marker is deleted and the journal removed. A restore killed outright leaves both:
    ``python -m pipeline restore --rollback`` (on the same host) undoes it from the journal, as does the next
    ``restore DIR`` before it starts; ``backup`` refuses a store with the marker. (The service itself does not
    look at the marker: run the rollback before starting it.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pipeline.fileperms import EXPORT_MANIFEST_MODE as SERVICE_EXPORT_MANIFEST_MODE
from pipeline.models_manifest import sha256_file
from pipeline.processes import die_with_parent
from pipeline.settings import PROJECT_ROOT
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
EXPORT_MANIFEST_MODE = SERVICE_EXPORT_MANIFEST_MODE
"""Mode of a restored export or case manifest (0o640): the one :mod:`pipeline.recording.export` writes them with
(:data:`pipeline.fileperms.EXPORT_MANIFEST_MODE`), set explicitly so that the restoring process's umask does not
widen or narrow it."""
JOURNAL_SUFFIX = ".journal"
_JOURNAL_MAGIC = b"cctv-restore-journal 1\n"
_JOURNAL_RECORD = struct.Struct(">cIqQ")  # kind, name length, number (TTL deadline in ms of the target's clock,
# -1: none; or a file mode), payload length; then the name (a key or a path) and the payload (DUMP or file bytes)
_HEADER, _NO_MARKER, _DONE = b"H", b"N", b"Z"  # the restore (JSON); its user may not write the marker; finished
_CREATED, _REPLACED, _UNCHANGED = b"C", b"K", b"U"  # a key created; replaced (DUMP payload); refused, so unchanged
_FILE_CREATED, _FILE_REPLACED, _DIR_CREATED = b"F", b"R", b"D"  # manifest files and folders
PAUSE_ENV = "CCTV_RESTORE_TEST_PAUSE"
"""Test hook: ``batch:N`` or ``manifest:N`` makes a restore wait after that step (see :func:`_test_pause`)."""

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
        # the server holds the whole backup (password hashes, tokens): it must not outlive a restore killed outright
        proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
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
    marker = unfinished_restore(client)
    if marker is not None:  # a backup of a half-restored store would keep the damage
        raise BackupError(unfinished_restore_message(marker))
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


JOURNAL_DIR_ENV = "CCTV_RESTORE_JOURNAL_DIR"
"""Environment variable naming the folder of restore journals (default ``var/restore``; the tests point it at a
temporary folder so that no test run finds another's journal)."""


def default_journal_dir() -> Path:
    """Where a restore keeps its undo journal unless told otherwise: :data:`JOURNAL_DIR_ENV` when set, else
    ``var/restore`` of the project (the local, durable state folder beside ``var/redis`` and ``var/secrets``; never
    ``/tmp``, which a reboot may empty)."""
    configured = os.environ.get(JOURNAL_DIR_ENV, "").strip()
    return Path(configured) if configured else PROJECT_ROOT / "var" / "restore"


def restore(client: redis.Redis, folder: Path, exports_root: Path, force: bool = False,
            progress: Progress = print, journal_dir: Path | None = None) -> BackupResult:
    """Restore a backup written by :func:`backup` into the Redis behind ``client`` (admin rights) and the
    manifests into ``exports_root``, all or nothing, with its undo journal in ``journal_dir`` (default
    :func:`default_journal_dir`); an unfinished earlier restore of that target is rolled back first."""
    folder = Path(folder)
    journal_dir = Path(journal_dir) if journal_dir is not None else default_journal_dir()
    manifest = read_manifest(folder)
    progress(f"restore: {folder} checked ({len(manifest['files'])} files, SHA-256 ok)")
    targets = _manifest_targets(manifest, Path(exports_root))
    if rollback(client, journal_dir, progress):
        progress("restore: the unfinished restore was rolled back; now restoring " + str(folder))
    present = int(client.dbsize())
    if present and not force:
        raise BackupError(f"the target Redis already holds {present} keys; restore only into an empty database, or "
                          "pass --force to replace keys of the same name (other keys are kept)")
    header = {"backup": str(folder.resolve()), "backup_id": _backup_id(manifest), "exports": str(exports_root),
              "target": _target_id(client), "host": socket.gethostname(), "pid": os.getpid(),
              "started_at": time.time()}
    with snapshot_server(folder / RDB_FILE, int(manifest.get("db", 0))) as snap, \
            _RestoreScope(client, journal_dir, header, progress) as scope:
        try:
            restored = _copy_keys(snap, client, force, scope, progress)
            put_back = 0
            for entry, dest in targets:
                put_back += _put_back(folder / entry["path"], dest, entry["sha256"], force, progress, scope)
                _test_pause("manifest", put_back)
        except BaseException as exc:
            scope.undo(exc, progress)
            raise
        scope.finish()
    counts = store_counts(client)
    progress("restore: the store now holds " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    progress(f"restore: put back {put_back} manifests; done")
    return BackupResult(folder, restored, counts, put_back)


def _backup_id(manifest: dict[str, Any]) -> str:
    """What names a backup in the marker: the SHA-256 of its ``redis.rdb``."""
    return next(str(e["sha256"]) for e in manifest["files"] if e["path"] == RDB_FILE)


def _target_id(client: redis.Redis) -> str:
    """The target Redis as ``host:port/db`` (or ``socket/db``), to tell journals of different targets apart."""
    kwargs = client.connection_pool.connection_kwargs
    place = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    return f"{place}/{int(kwargs.get('db', 0) or 0)}"


def _test_pause(stage: str, count: int) -> None:
    """Test hook: with ``CCTV_RESTORE_TEST_PAUSE=<stage>:<count>`` (e.g. ``batch:2``) the restore says so on
    stderr and waits, so that a test can kill it at a known point without racing it."""
    if os.environ.get(PAUSE_ENV) != f"{stage}:{count}":
        return
    sys.stderr.write(f"restore: paused after {stage} {count} ({PAUSE_ENV})\n")
    sys.stderr.flush()
    while True:
        time.sleep(3600)


def _copy_keys(snap: redis.Redis, client: redis.Redis, force: bool, scope: _RestoreScope,
               progress: Progress) -> int:
    """Copy every key of the snapshot to the target, batch by batch, each journaled in ``scope`` first; the
    number of keys written (a key that SCAN names twice is copied once; a restore marker is never copied)."""
    restored, expired = 0, 0
    total = int(snap.dbsize())
    seen: set[bytes] = {keys.RESTORE_MARKER.encode()}
    for number, scanned in enumerate(_key_batches(snap), 1):
        batch = [key for key in dict.fromkeys(scanned) if key not in seen]
        seen.update(batch)
        written, gone = _restore_batch(snap, client, batch, force, restored, scope)
        restored, expired = restored + written, expired + gone
        progress(f"restore: {restored}/{total} keys" + (f" ({expired} expired meanwhile)" if expired else ""))
        _test_pause("batch", number)
    return restored


# -- the undo journal -------------------------------------------------------------------------------------------
class _Journal:
    """A restore's undo journal: a named, private file (0600, in a 0700 folder) of records
    ``kind, name, number, payload`` (:data:`_JOURNAL_RECORD`), fsynced before what it protects is written, so
    that a torn last record only ever describes something that was never written."""

    def __init__(self, path: Path, file: Any) -> None:
        self.path = path
        self._file = file

    @classmethod
    def create(cls, folder: Path, header: dict[str, Any]) -> _Journal:
        """A new journal in ``folder`` (created 0700 when missing) holding ``header``, durable on return."""
        _private_folder(folder)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = folder / f"restore-{stamp}-{os.getpid()}-{secrets.token_hex(4)}{JOURNAL_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
        journal = cls(path, os.fdopen(fd, "wb"))
        journal._file.write(_JOURNAL_MAGIC)
        journal.add(_HEADER, b"", 0, json.dumps(header).encode())
        journal.sync()
        _fsync_folder(folder)  # the name survives a crash too
        return journal

    def add(self, kind: bytes, name: bytes, number: int = 0, payload: bytes = b"") -> None:
        """Append one record (durable only after :meth:`sync`)."""
        self._file.write(_JOURNAL_RECORD.pack(kind, len(name), number, len(payload)) + name + payload)

    def sync(self) -> None:
        """Make every record appended so far durable."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) or check it: a real folder, not a link, of this user; mode forced to 0700."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise BackupError(f"the restore journal folder {folder} is a link, not a folder or not this user's: "
                          "refused (give another one with --journal-dir)")
    os.chmod(folder, 0o700)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _journal_records(path: Path) -> Iterator[tuple[bytes, bytes, int, bytes]]:
    """Every complete record of the journal at ``path`` (the header first); a torn last record is left out (it
    was never synced, so nothing it describes was written). BackupError for a file that is not a journal."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise BackupError(f"{path} is not a private regular file of this user: it is not read as a journal")
    with path.open("rb") as file:
        if file.read(len(_JOURNAL_MAGIC)) != _JOURNAL_MAGIC:
            raise BackupError(f"{path} is not a restore journal")
        while len(head := file.read(_JOURNAL_RECORD.size)) == _JOURNAL_RECORD.size:
            kind, name_len, number, payload_len = _JOURNAL_RECORD.unpack(head)
            name, payload = file.read(name_len), file.read(payload_len)
            if len(name) != name_len or len(payload) != payload_len:
                return
            yield kind, name, number, payload


def _journal_header(path: Path) -> dict[str, Any]:
    for kind, _, _, payload in _journal_records(path):
        if kind == _HEADER:
            return dict(json.loads(payload))
        break
    raise BackupError(f"{path} has no header: not a restore journal")


class _RestoreScope:
    """The all-or-nothing scope of one restore: the journal (what each batch of keys replaces or creates, which
    manifest files and folders it creates or replaces) and the marker key in the target that points at it.
    :meth:`undo` puts everything back; :meth:`finish` ends the scope after success."""

    def __init__(self, client: redis.Redis, folder: Path, header: dict[str, Any], progress: Progress) -> None:
        self._client = client
        self._folder = folder
        self._header = header
        self._progress = progress
        self._journal: _Journal | None = None
        self._marked = False

    def __enter__(self) -> _RestoreScope:
        self._journal = _Journal.create(self._folder, self._header)
        marker = {**self._header, "journal": str(self._journal.path)}
        try:
            self._client.set(keys.RESTORE_MARKER, json.dumps(marker))
            self._marked = True
        except redis.exceptions.NoPermissionError as exc:  # only keys of some names: go on, journal only
            self._journal.add(_NO_MARKER, b"")
            self._journal.sync()
            self._progress(f"restore: warning: the Redis user may not write {keys.RESTORE_MARKER} ({exc}); if "
                           f"this restore is killed, run `python -m pipeline restore --rollback` here")
        except BaseException:  # nothing was written: the journal has nothing to undo
            self._journal.close()
            _remove_journal(self._journal.path)
            raise
        logger.info("restore journal %s", self._journal.path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._journal is not None:
            self._journal.close()

    @property
    def journal(self) -> _Journal:
        assert self._journal is not None, "used outside its with block"
        return self._journal

    def save(self, batch: list[bytes]) -> None:
        """Journal the current value and TTL of every key of ``batch`` in the target (a missing one as created),
        durably, before the batch is written."""
        if not batch:
            return
        read = self._client.pipeline(transaction=True)  # TIME, PTTL and DUMP seen at one instant
        read.time()
        for key in batch:
            read.pttl(key)
            read.dump(key)
        answers = read.execute()
        seconds, micros = answers[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        for key, ttl, payload in zip(batch, answers[1::2], answers[2::2], strict=True):
            if payload is None:
                self.journal.add(_CREATED, key)
            else:  # the deadline in the target's own clock: RESTORE ... ABSTTL puts it back as it was
                self.journal.add(_REPLACED, key, now_ms + int(ttl) if int(ttl) >= 0 else -1, payload)
        self.journal.sync()

    def forget(self, names: list[bytes]) -> None:
        """``names`` were journaled but the target refused to write them: the rollback leaves them alone (it may
        not even have the right to write them)."""
        for key in names:
            self.journal.add(_UNCHANGED, key)
        self.journal.sync()

    def file_written(self, dest: Path) -> None:
        """Journal ``dest`` (its folders that do not exist yet, its current bytes and mode or that it is new),
        durably, before it is written."""
        missing = [p for p in reversed(dest.parents) if not p.exists()]
        for folder in missing:
            self.journal.add(_DIR_CREATED, os.fsencode(folder))
        if dest.exists():
            fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
                self.journal.add(_FILE_REPLACED, os.fsencode(dest), mode, file.read())
        else:
            self.journal.add(_FILE_CREATED, os.fsencode(dest))
        self.journal.sync()

    def undo(self, cause: BaseException, progress: Progress) -> None:
        """Put the target and the manifests back as they were, then end the scope; BackupError naming ``cause``
        (the marker and the journal kept, for ``restore --rollback``) when they cannot be put back."""
        logger.warning("restore failed (%s); rolling back from %s", cause, self.journal.path)
        try:
            self.journal.sync()
            created, replaced, files = _roll_back(self._client, self.journal.path)
        except Exception as exc:  # noqa: BLE001 (reported with the cause; the journal stays for a later rollback)
            raise BackupError(f"the restore failed ({cause}) and so did putting the target back ({exc}): the "
                              "target Redis holds part of the backup; run `python -m pipeline restore --rollback` "
                              f"(journal {self.journal.path})") from exc
        self._end()
        progress(f"restore: failed; the target is as it was ({created} created keys deleted, {replaced} replaced "
                 f"keys put back, {files} manifest files undone)")

    def finish(self) -> None:
        """The restore is complete: mark the journal done, then clear the marker and remove the journal."""
        self.journal.add(_DONE, b"")
        self.journal.sync()
        self._end()

    def _end(self) -> None:
        if self._marked:
            self._client.delete(keys.RESTORE_MARKER)
        _remove_journal(self.journal.path)


def _remove_journal(path: Path) -> None:
    path.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def _roll_back(client: redis.Redis, path: Path) -> tuple[int, int, int]:
    """Undo what the journal at ``path`` records (a finished restore is left as it is): delete the keys it
    created, put back those it replaced with their TTL (one whose TTL ran out meanwhile stays gone), remove the
    manifests it created and put back those it replaced; ``(created, replaced, files)``. Running it again
    gives the same result (a rollback killed in turn is simply run again)."""
    unchanged, created, files, done = set(), [], [], False
    for kind, name, number, payload in _journal_records(path):
        if kind == _UNCHANGED:
            unchanged.add(name)
        elif kind == _CREATED:
            created.append(name)
        elif kind in (_FILE_CREATED, _FILE_REPLACED, _DIR_CREATED):
            files.append((kind, name, number, payload))
        done = done or kind == _DONE
    if done:
        return 0, 0, 0
    for (kind, name, number, payload) in reversed(files):  # the manifests first: they are few
        _undo_file(kind, os.fsdecode(name), number, payload)
    created = [key for key in created if key not in unchanged]
    for start in range(0, len(created), BATCH):  # first: frees memory for what follows
        client.delete(*created[start:start + BATCH])
    return len(created), _put_back_replaced(client, path, unchanged), sum(k != _DIR_CREATED for k, *_ in files)


def _put_back_replaced(client: redis.Redis, path: Path, unchanged: set[bytes]) -> int:
    """RESTORE every replaced key of the journal with its absolute TTL deadline; the number put back."""
    write = client.pipeline(transaction=False)
    count = 0
    for kind, key, deadline, payload in _journal_records(path):
        if kind != _REPLACED or key in unchanged:
            continue
        if deadline >= 0:  # a deadline already past: Redis deletes the key (REPLACE) and stores nothing
            write.restore(key, deadline, payload, replace=True, absttl=True)
        else:
            write.restore(key, 0, payload, replace=True)
        count += 1
        if count % BATCH == 0:
            write.execute()
    write.execute()
    return count


def _undo_file(kind: bytes, path: str, mode: int, payload: bytes) -> None:
    """Undo one journaled manifest change: remove a created file or folder (a folder only when empty), put a
    replaced file's bytes and mode back."""
    dest = Path(path)
    if kind == _FILE_CREATED:
        dest.unlink(missing_ok=True)
    elif kind == _DIR_CREATED:
        try:
            dest.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:  # not empty: something else was put there meanwhile
            logger.warning("rollback keeps the folder %s: %s", dest, exc)
    else:
        tmp = dest.with_name(f".{dest.name}.rollback-tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, dest)


def unfinished_restore(client: redis.Redis) -> dict[str, Any] | None:
    """The marker of a restore into this target that has not finished (killed, or its rollback failed), as a
    dict (``journal``, ``backup_id``, ``backup``, ``host``, ``pid``, ``started_at``); None when there is none."""
    try:
        raw = client.get(keys.RESTORE_MARKER)
    except redis.exceptions.NoPermissionError as exc:  # a user limited to some keys: it cannot have set one
        logger.warning("cannot read the restore marker %s (%s): an unfinished restore is not detected",
                       keys.RESTORE_MARKER, exc)
        return None
    if raw is None:
        return None
    try:
        marker = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        marker = None
    if not isinstance(marker, dict) or not isinstance(marker.get("journal"), str):
        raise BackupError(f"the key {keys.RESTORE_MARKER} of the target is not a restore marker: check it and "
                          "delete it by hand")
    return marker


def unfinished_restore_message(marker: dict[str, Any]) -> str:
    """One line for an operator about an unfinished restore, naming the command that rolls it back."""
    return (f"an unfinished restore of backup {marker.get('backup', '?')} (id {marker.get('backup_id', '?')}, "
            f"started on {marker.get('host', '?')}) left the target Redis half restored: run `python -m pipeline "
            f"restore --rollback` on {marker.get('host', '?')} (journal {marker['journal']})")


def rollback(client: redis.Redis, journal_dir: Path | None = None, progress: Progress = print) -> int:
    """Roll back an unfinished restore of this target from its journal in ``journal_dir`` (default
    :func:`default_journal_dir`): the one the marker names, and any left by a restore whose user could not
    write the marker; then clear the marker and remove the journal. The number of restores rolled back."""
    journal_dir = Path(journal_dir) if journal_dir is not None else default_journal_dir()
    marker = unfinished_restore(client)
    journals = [_marker_journal(marker, journal_dir)] if marker is not None else []
    journals += [path for path in _unmarked_journals(journal_dir, _target_id(client)) if path not in journals]
    for path in journals:
        progress(f"restore: rolling back the unfinished restore of {_journal_header(path).get('backup', '?')} "
                 f"(journal {path})")
        created, replaced, files = _roll_back(client, path)
        if marker is not None and path == journals[0]:
            client.delete(keys.RESTORE_MARKER)
        _remove_journal(path)
        progress(f"restore: rolled back ({created} created keys deleted, {replaced} replaced keys put back, "
                 f"{files} manifest files undone)")
    return len(journals)


def _marker_journal(marker: dict[str, Any], journal_dir: Path) -> Path:
    """The journal the marker names, when this process may roll it back; BackupError saying what to do."""
    path = Path(marker["journal"])
    if marker.get("host") != socket.gethostname():
        raise BackupError(unfinished_restore_message(marker))
    if _process_alive(marker.get("pid")):
        raise BackupError(f"a restore (process {marker.get('pid')}) is still running into this Redis; wait for it "
                          "(or stop it, then run `python -m pipeline restore --rollback`)")
    if path.parent.resolve() != journal_dir.resolve():
        raise BackupError(f"the unfinished restore's journal is {path}: run `python -m pipeline restore --rollback "
                          f"--journal-dir {path.parent}`")
    if not path.exists():
        raise BackupError(f"the journal {path} of an unfinished restore of backup {marker.get('backup', '?')} is "
                          "gone: the target may hold part of that backup and cannot be rolled back; restore a "
                          f"backup again with --force, then delete the key {keys.RESTORE_MARKER}")
    return path


def _process_alive(pid: Any) -> bool:
    """True when ``pid`` (of this host) names a running process other than this one."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) runs no more
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _unmarked_journals(journal_dir: Path, target: str) -> list[Path]:
    """Journals of restores into ``target`` whose user could not write the marker, and that did not finish."""
    if not journal_dir.is_dir():
        return []
    found = []
    for path in sorted(journal_dir.glob(f"restore-*{JOURNAL_SUFFIX}")):
        kinds = {kind for kind, *_ in _journal_records(path)}
        if _NO_MARKER in kinds and _DONE not in kinds and _journal_header(path).get("target") == target \
                and not _process_alive(_journal_header(path).get("pid")):
            found.append(path)
    return found


def _restore_batch(snap: redis.Redis, client: redis.Redis, batch: list[bytes], force: bool,
                   restored: int, scope: _RestoreScope) -> tuple[int, int]:
    """Copy one batch of keys from the snapshot to the target, journaling what they replace in ``scope`` first;
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
    scope.save([key for key, _, _ in live])
    write = client.pipeline(transaction=False)
    for key, ttl, payload in live:
        write.restore(key, max(ttl, 0), payload, replace=force)
    results = write.execute(raise_on_error=False) if live else []
    refused = [(key, result) for (key, _, _), result in zip(live, results, strict=True)
               if isinstance(result, Exception)]
    if refused:
        scope.forget([key for key, _ in refused])
        key, error = refused[0]
        raise BackupError(f"RESTORE refused after {restored} keys: {len(refused)} key(s) of the next batch, first "
                          f"{key!r}: {error} (without --force an existing key is never replaced; the admin URL is "
                          "needed for RESTORE)")
    return len(live), len(batch) - len(live)


def _put_back(source: Path, dest: Path, sha256: str, force: bool, progress: Progress,
              scope: _RestoreScope) -> int:
    """Copy one export manifest back (through a temporary file, so that a full disk leaves no half file), journaled
    in ``scope`` first; 1 when it was written."""
    if dest.exists() and sha256_file(dest) == sha256:
        return 0
    if dest.exists() and not force:
        progress(f"restore: kept the existing, different {dest} (--force replaces it)")
        return 0
    scope.file_written(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.restore-tmp")
    tmp.unlink(missing_ok=True)  # a leftover of an interrupted restore (or a link planted there)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, EXPORT_MANIFEST_MODE)
        with os.fdopen(fd, "wb") as dst, source.open("rb") as src:
            os.fchmod(dst.fileno(), EXPORT_MANIFEST_MODE)  # not narrowed (nor widened) by the umask
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
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
