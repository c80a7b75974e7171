"""Evidence export: a background job cuts the clip with its SHA-256 manifest; progress and download.

The job records the SHA-256 of the clip (``sha256``) and of its final manifest file (``manifest_sha256``); the
download and manifest routes open the file once, hash it through that open file and refuse (409, audited) a file
that no longer matches (:func:`open_verified`), then serve the bytes of that same open file (:class:`HeldFileResponse`),
so a file swapped at its path after the check is never what is sent."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

import anyio
import redis
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, JSONResponse
from starlette.types import Receive, Scope, Send

from api.deps import ApiStoreDep, Investigator, RedisDep, SettingsDep, User
from api.ids import ExportId
from api.ownership import OWNER_STAMP, owner_stamp, owns
from api.schemas.errors import ErrorOut
from api.schemas.misc import ExportCreate, ExportOut
from api.store import ApiStore
from api.validation import check_cameras, field_error, has_recordings

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/exports", tags=["exports"])


class JobRecord(dict[str, str]):
    """An export job record as read from Redis; ``unreadable`` names the fields whose stored bytes are not UTF-8
    (left out of the record: a damaged record, edited by hand or restored badly)."""

    unreadable: tuple[str, ...] = ()


def read_job(raw: dict[bytes, bytes]) -> JobRecord:
    """The decoded fields of a raw job hash; a field whose name or value is not UTF-8 is left out and named in
    :attr:`JobRecord.unreadable` (its name with undecodable bytes replaced), never raised as an error."""
    job, unreadable = JobRecord(), []
    for key, value in raw.items():
        try:
            job[key.decode()] = value.decode()
        except UnicodeDecodeError:
            unreadable.append(key.decode(errors="replace")[:64])
    job.unreadable = tuple(sorted(unreadable))
    return job


def _job(client: redis.Redis, job_id: str) -> JobRecord | None:
    job = read_job(client.hgetall(f"export:{job_id}"))
    if job.unreadable:
        logger.warning("export %s: fields %s of its record are not UTF-8", job_id, ", ".join(job.unreadable))
    return job if job or job.unreadable else None


RETRY_AFTER_S = 30
"""Retry-After of a refused export (the queue was full, or a host holding the footage is down)."""
CLOCK_SKEW_S = 120
"""How far in the future an export may start (the caller's clock running ahead of the server's)."""
FUTURE_END_S = 30
"""How far in the future an export may end (a few seconds of clock difference); a window ending later is refused:
its end is not recorded yet, and the clip, cut at once, would miss it."""


REMOVED_NOTE = ("the camera is no longer in the camera configuration (removed or renamed); its name is unknown and "
                "the clip was cut from its retained recordings")
NO_CONFIG_NOTE = ("the camera configuration was not loaded when this clip was asked for; the camera's name is unknown "
                  "and the clip was cut from its retained recordings")


def check_export_camera(request: Request, client: redis.Redis, user: User, camera_id: str) -> dict[str, object]:
    """The camera as the evidence manifest describes it (id, name, whether it is configured); 422 on ``camera_id``
    (the same answer for an unknown camera and for one the caller may not use) unless the camera is

    - in cameras.yaml and one of the caller's cameras, or
    - no longer configured (removed, renamed) but with retained recordings (:func:`api.validation.has_recordings`),
      for an admin or a caller whose cameras include it (no camera limit: every camera)."""
    config = request.app.state.camera_config
    names = {} if config is None else {c.id: c.name for c in config.cameras}
    if camera_id in names:
        check_cameras([camera_id], set(names), user.cameras, "camera_id", "body")
        return {"id": camera_id, "name": names[camera_id], "configured": True}
    if not ((user.may("admin") or user.sees(camera_id)) and has_recordings(client, camera_id)):
        raise field_error("camera_id", f"unknown camera {camera_id[:64]!r}", "body")
    logger.info("export of camera %s asked by %s: no longer configured, retained recordings used", camera_id,
                user.username)
    return {"id": camera_id, "name": None, "configured": False,
            "note": REMOVED_NOTE if config is not None else NO_CONFIG_NOTE}


def check_export_window(client: redis.Redis, camera_id: str, start: float, end: float) -> None:
    """422 on ``start`` for a window entirely in the future (beyond :data:`CLOCK_SKEW_S`), on ``end`` for a window
    ending in the future (beyond :data:`FUTURE_END_S`); 404 when no indexed
    recording of the camera overlaps the window (one index read: the job would only fail later)."""
    from pipeline.recording.index import segments_between

    now = time.time()
    if start > now + CLOCK_SKEW_S:
        raise field_error("start", f"the window starts {start - now:.0f} s in the future: nothing is recorded yet",
                          "body")
    if end > now + FUTURE_END_S:
        raise field_error("end", f"the window ends {end - now:.0f} s in the future: that part is not recorded yet; "
                                 "end the window now at the latest, or ask again once it has been recorded", "body")
    if not any(seg.end > start and seg.start < end for seg in segments_between(client, camera_id, start, end)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no recording of camera {camera_id!r} covers "
                                                       f"{_iso(start)} .. {_iso(end)}")


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def unavailable_footage(client: redis.Redis, camera_id: str, start: float, end: float,
                        recordings_dir: Path) -> str | None:
    """Why the window cannot be exported now (a worker host holding part of it does not answer), else None."""
    from pipeline.recording.export import FootageUnavailable
    from pipeline.recording.index import segments_between
    from pipeline.recording.locate import unreachable_hosts

    hosts = unreachable_hosts(client, recordings_dir, segments_between(client, camera_id, start, end))
    return str(FootageUnavailable(camera_id, hosts)) if hosts else None


def describe_camera(manifest_path: Path, camera: dict[str, object]) -> str:
    """Add the camera's description (``camera``: id, name, configured, a note for a removed camera) to an export's
    manifest, replacing it atomically (the manifest names the clip's SHA-256; the clip is left as it is). Returns
    the SHA-256 of the manifest file as written (the job's ``manifest_sha256``)."""
    manifest = json.loads(manifest_path.read_text())
    manifest["camera"] = camera
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    tmp = manifest_path.with_suffix(".json.part")
    tmp.write_bytes(data)
    os.replace(tmp, manifest_path)
    return hashlib.sha256(data).hexdigest()


STATUSES = ("queued", "running", "done", "failed")
DAMAGED = "the export record is damaged (unreadable: {})"


def _number(job: dict[str, str], field: str, default: float, damaged: list[str]) -> float:
    """The job's numeric ``field``; ``default`` (and ``field`` added to ``damaged``) when absent or unreadable."""
    try:
        value = float(job[field])
    except (KeyError, TypeError, ValueError):
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):  # NaN/inf are not JSON either
        damaged.append(field)
        return default
    return value


def _out(job: dict[str, str], request: Request | None = None, job_id: str | None = None) -> ExportOut:
    """The job as answered. A damaged record (a field unreadable or missing) is answered with what can be read: the
    unreadable numbers as 0, a missing text as "", an unknown status as ``failed``, and ``error`` saying which fields
    are damaged (with the job's own error, if any), never a 500."""
    damaged: list[str] = list(getattr(job, "unreadable", ()))
    job_id = job.get("id") or job_id or ""
    status_ = job.get("status")
    if status_ not in STATUSES:
        if "status" not in damaged:
            damaged.append("status")
        status_ = "failed"
    progress = _number(job, "progress", 0.0, damaged) if "progress" in job else 0.0
    start, end = _number(job, "start", 0.0, damaged), _number(job, "end", 0.0, damaged)
    created_at = _number(job, "created_at", 0.0, damaged)
    texts = {}
    for field in ("camera_id", "requester"):
        texts[field] = job.get(field)
        if not isinstance(texts[field], str):
            if field not in damaged:
                damaged.append(field)
            texts[field] = ""
    error = job.get("error") or None
    complete = {"1": True, "0": False}.get(job.get("complete", ""))
    if damaged:
        logger.warning("export %s: damaged record (unreadable: %s)", job_id, ", ".join(damaged))
        error = "; ".join(filter(None, [DAMAGED.format(", ".join(damaged)), error]))
    queue = getattr(request.app.state, "export_queue", None) if request is not None else None
    position = queue.position(job_id) if queue is not None and status_ == "queued" else None
    return ExportOut(queue_position=position, id=job_id, status=status_, progress=progress,
                     camera_id=texts["camera_id"], start=start, end=end, requester=texts["requester"],
                     created_at=created_at, sha256=job.get("sha256") or None, error=error,
                     download_url=f"/api/exports/{job_id}/download" if status_ == "done" else None,
                     manifest_sha256=job.get("manifest_sha256") or None, complete=complete,
                     covered_start=_optional_number(job, "covered_start"),
                     covered_end=_optional_number(job, "covered_end"))


def _optional_number(job: dict[str, str], field: str) -> float | None:
    """The job's numeric ``field`` when present and finite; None otherwise (jobs written before it existed)."""
    try:
        value = float(job[field])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def run_export(client: redis.Redis, job_id: str, camera_id: str, start: float, end: float, requester: str,
               out_dir: Path, recordings_dir: Path, camera: dict[str, object] | None = None) -> None:
    """The job body (runs in a thread): calls ``pipeline.recording.export.export_clip``, adds ``camera`` (see
    :func:`check_export_camera`) to the manifest, and records the result: the clip's ``sha256``, the final
    manifest's ``manifest_sha256``, and whether the clip covers the whole window (``complete``, ``covered_*``)."""
    key = f"export:{job_id}"
    client.hset(key, mapping={"status": "running", "progress": "0"})
    try:
        from pipeline.recording.export import ExportError, export_clip
    except ImportError:
        client.hset(key, mapping={"status": "failed", "error": "evidence export is not installed on this server"})
        return
    try:
        result = export_clip(client, camera_id, start, end, requester, out_dir=out_dir,
                             progress=lambda f: client.hset(key, "progress", repr(float(f))),
                             recordings_dir=recordings_dir)
        manifest_digest = describe_camera(result.manifest_path, camera or {"id": camera_id})
    except ExportError as exc:
        client.hset(key, mapping={"status": "failed", "error": str(exc)})
        return
    except Exception:  # noqa: BLE001 - a failed job must be reported, never crash the worker
        logger.exception("export %s failed", job_id)
        client.hset(key, mapping={"status": "failed", "error": "internal error while exporting"})
        return
    client.hset(key, mapping={"status": "done", "progress": "1", "path": str(result.mp4_path),
                              "manifest_path": str(result.manifest_path), "sha256": result.sha256,
                              "size": str(result.size), "duration": repr(result.duration),
                              "manifest_sha256": manifest_digest, "complete": "1" if result.complete else "0",
                              **_covered_fields(result.covered)})


def _covered_fields(covered: tuple[float, float] | None) -> dict[str, str]:
    """The job fields of the recorded part of the window (none when unknown)."""
    return {} if covered is None else {"covered_start": repr(covered[0]), "covered_end": repr(covered[1])}


@router.post("", response_model=ExportOut, status_code=202, summary="Ask for a clip (runs in the background)",
             description="The clip is cut by a bounded pool of workers (CCTV_EXPORT_WORKERS, default 2) with a "
                         "bounded waiting line (CCTV_EXPORT_QUEUE, default 8): a job waits as `queued` with its "
                         "`queue_position`, and when the line is full the request is refused with 429 and "
                         "`Retry-After`. Refused at once: a malformed time, `end` not after `start` or more than "
                         f"3600 s later, a window starting more than {CLOCK_SKEW_S} s in the future, a window ending "
                         f"more than {FUTURE_END_S} s in the future (422 on `end`: that part is not recorded yet; "
                         "end the window now at the latest, or ask again later), or an unknown "
                         "camera (or one not yours: the same answer) with 422; a window no indexed recording of the "
                         "camera overlaps with 404. A camera no longer in cameras.yaml (removed, renamed) whose "
                         "recordings are retained is exported for an admin or a user whose cameras include it; its "
                         "manifest's `camera` says it is no longer configured (name unknown). A window only partly "
                         "recorded (a gap, or the recording starting after `start` or ending before `end`) is "
                         "exported with what is recorded: the job and the manifest say `complete: false`, the "
                         "manifest's `gaps` list every uncovered part (head and tail included) and its `covered` "
                         "window the recorded part of the `requested` one.",
             responses={404: {"model": ErrorOut, "description": "No recording of the camera covers any of the "
                                                               "window."},
                        429: {"model": ErrorOut, "description": "The export queue is full; retry later.",
                              "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                        503: {"model": ErrorOut, "description": "Part of the window is recorded on a worker host "
                                                                "that cannot be reached now (named in `detail`).",
                              "headers": {"Retry-After": {"schema": {"type": "integer"}}}}})
def create_export(body: ExportCreate, request: Request, user: Investigator, client: RedisDep,
                  store: ApiStoreDep, settings: SettingsDep) -> ExportOut | JSONResponse:
    camera = check_export_camera(request, client, user, body.camera_id)
    check_export_window(client, body.camera_id, body.start, body.end)
    queue = request.app.state.export_queue
    running, waiting = queue.load()
    if running + waiting >= queue.capacity:
        logger.info("export refused for %s: queue full (%d running, %d waiting)", user.username, running, waiting)
        store.audit(user.username, "export_refused", body.model_dump() | {"reason": "queue full"})
        return JSONResponse({"detail": f"the export queue is full ({running} running, {waiting} waiting); "
                                       f"retry in {RETRY_AFTER_S} s"}, status_code=429,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    down = unavailable_footage(client, body.camera_id, body.start, body.end, settings.recordings_dir)
    if down is not None:
        store.audit(user.username, "export_refused", body.model_dump() | {"reason": down}, status=503)
        return JSONResponse({"detail": down}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    job_id = uuid.uuid4().hex[:16]
    job = {"id": job_id, "status": "queued", "progress": "0", "camera_id": body.camera_id, "start": repr(body.start),
           "end": repr(body.end), "requester": user.username, "created_at": repr(time.time()),
           "owner": queue.instance, OWNER_STAMP: owner_stamp(store, user.username)}
    client.hset(f"export:{job_id}", mapping=job)
    client.zadd("exports", {job_id: time.time()})
    store.audit(user.username, "export", body.model_dump() | {"job_id": job_id}
                | ({} if camera["configured"] else {"camera_configured": False}))
    out_dir = settings.exports_root() / job_id
    if not queue.submit(job_id, run_export, client, job_id, body.camera_id, body.start, body.end, user.username,
                        out_dir, settings.recordings_dir, camera):  # filled up between the check and now
        client.hset(f"export:{job_id}", mapping={"status": "failed", "error": "the export queue was full"})
        return JSONResponse({"detail": f"the export queue is full; retry in {RETRY_AFTER_S} s"}, status_code=429,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return _out(job, request)


def job_ids(client: redis.Redis, key: str, start: int, stop: int, newest_first: bool = False) -> list[str]:
    """The export job ids in the sorted set ``key`` (ranks ``start`` .. ``stop``); an id that is not UTF-8 (a
    damaged member: no route can name it) is skipped with a warning and left where it is."""
    raw = client.zrevrange(key, start, stop) if newest_first else client.zrange(key, start, stop)
    out = []
    for member in raw:
        try:
            out.append(member.decode())
        except UnicodeDecodeError:
            logger.warning("export list %s holds a job id that is not UTF-8 (%r); skipped", key, member[:64])
    return out


INTERRUPTED = "interrupted: the server stopped while this export was queued or running; ask again"


def fail_interrupted_exports(client: redis.Redis, exports_root: Path) -> int:
    """Jobs left ``queued`` or ``running`` by an API process that is gone are marked failed (nothing will ever
    finish them) and the half-written clips they left (``*.part.mp4``, ``*.json.part``, empty ``*.json`` name claims in
    their folders) removed.

    Run at start-up and every :data:`api.exportqueue.SWEEP_S` by every API process: with several API replicas a job
    belongs to the replica that queued it (``owner``) and is failed only once that replica's liveness key
    (:func:`api.exportqueue.alive_key`, refreshed while it runs) is gone; a job without an owner (written before
    replicas existed) counts as its owner gone. Returns the number of jobs marked."""
    from api.exportqueue import alive_key

    marked: list[str] = []
    for job_id in job_ids(client, "exports", 0, -1):
        key = f"export:{job_id}"
        status_, owner = client.hmget(key, ["status", "owner"])
        if status_ not in (b"queued", b"running"):
            continue
        if owner and client.exists(alive_key(owner.decode(errors="replace"))):
            continue  # its API process is alive and will finish it (an unreadable owner is no live one)
        client.hset(key, mapping={"status": "failed", "error": INTERRUPTED})
        marked.append(job_id)
    removed = 0
    for job_id in marked:
        folder = exports_root / job_id
        if folder.is_dir():
            claims = [f for f in folder.rglob("*.json") if f.stat().st_size == 0]  # a name claimed, no manifest yet
            for part in [*folder.rglob("*.part.mp4"), *folder.rglob("*.json.part"), *claims]:
                part.unlink(missing_ok=True)
                removed += 1
    if marked or removed:
        logger.warning("%d export job(s) interrupted by the last stop marked failed; %d partial file(s) removed",
                       len(marked), removed)
    return len(marked)


def _may_see(job: dict[str, str], user: User, stamp: str) -> bool:
    """Whether ``user`` (whose user record has ``stamp``) may see ``job``: an admin, or the user record that asked
    for it (not a later user re-created under the same name: :mod:`api.ownership`). A record whose requester or
    owner stamp is unreadable (not UTF-8) is an admin's only: its owner cannot be confirmed."""
    if user.may("admin"):
        return True
    if {"requester", OWNER_STAMP} & set(getattr(job, "unreadable", ())):
        return False
    return owns(job, "requester", user.username, stamp, "export")


def get_job(client: redis.Redis, job_id: str, user: User, stamp: str | None = None) -> dict[str, str]:
    """The job if it exists and the user may see it (own job, or admin), else 404. ``stamp``: the user's
    :func:`api.ownership.owner_stamp` (read from ``client`` when not given)."""
    job = _job(client, job_id)
    if stamp is None and job is not None and not user.may("admin"):
        stamp = owner_stamp(ApiStore(client), user.username)
    if job is None or not _may_see(job, user, stamp or ""):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"export {job_id!r} not found")
    return job


_DAMAGED_NOTE = ("A damaged job record is answered with the fields that can be read: an unreadable `created_at`, "
                 "`start`, `end` or `progress` as 0, a missing `camera_id` or `requester` as \"\", an unknown "
                 "`status` as `failed`, and `error` saying which fields are damaged (a field whose stored bytes "
                 "are not UTF-8 counts as unreadable; nothing stored is changed).")


@router.get("", response_model=list[ExportOut], summary="Your export jobs, newest first", description=_DAMAGED_NOTE)
def list_exports(request: Request, user: Investigator, client: RedisDep, store: ApiStoreDep) -> list[ExportOut]:
    stamp = owner_stamp(store, user.username)
    ids = job_ids(client, "exports", 0, 199, newest_first=True)
    jobs = [(i, _job(client, i)) for i in ids]
    return [_out(j, request, i) for i, j in jobs if j and _may_see(j, user, stamp)]


@router.get("/{job_id}", response_model=ExportOut, summary="Progress of an export", description=_DAMAGED_NOTE)
def get_export(request: Request, user: Investigator, job_id: ExportId, client: RedisDep,
               store: ApiStoreDep) -> ExportOut:
    return _out(get_job(client, job_id, user, owner_stamp(store, user.username)), request, job_id)


def export_file(job: dict[str, str], field: str, settings) -> Path | None:  # noqa: ANN001 - ApiSettings
    """The job's file ``field`` (``path``, ``manifest_path``) when it is a file inside the exports or recordings
    folders; None otherwise (absent, or a job record pointing elsewhere is never served)."""
    if not job.get(field):
        return None
    path = Path(job[field]).resolve()
    roots = [settings.exports_root().resolve(), settings.recordings_dir.resolve()]
    return path if any(path.is_relative_to(r) for r in roots) and path.is_file() else None


def _file(job: dict[str, str], field: str, settings) -> Path:  # noqa: ANN001 - ApiSettings
    unreadable = [f for f in getattr(job, "unreadable", ()) if f in ("status", field)]
    if unreadable:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{DAMAGED.format(', '.join(unreadable))}: its file cannot "
                                                      f"be served; export the window again")
    if job.get("status") != "done" or not job.get(field):
        raise HTTPException(status.HTTP_409_CONFLICT, f"export is {job.get('status') or 'in no known state'}, "
                                                      f"not ready")
    path = export_file(job, field, settings)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "export file not found")
    return path


SHA256_HEADER = "X-Content-SHA256"
"""Response header of a served export file: the SHA-256 recorded at export, which the served bytes match."""
_HASH_CHUNK = 1 << 20
_DIGEST_CACHE_MAX = 256
_digests: OrderedDict[tuple[str, int, int, int, int, int], str] = OrderedDict()
_digests_lock = threading.Lock()

ALTERED = ("the {what} on disk no longer matches the hash recorded at export: it was altered or damaged; it is not "
           "served. Export the window again while its recordings are retained, and report this (the refusal is in "
           "the audit log)")


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path`` (see :func:`handle_sha256`)."""
    with path.open("rb") as fh:
        return handle_sha256(fh, path)


def handle_sha256(fh: BinaryIO, path: Path) -> str:
    """The SHA-256 of the open file ``fh`` (named ``path``), hashed in chunks from its start without moving its
    position. The result is cached per (path, device, inode, size, mtime, ctime) as read from the open file before
    and after hashing, so a large clip downloaded again is not hashed again, while any write to it (which changes its
    mtime and ctime, even when the mtime is set back) is."""
    fd = fh.fileno()
    key = _stat_key(path, os.fstat(fd))
    with _digests_lock:
        cached = _digests.get(key)
        if cached is not None:
            _digests.move_to_end(key)
            return cached
    digest, position = hashlib.sha256(), 0
    while chunk := os.pread(fd, _HASH_CHUNK, position):
        digest.update(chunk)
        position += len(chunk)
    hexdigest = digest.hexdigest()
    if _stat_key(path, os.fstat(fd)) == key:  # not changed while it was read: the digest holds
        with _digests_lock:
            _digests[key] = hexdigest
            while len(_digests) > _DIGEST_CACHE_MAX:
                _digests.popitem(last=False)
    return hexdigest


def _stat_key(path: Path, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
    return str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass
class HeldFile:
    """An export file opened once and checked through that open file: what is served is read from ``fh``, never
    from ``path`` again. ``stat`` is the open file's as it was checked; ``recorded`` the SHA-256 it matched (None:
    a file exported before its hash was recorded, served unchecked)."""

    fh: BinaryIO
    path: Path
    stat: os.stat_result
    recorded: str | None


def open_verified(job: dict[str, str], field: str, settings, store: ApiStore, user: User,  # noqa: ANN001
                  job_id: str) -> HeldFile:
    """The job's file ``field`` (see :func:`_file`), opened, with the SHA-256 recorded for it (``sha256`` for the
    clip, ``manifest_sha256`` for the manifest), after checking through the open file that it still has that hash;
    409 (audited as ``export_altered``) when it does not. The caller closes the file (:class:`HeldFileResponse`
    does once it has sent it)."""
    path = _file(job, field, settings)
    recorded_field, what = _recorded_field(field)
    recorded = (job.get(recorded_field) or "").lower() or None
    fh = path.open("rb")
    try:
        held = HeldFile(fh, path, os.fstat(fh.fileno()), recorded)
        if recorded is not None:
            actual = handle_sha256(fh, path)
            if actual != recorded:
                _refuse_altered(store, user, job_id, what, path, recorded, actual)
    except BaseException:
        fh.close()
        raise
    return held


def _recorded_field(field: str) -> tuple[str, str]:
    """The job field holding the hash recorded for the file ``field``, and what the file is called."""
    return ("sha256", "clip") if field == "path" else ("manifest_sha256", "clip manifest")


def _refuse_altered(store: ApiStore, user: User, job_id: str, what: str, path: Path, recorded: str,
                    actual: str) -> NoReturn:
    """Log and audit (``export_altered``) a file whose hash is not the recorded one, and refuse it with 409."""
    _audit_altered(store, user, job_id, what, path, recorded, actual)
    raise HTTPException(status.HTTP_409_CONFLICT, ALTERED.format(what=what))


def _audit_altered(store: ApiStore, user: User, job_id: str, what: str, path: Path, recorded: str,
                   actual: str | None, sending: bool = False) -> None:
    """Log and audit (``export_altered``) a file found altered: before it is served (``actual``: its SHA-256), or
    while it is sent (``sending``; ``actual`` None when it changed on disk before it was all read)."""
    logger.warning("export %s: the %s %s has SHA-256 %s, %s was recorded at export; %s", job_id, what, path.name,
                   actual or "(changed while read)", recorded, "response cut off" if sending else "not served")
    params = {"job_id": job_id, "file": what, "name": path.name, "recorded_sha256": recorded, "sha256": actual}
    if sending:
        params["while_sending"] = True
    store.audit(user.username, "export_altered", params, status=409)


class FileChanged(RuntimeError):
    """The file being served changed after it was checked (written in place): the response is cut off."""


class _HeldReader:
    """Reads of a :class:`HeldFile` for :class:`HeldFileResponse`: ``os.pread`` on its open descriptor (the checked
    file, whatever is at its path now). A chunk is sent only if the open file is, after reading it, still as it was
    checked (fstat identity: any write changes its mtime and ctime, even when the mtime is set back). When it is not
    (written in place, or only its ctime moved: another file renamed over its path), the open file is hashed again
    and the chunk read again; a file no longer matching its recorded hash raises :class:`FileChanged` (after
    ``on_changed`` with its SHA-256, or None when it keeps changing), which cuts the response off short of its
    Content-Length."""

    def __init__(self, held: HeldFile, on_changed: Callable[[str | None], None]) -> None:
        self._held, self._on_changed = held, on_changed
        self._key = _stat_key(held.path, held.stat)
        self._position = 0

    async def seek(self, offset: int) -> None:
        self._position = offset

    async def read(self, size: int) -> bytes:
        return await anyio.to_thread.run_sync(self._read, size)

    def _read(self, size: int) -> bytes:
        fd = self._held.fh.fileno()
        for _ in range(3):
            chunk = os.pread(fd, size, self._position)
            if self._held.recorded is None or self._fstat_key() == self._key:
                self._position += len(chunk)
                return chunk
            self._check_again()
        self._changed(None)

    def _fstat_key(self) -> tuple[str, int, int, int, int, int]:
        return _stat_key(self._held.path, os.fstat(self._held.fh.fileno()))

    def _check_again(self) -> None:
        """Hash the open file again: it must still match its recorded hash; it is then the new checked state."""
        before = self._fstat_key()
        actual = handle_sha256(self._held.fh, self._held.path)
        if actual != self._held.recorded:
            self._changed(actual)
        self._key = before

    def _changed(self, actual: str | None) -> NoReturn:
        self._on_changed(actual)
        raise FileChanged(f"{self._held.path.name} changed after it was checked; response cut off")


class HeldFileResponse(FileResponse):
    """A :class:`~starlette.responses.FileResponse` (Content-Length, ETag, Range and multi-range requests) of a
    :class:`HeldFile`: the bytes come from the file opened and checked before, never from its path (no
    ``pathsend``), and the file is closed once the response is sent. ``on_changed`` is told when the file turns out
    to have changed while it was sent (see :class:`_HeldReader`)."""

    def __init__(self, held: HeldFile, media_type: str, on_changed: Callable[[str | None], None]) -> None:
        super().__init__(held.path, media_type=media_type, filename=held.path.name, stat_result=held.stat,
                         headers=_sha256_header(held.recorded))
        self.held = held
        self._on_changed = on_changed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        try:
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:
            self.held.fh.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[_HeldReader]:  # type: ignore[override]
        yield _HeldReader(self.held, self._on_changed)


def _serve(held: HeldFile, media_type: str, store: ApiStore, user: User, job_id: str,
           field: str) -> HeldFileResponse:
    """The response sending ``held``; a change found while sending it is logged and audited (``export_altered``)."""
    what = _recorded_field(field)[1]

    def changed(actual: str | None) -> None:
        _audit_altered(store, user, job_id, what, held.path, held.recorded or "", actual, sending=True)

    return HeldFileResponse(held, media_type, changed)


_NOT_READY = {409: {"model": ErrorOut, "description": "The export is queued, running or failed: no file yet; or "
                                                     "its job record is damaged (the fields named in `detail` are "
                                                     "unreadable): export the window again; or the file on disk no "
                                                     "longer matches the SHA-256 recorded at export (altered or "
                                                     "damaged: not served, and the refusal is audited)."}}
_SHA256_DOC = {SHA256_HEADER: {"description": "The SHA-256 (hex) recorded at export, which the served file was "
                                              "checked against; absent for a manifest exported before manifests "
                                              "were hashed.", "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get("/{job_id}/download", summary="Download the MP4 of a finished export", response_class=FileResponse,
            description="The clip is opened once, hashed (SHA-256) through that open file and compared with the "
                        "hash recorded at export; a clip altered or damaged on disk is refused with 409 (and the "
                        "refusal audited), never served. What is sent (Range requests included) is read from that "
                        "same open file, so a file swapped at the path after the check is not sent, and a clip "
                        "written in place while it is sent is cut off short of its Content-Length (and audited). "
                        f"The recorded hash is sent as `{SHA256_HEADER}`.",
            responses={200: {"description": "The MP4.", "content": {"video/mp4": _BINARY}, "headers": _SHA256_DOC},
                       **_NOT_READY})
def download_export(user: Investigator, job_id: ExportId, client: RedisDep, store: ApiStoreDep,
                    settings: SettingsDep) -> FileResponse:
    job = get_job(client, job_id, user, owner_stamp(store, user.username))
    held = open_verified(job, "path", settings, store, user, job_id)
    try:
        store.audit(user.username, "export_download", {"job_id": job_id})
    except BaseException:
        held.fh.close()
        raise
    return _serve(held, "video/mp4", store, user, job_id, "path")


@router.get("/{job_id}/manifest", summary="Download the SHA-256 manifest of a finished export",
            response_class=FileResponse,
            description="The manifest is hashed before it is served and compared with the hash recorded at export "
                        "(`manifest_sha256`); a manifest altered on disk is refused with 409 (and the refusal "
                        f"audited). The recorded hash is sent as `{SHA256_HEADER}`. A manifest of an export made "
                        "before manifests were hashed is served as it is, without the header.",
            responses={200: {"description": "The manifest (JSON).", "content": {"application/json": {}},
                             "headers": _SHA256_DOC}, **_NOT_READY})
def download_manifest(user: Investigator, job_id: ExportId, client: RedisDep, store: ApiStoreDep,
                      settings: SettingsDep) -> FileResponse:
    job = get_job(client, job_id, user, owner_stamp(store, user.username))
    held = open_verified(job, "manifest_path", settings, store, user, job_id)
    return _serve(held, "application/json", store, user, job_id, "manifest_path")


def _sha256_header(recorded: str | None) -> dict[str, str]:
    return {SHA256_HEADER: recorded.lower()} if recorded else {}
