"""Cases: several clips and related plate/face events packaged into one zip with a manifest of hashes.

Everything attached to an open case is under legal hold (:mod:`pipeline.store.holds`): event, snapshot/crop and
recording retention leave it alone until the case is closed (``POST /api/cases/{id}/close``). A package lists in
its manifest (``missing``) whatever it could not include, with the reason, instead of leaving it out silently.

A package's ``manifest.json`` carries the case's chain of custody (who opened, added to and closed it, each clip's
export requester and window, an extract of the audit trail) and is signed with the service's Ed25519 evidence key
(:mod:`pipeline.evidence.signing`): the zip holds the detached signature ``manifest.sig``, the public key and its
fingerprint, and the packaging's audit record holds the manifest's SHA-256, so that a package can be checked
offline (``python -m pipeline verify-package``) and the server can attest which package it issued."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import redis
from fastapi import APIRouter, HTTPException, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.deps import ApiStoreDep, Investigator, RedisDep, SettingsDep, User
from api.ids import CaseId
from api.ownership import OWNER_STAMP, owner_stamp, owns
from api.routes.exports import export_file, get_job
from api.schemas.errors import CodedHTTPException, ErrorOut
from api.schemas.misc import CaseCreate, CaseItemCreate, CaseOut
from pipeline.events import FaceEvent, PlateEvent
from pipeline.evidence import verify as package_files
from pipeline.evidence.signing import ALGORITHM, EvidenceKeyError, SigningKey, encode_signature, load_signing_key
from pipeline.store import codec, holds, keys
from pipeline.store.audit import AUDIT_STREAM

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/cases", tags=["cases"])


def _case(client: redis.Redis, case_id: str, user: User, stamp: str) -> dict:
    """The case with its items if ``user`` may see it (its owner, or an admin), else 404."""
    case = _decoded_case(case_id, client.hgetall(f"case:{case_id}"))
    if not _sees_case(case, user, stamp):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"case {case_id!r} not found")
    return _with_items(client, case_id, case)


def _sees_case(case: dict[str, str], user: User, stamp: str) -> bool:
    """Whether the stored case (empty: none) is ``user``'s (its owner, or an admin)."""
    return bool(case) and (user.may("admin") or owns(case, "created_by", user.username, stamp, "case"))


def _with_items(client: redis.Redis, case_id: str, case: dict) -> dict:
    """``case`` with its items (``items``), oldest first."""
    items = client.hgetall(f"case:{case_id}:items")
    case["items"] = sorted((_case_item(case_id, k, v) for k, v in items.items()), key=lambda i: i["added_at"])
    return case


def _open_case(client: redis.Redis, case_id: str, user: User, stamp: str) -> dict:
    """:func:`_case`, refused with 409 when the case is closed (nothing is added or removed then)."""
    case = _case(client, case_id, user, stamp)
    if case.get("status") == "closed":
        raise CodedHTTPException(status.HTTP_409_CONFLICT, f"case {case_id!r} is closed", "case_closed")
    return case


def _while_open(client: redis.Redis, case_id: str, write: Callable[[redis.client.Pipeline], None]) -> None:
    """Queue ``write``'s commands in one MULTI that runs only while the case is still open (WATCH of the case
    record, retried when it changed): a close that lands between the caller's checks and its write is answered 409,
    and nothing is added to or removed from a closed case (its chain of custody, its lifted hold)."""

    def step(pipe: redis.client.Pipeline) -> None:
        if pipe.hget(f"case:{case_id}", "status") == b"closed":
            raise CodedHTTPException(status.HTTP_409_CONFLICT, f"case {case_id!r} is closed", "case_closed")
        pipe.multi()
        write(pipe)

    client.transaction(step, f"case:{case_id}")


DAMAGED = "damaged"
"""The kind shown for a stored case item that cannot be read (the package lists it under ``missing``)."""


def _case_item(case_id: str, key: bytes, raw: bytes) -> dict:
    """One stored case item; a damaged one (bad JSON or UTF-8, a missing or mistyped field: Redis edited by hand, a
    bad restore) becomes ``{"kind": "damaged", "ref": <its key>}`` with a logged warning, so that the case page and
    package still show every other item and say which one is unreadable."""
    try:
        item = json.loads(raw)
        if (isinstance(item, dict) and item.get("kind") in ("clip", "plate", "face")
                and isinstance(item.get("ref"), str) and isinstance(item.get("added_at"), int | float)
                and isinstance(item.get("event") or {}, dict)):
            return item
    except (ValueError, RecursionError):
        pass
    ref = key.decode(errors="replace")
    logger.warning("case %s: stored item %r is unreadable; shown as damaged", case_id, ref[:100])
    return {"kind": DAMAGED, "ref": ref, "added_at": 0.0}


def _decoded_case(case_id: str, raw: dict[bytes, bytes]) -> dict[str, str]:
    """A stored case record as text. A field that is not UTF-8 (Redis edited by hand, a bad restore) keeps its
    readable part (undecodable bytes replaced) and is logged, so that one damaged case never takes the case list
    down; its owner field then matches no user name, so only admins see such a case."""
    case, damaged = {}, []
    for key, value in raw.items():
        name = key.decode(errors="replace")
        try:
            case[name] = value.decode()
        except UnicodeDecodeError:
            case[name] = value.decode(errors="replace")
            damaged.append(name)
    if damaged:
        logger.warning("case %s: stored fields %s are not UTF-8; shown with the unreadable bytes replaced",
                       case_id[:64], sorted(damaged))
    return case


def _number(case: dict, field: str, default: float | None) -> float | None:
    """A stored time of the case, ``default`` when missing or unreadable (logged)."""
    try:
        return float(case[field]) if case.get(field) else default
    except ValueError:
        logger.warning("case %s: stored %s %r is not a number", str(case.get("id"))[:64], field, case[field][:40])
        return default


def _out(case: dict) -> CaseOut:
    status_ = case.get("status") or "open"
    return CaseOut(id=case.get("id", ""), name=case.get("name", ""), description=case.get("description", ""),
                   created_by=case.get("created_by", ""), created_at=_number(case, "created_at", 0.0),
                   items=case["items"], status=status_ if status_ in ("open", "closed") else "open",
                   closed_at=_number(case, "closed_at", None))


def _clip_hold(job: dict[str, str], recordings_dir: Path) -> holds.Hold:
    """The hold of an export: its files (when under the recordings dir) and the recording of its window."""
    root = recordings_dir.resolve()
    paths = []
    for field in ("path", "manifest_path"):
        path = Path(job[field]).resolve() if job.get(field) else None
        if path is not None and path.is_relative_to(root):
            paths.append(path.relative_to(root).as_posix())
    return holds.Hold(paths=paths, windows=[(job["camera_id"], float(job["start"]), float(job["end"]))])


def _event(client: redis.Redis, kind: str, event_id: str) -> PlateEvent | FaceEvent | None:
    index, stream, model = ((keys.PLATE_EVENTS, keys.PLATE_STREAM, PlateEvent) if kind == "plate"
                            else (keys.FACE_EVENTS, keys.FACE_STREAM, FaceEvent))
    raw = client.hget(index, event_id)
    if raw is None:
        return None
    parts = raw.decode().split("\t")
    sid = parts[-1].split("|")[0]
    entries = client.xrange(stream, sid, sid)
    return codec.decode_or_none(model, entries[0][1], sid) if entries else None


def _kept_event(item: dict) -> PlateEvent | FaceEvent | None:
    """The copy of an event record kept with its case item (the event stream no longer holds it)."""
    data = item.get("event")
    if not data:
        return None
    model = PlateEvent if item["kind"] == "plate" else FaceEvent
    try:
        return model.model_validate({**data, **({"embedding": []} if model is FaceEvent else {})})
    except ValueError:  # pydantic's ValidationError: a damaged kept copy counts as no copy
        logger.warning("the kept copy of %s event %s is unreadable", item["kind"], item["ref"])
        return None


@router.post("", response_model=CaseOut, status_code=201, summary="Open a case")
def create_case(body: CaseCreate, user: Investigator, client: RedisDep, store: ApiStoreDep) -> CaseOut:
    case_id = uuid.uuid4().hex[:16]
    stamp = owner_stamp(store, user.username)
    now = time.time()
    pipe = client.pipeline(transaction=True)  # record and index in one MULTI/EXEC: no case nobody can list
    pipe.hset(f"case:{case_id}", mapping={"id": case_id, "name": body.name, "description": body.description,
                                          "created_by": user.username, "created_at": repr(now),
                                          OWNER_STAMP: stamp})
    pipe.zadd("cases", {case_id: now})
    pipe.execute()
    store.audit(user.username, "case_create", {"case_id": case_id, "name": body.name})
    return _out(_case(client, case_id, user, stamp))


CASE_LIST_MAX = 500
"""Most cases one listing returns: the caller's newest."""
CASE_LIST_CHUNK = 500
"""Case ids read per step while a listing looks for the caller's cases among everyone's."""


@router.get("", response_model=list[CaseOut], summary="Your cases, newest first",
            description=f"Your newest {CASE_LIST_MAX} cases (an admin: everyone's), however many cases other users "
                        "opened since.")
def list_cases(user: Investigator, client: RedisDep, store: ApiStoreDep) -> list[CaseOut]:
    stamp = owner_stamp(store, user.username)
    out: list[CaseOut] = []
    offset = 0
    while len(out) < CASE_LIST_MAX:  # every user's cases share one index: read on until the caller's are found
        ids = client.zrevrange("cases", offset, offset + CASE_LIST_CHUNK - 1)
        if not ids:
            break
        offset += len(ids)
        pipe = client.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(b"case:" + cid)
        for cid, raw in zip(ids, pipe.execute(), strict=True):
            try:
                case_id = cid.decode()
            except UnicodeDecodeError:
                logger.warning("case list: a stored case id is not UTF-8 (%r); skipped", cid[:64])
                continue
            case = _decoded_case(case_id, raw)
            if _sees_case(case, user, stamp) and len(out) < CASE_LIST_MAX:
                out.append(_out(_with_items(client, case_id, case)))
    return out


@router.get("/{case_id}", response_model=CaseOut, summary="One case")
def get_case(user: Investigator, case_id: CaseId, client: RedisDep, store: ApiStoreDep) -> CaseOut:
    return _out(_case(client, case_id, user, owner_stamp(store, user.username)))


@router.post("/{case_id}/items", response_model=CaseOut, status_code=201, summary="Add a clip or an event",
             description="The item (and for an event its snapshot, crop and the recording 30 s either side; for a "
                         "clip its files and recording) is kept from every retention until the case is closed.",
             responses={404: {"model": ErrorOut, "description": "No such case, clip or event (or not yours)."},
                        409: {"model": ErrorOut, "description": "The case is closed, or the export failed (or "
                                                                "its job record is unreadable): export the window "
                                                                "again. A queued or running export may be added."}})
def add_item(body: CaseItemCreate, user: Investigator, case_id: CaseId, client: RedisDep, store: ApiStoreDep,
             settings: SettingsDep) -> CaseOut:
    stamp = owner_stamp(store, user.username)
    _open_case(client, case_id, user, stamp)
    if body.kind == "clip":
        hold = _addable_clip_hold(get_job(client, body.ref, user, stamp), body.ref, settings.recordings_dir)
    else:
        event = _event(client, body.kind, body.ref)
        if event is None or not user.sees(event.camera_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{body.kind} event {body.ref!r} not found")
        hold = holds.event_hold(body.kind, event)
    item = {"kind": body.kind, "ref": body.ref, "added_by": user.username, "added_at": time.time()}
    if body.kind != "clip":  # the record itself, kept with the case: size-capped event streams may trim it later
        item["event"] = event.model_dump(mode="json", exclude={"embedding"})
    item_key = f"{body.kind}:{body.ref}"

    def write(pipe: redis.client.Pipeline) -> None:  # the item and its hold in one step, only into an open case
        pipe.hset(f"case:{case_id}:items", item_key, json.dumps(item))
        holds.queue_place(pipe, case_id, item_key, hold)

    _while_open(client, case_id, write)
    store.audit(user.username, "case_add", {"case_id": case_id, **body.model_dump()})
    return _out(_case(client, case_id, user, stamp))


ADDABLE_EXPORTS = ("queued", "running", "done")
"""Export states a case accepts: a queued or running export is expected to finish (the recording of its window is
held meanwhile, and the exports folder is never touched by retention)."""


def _addable_clip_hold(job: dict[str, str], ref: str, recordings_dir: Path) -> holds.Hold:
    """The hold of an export that may be added to a case; 409 naming why for a failed export, one in an unknown
    state or one whose job record is unreadable (a package could only list it as missing)."""
    state = job.get("status")
    if state == "failed":
        reason = job.get("error") or "no reason recorded"
        raise HTTPException(status.HTTP_409_CONFLICT, f"export {ref!r} failed ({reason}); a failed export cannot "
                                                      f"be added to a case: export the window again")
    if state not in ADDABLE_EXPORTS:
        raise HTTPException(status.HTTP_409_CONFLICT, f"export {ref!r} is in an unknown state ({state!r}); it "
                                                      f"cannot be added to a case")
    try:
        return _clip_hold(job, recordings_dir)
    except (KeyError, ValueError) as exc:
        logger.warning("export job %s is damaged (%s); not added to a case", ref, exc)
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job record of export {ref!r} is unreadable; it cannot "
                                                      f"be added to a case") from None


ItemKind = Annotated[Literal["clip", "plate", "face", "damaged"],
                     PathParam(description="The item's kind, as listed in the case ('damaged' for an unreadable "
                                           "item).")]
ItemRef = Annotated[str, PathParam(min_length=1, max_length=200,
                                   description="The item's ref, as listed in the case.")]


@router.delete("/{case_id}/items/{kind}/{ref}", response_model=CaseOut, summary="Remove an item from an open case",
               description="The item's legal hold is lifted, except for what another item or another open case "
                           "still holds.",
               responses={404: {"model": ErrorOut, "description": "No such case or item (or not yours)."},
                          409: {"model": ErrorOut, "description": "The case is closed."}})
def remove_item(user: Investigator, case_id: CaseId, kind: ItemKind, ref: ItemRef, client: RedisDep,
                store: ApiStoreDep) -> CaseOut:
    stamp = owner_stamp(store, user.username)
    case = _open_case(client, case_id, user, stamp)
    if not any(i["kind"] == kind and i["ref"] == ref for i in case["items"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"case {case_id!r} has no {kind} item {ref!r}")
    item_key = ref if kind == DAMAGED else f"{kind}:{ref}"  # a damaged item's ref is its stored key

    def write(pipe: redis.client.Pipeline) -> None:  # the item and its hold entry in one step, only from an open case
        pipe.hdel(f"case:{case_id}:items", item_key)
        holds.queue_drop(pipe, case_id, item_key)

    _while_open(client, case_id, write)
    holds.rebuild(client)  # after the item and its hold hash entry: a failure in between leaves more held, not less
    logger.info("case %s: %s removed item %s", case_id, user.username, item_key[:100])
    store.audit(user.username, "case_remove", {"case_id": case_id, "kind": kind, "ref": ref})
    return _out(_case(client, case_id, user, stamp))


def hold_open_cases(client: redis.Redis, recordings_dir: Path) -> int:
    """Place the legal hold of every open case that has none yet (cases made before holds existed); returns the
    number of cases held now. Items whose event or export job is already gone cannot be held (the package lists
    them as missing); a damaged item holds all recording (see :func:`_damaged_item_hold`)."""
    held = 0
    for raw_id in client.zrange("cases", 0, -1):
        try:
            case_id = raw_id.decode()
        except UnicodeDecodeError:
            logger.warning("legal holds: a stored case id is not UTF-8 (%r); skipped", raw_id[:64])
            continue
        if client.hget(f"case:{case_id}", "status") == b"closed" or client.exists(holds.case_key(case_id)):
            continue
        placed = False
        for key, raw in client.hgetall(f"case:{case_id}:items").items():
            item_key = key.decode(errors="replace")
            hold = _item_hold(client, case_id, item_key, _case_item(case_id, key, raw), recordings_dir)
            if hold is not None:
                holds.place(client, case_id, item_key, hold)
                placed = True
        held += placed
    if held:
        logger.info("legal hold placed on %d open cases that had none", held)
    return held


def _item_hold(client: redis.Redis, case_id: str, item_key: str, item: dict,
               recordings_dir: Path) -> holds.Hold | None:
    """The hold of one stored item of an old case: None when what it refers to is gone; all recording when the item
    or its export job is damaged (what it refers to is unknown: hold more, not less)."""
    if item["kind"] == DAMAGED:
        return _damaged_item_hold(client, case_id, item_key, recordings_dir)
    try:
        return _referenced_hold(client, item["kind"], item["ref"], recordings_dir)
    except (KeyError, ValueError) as exc:  # an export job hash with a missing or unreadable field
        logger.warning("case %s: export job of item %r is damaged (%s); holding all recording until the case is "
                       "closed", case_id, item_key[:100], exc)
        return holds.unknown_hold(case_id, item_key)


def _referenced_hold(client: redis.Redis, kind: str, ref: str, recordings_dir: Path) -> holds.Hold | None:
    """The hold of the clip (export job) or plate/face event ``ref``; None when it is gone. KeyError or ValueError
    when its export job is damaged."""
    if kind == "clip":
        job = {k.decode(): v.decode() for k, v in client.hgetall(f"export:{ref}").items()}
        return _clip_hold(job, recordings_dir) if job else None
    event = _event(client, kind, ref)
    return holds.event_hold(kind, event) if event is not None else None


def _damaged_item_hold(client: redis.Redis, case_id: str, item_key: str, recordings_dir: Path) -> holds.Hold:
    """The hold of a damaged case item: all recording of every camera (:func:`pipeline.store.holds.unknown_hold`),
    plus the events and files of the clip or event its key (``kind:ref``, stored apart from the damaged record)
    names, if that still exists (all recording does not cover events, snapshots and crops)."""
    logger.warning("case %s: item %r is damaged; holding all recording until it is repaired or the case is closed",
                   case_id, item_key[:100])
    hold = holds.unknown_hold(case_id, item_key)
    kind, _, ref = item_key.partition(":")
    if kind not in ("clip", "plate", "face") or not ref:
        return hold
    try:
        named = _referenced_hold(client, kind, ref, recordings_dir)
    except (KeyError, ValueError, redis.ResponseError) as exc:  # damaged too: all recording is held anyway
        logger.warning("case %s: what damaged item %r names is unreadable too (%s)", case_id, item_key[:100], exc)
        return hold
    if named is None:
        return hold
    return holds.Hold(events=named.events, paths=named.paths, windows=[*named.windows, *hold.windows])


@router.post("/{case_id}/close", response_model=CaseOut, summary="Close a case (lifts its legal hold)",
             description="From now on retention may delete the case's items again (unless another open case holds "
                         "them). Closing a closed case changes nothing.",
             responses={404: {"model": ErrorOut, "description": "No such case (or not yours)."}})
def close_case(user: Investigator, case_id: CaseId, client: RedisDep, store: ApiStoreDep) -> CaseOut:
    stamp = owner_stamp(store, user.username)
    _case(client, case_id, user, stamp)
    closed_now = _mark_closed(client, case_id, user.username)
    holds.rebuild(client)  # after the close removed the case's hold (again on a retry): a failure holds more
    if closed_now:
        logger.info("case %s closed by %s: legal hold lifted", case_id, user.username)
        store.audit(user.username, "case_close", {"case_id": case_id})
    return _out(_case(client, case_id, user, stamp))


def _mark_closed(client: redis.Redis, case_id: str, username: str) -> bool:
    """Mark the case closed (by whom, when) and remove its legal hold entries unless it already is, in one WATCHed
    step: of two closes at once only one records itself (the other finds it closed), and no closed case is left
    with a hold that nothing would ever lift; False when it was closed already. The held sets are recomputed after
    (:func:`pipeline.store.holds.rebuild`)."""

    def step(pipe: redis.client.Pipeline) -> bool:
        if pipe.hget(f"case:{case_id}", "status") == b"closed":
            return False
        pipe.multi()
        pipe.hset(f"case:{case_id}", mapping={"status": "closed", "closed_at": repr(time.time()),
                                              "closed_by": username})
        holds.queue_release(pipe, case_id)
        return True

    return client.transaction(step, f"case:{case_id}", value_from_callable=True)


class PackageTooLarge(Exception):
    """The files of a case package hold more bytes than its limit (one grew while it was being copied)."""


def _too_large(case_id: str, size: int | None, limit: int) -> HTTPException:
    """The 413 refusal of a case package: what is too large, by how much, and the limit."""
    held = f"{size} bytes" if size is not None else "more bytes than that (a file grew while it was packaged)"
    logger.warning("case %s package refused: %s, over the limit of %d bytes", case_id, held, limit)
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         f"case {case_id!r} is too large to package: its files hold {held}, over the limit of "
                         f"{limit} bytes (CCTV_CASE_PACKAGE_MAX_BYTES); split it into smaller cases")


def _source_size(src: Path | bytes) -> int:
    """The bytes a package entry would copy (a file that cannot be read counts 0: it fails when it is copied)."""
    if isinstance(src, bytes):
        return len(src)
    try:
        return src.stat().st_size
    except OSError:
        return 0


class _Budget:
    """The bytes a package may still take; :meth:`spend` raises :class:`PackageTooLarge` once they are spent."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise PackageTooLarge


def _write_hashed(zf: zipfile.ZipFile, src: Path, name: str, budget: _Budget) -> str:
    """Copy a file into the zip and return the SHA-256 of exactly the bytes written (one read: a file that changes
    meanwhile cannot leave the manifest vouching for other bytes than the package holds)."""
    digest = hashlib.sha256()
    info = zipfile.ZipInfo.from_file(src, name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with src.open("rb") as fh, zf.open(info, "w", force_zip64=True) as out:
        while chunk := fh.read(1 << 20):
            budget.spend(len(chunk))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Expected:
    """What a packaged file must hash to: the SHA-256 recorded when its clip was exported."""

    item: str
    sha256: str
    reason: str


@dataclass(frozen=True)
class Seal:
    """The signed manifest of a written package: its SHA-256, its signature's SHA-256 and the key's fingerprint."""

    manifest_sha256: str
    signature_sha256: str
    key_fingerprint: str


def _write_package(path: Path, case_id: str, files: list[tuple[str, Path | bytes]], manifest: dict,
                   expected: dict[str, Expected], budget: _Budget, key: SigningKey) -> Seal:
    """Write the zip of ``files`` and its manifest (which lists the SHA-256 of each and any clip or clip manifest
    altered since its export) to ``path``, with the manifest's detached signature, the public key and its
    fingerprint."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, src in files:
            if isinstance(src, Path):
                digest = _write_hashed(zf, src, name, budget)
            else:
                budget.spend(len(src))
                zf.writestr(name, src)
                digest = hashlib.sha256(src).hexdigest()
            manifest["files"].append({"path": name, "sha256": digest})
            if name in expected and expected[name].sha256 != digest:
                known = expected[name]
                logger.warning("case %s: %s of %s no longer has the SHA-256 recorded at export", case_id,
                               Path(name).name, known.item)
                manifest["altered"].append({"item": known.item, "path": name, "export_sha256": known.sha256,
                                            "sha256": digest, "reason": known.reason})
        body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
        signature = key.sign(body)
        zf.writestr(package_files.MANIFEST, body)
        zf.writestr(package_files.SIGNATURE, encode_signature(signature))
        zf.writestr(package_files.PUBLIC_KEY, key.public_pem)
        zf.writestr(package_files.FINGERPRINT, key.fingerprint + "\n")
    return Seal(hashlib.sha256(body).hexdigest(), hashlib.sha256(signature).hexdigest(), key.fingerprint)


def _iso(epoch: float) -> str:
    """``epoch`` as ISO 8601 UTC with ``Z`` (milliseconds), as the export manifests write times."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timed(name: str, epoch: float | None) -> dict[str, float | str | None]:
    """``{name: epoch, name_iso: its ISO form}``: every time of the manifest, as a number (as the API gives it) with
    its ISO 8601 UTC form next to it (both None when unknown)."""
    return {name: epoch, f"{name}_iso": _iso(epoch) if epoch is not None else None}


def _epoch(text: str | None) -> float | None:
    """A stored epoch time, None when missing or unreadable."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _case_custody(case: dict) -> dict:
    """Who opened the case and when; who closed it and when, once closed."""
    status_ = case.get("status") or "open"
    out = {**{k: case.get(k, "") for k in ("id", "name", "description", "created_by")},
           **_timed("created_at", _number(case, "created_at", 0.0)), "status": status_}
    if status_ == "closed":
        out["closed_by"] = case.get("closed_by") or None  # cases closed before it was recorded: None
        out.update(_timed("closed_at", _number(case, "closed_at", None)))
    return out


def _export_custody(job: dict[str, str]) -> dict:
    """A clip's export as its job recorded it on the server: requester, creation time, camera, window, hashes."""
    out = {"job_id": job.get("id", ""), "status": job.get("status", ""), "requester": job.get("requester", ""),
           "camera_id": job.get("camera_id", ""), **_timed("created_at", _epoch(job.get("created_at"))),
           "window": {**_timed("start", _epoch(job.get("start"))), **_timed("end", _epoch(job.get("end")))}}
    for field in ("sha256", "manifest_sha256"):
        if job.get(field):
            out[f"export_{field}"] = job[field]
    return out


def _custody_item(item: dict, export: dict | None) -> dict:
    """One case item: kind, ref, who added it and when (and for a clip, its export)."""
    damaged = item["kind"] == DAMAGED
    added_by = item.get("added_by")
    out = {"kind": item["kind"], "ref": item["ref"], "added_by": added_by if isinstance(added_by, str) else None,
           **_timed("added_at", None if damaged else float(item["added_at"]))}
    if export is not None:
        out["export"] = export
    return out


AUDIT_EXTRACT_MAX = 1000
"""Most audit records a package's extract holds: the first and last half of those that mention the case."""
AUDIT_SCAN_MAX = 200_000
"""Most audit records read for one extract (from the earliest time of the case and its exports on)."""
AUDIT_PARAMS_MAX = 2000
"""Longest parameters (JSON text) of one audit record in the extract; longer ones are cut."""


def _audit_record(sid: bytes, fields: dict[bytes, bytes]) -> dict:
    """One audit record for the extract."""
    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
    raw = text.get("params", "")
    try:
        params = json.loads(raw) if len(raw) <= AUDIT_PARAMS_MAX else {"truncated": raw[:AUDIT_PARAMS_MAX]}
    except (ValueError, RecursionError):
        params = {"unreadable": raw[:AUDIT_PARAMS_MAX]}
    return {"id": sid.decode(errors="replace"), **_timed("at", _epoch(text.get("at"))), "user": text.get("user", ""),
            "action": text.get("action", ""), "ip": text.get("ip", ""), "params": params,
            "results": text.get("results") or None, "status": text.get("status") or None}


def _audit_extract(client: redis.Redis, case_id: str, refs: list[str], since: float) -> dict:
    """The audit records that mention the case or one of its exports (who searched, viewed, exported, added,
    packaged, when), oldest first from ``since``: at most :data:`AUDIT_EXTRACT_MAX` (the first and the last half
    when more match; ``omitted`` says how many are left out) out of at most :data:`AUDIT_SCAN_MAX` read
    (``complete`` false when the scan stopped there)."""
    needles = [n.encode() for n in dict.fromkeys([case_id, *refs]) if n]
    half = AUDIT_EXTRACT_MAX // 2
    head: list[dict] = []
    tail: deque[dict] = deque(maxlen=AUDIT_EXTRACT_MAX - half)
    matched = scanned = 0
    start, complete = f"{max(0, int(since * 1000) - 60_000)}-0", False
    while scanned < AUDIT_SCAN_MAX:
        entries = client.xrange(AUDIT_STREAM, start, "+", count=min(1000, AUDIT_SCAN_MAX - scanned))
        if not entries:
            complete = True
            break
        for sid, fields in entries:
            if any(n in fields.get(b"params", b"") for n in needles):
                matched += 1
                (head if len(head) < half else tail).append(_audit_record(sid, fields))
        scanned += len(entries)
        start = "(" + entries[-1][0].decode()
    if not complete:
        logger.warning("case %s: audit extract stopped after %d records", case_id, scanned)
    return {"since_iso": _iso(max(0.0, since - 60)), "records": head + list(tail), "matched": matched,
            "omitted": matched - len(head) - len(tail), "complete": complete}


def _manifest(case: dict, user: User, missing: list[dict[str, str]], exports: dict[str, dict], audit: dict,
              key: SigningKey) -> dict:
    """The package manifest before its files are listed: the case, its items with their chain of custody, the
    audit extract and the signing key's fingerprint; times as epoch seconds (numbers, as the API gives them) each
    with its ISO 8601 UTC form next to it."""
    packaged = time.time()
    return {"format": "cctv-case-package/2", "package_id": uuid.uuid4().hex, "case": _case_custody(case),
            "status": case.get("status") or "open", "packaged_by": user.username, **_timed("packaged_at", packaged),
            "signing": {"algorithm": ALGORITHM, "public_key_fingerprint": key.fingerprint,
                        "signature_file": package_files.SIGNATURE, "public_key_file": package_files.PUBLIC_KEY},
            "items": [_custody_item(i, exports.get(i["ref"]) if i["kind"] == "clip" else None)
                      for i in case["items"]],
            "audit": audit, "files": [], "missing": missing, "altered": []}


def _signing_key() -> SigningKey:
    """The evidence signing key; 503 (nothing packaged) when it cannot be had."""
    try:
        return load_signing_key()[0]
    except EvidenceKeyError as exc:
        logger.error("case package refused: %s", exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the evidence signing key is unavailable; "
                                                                 "nothing was packaged (see the server log)") from None


CLIP_FILES = (("path", "clip", "sha256", "the clip's bytes differ from those hashed when it was exported"),
              ("manifest_path", "clip manifest", "manifest_sha256",
               "the clip manifest's bytes differ from those written when it was exported"))
"""A clip's files: job field of the path, what it is, job field of its SHA-256 at export, why a mismatch matters."""


@router.get("/{case_id}/package", summary="Download the case as a zip with a SHA-256 manifest",
            description="The manifest lists each file with the SHA-256 of the bytes in the zip, what could not be "
                        "included (`missing`, with the reason), any clip or clip manifest whose bytes no longer "
                        "match the SHA-256 recorded when it was exported (`altered`), each item's chain of custody "
                        "and an extract of the audit trail. It is signed (Ed25519, `manifest.sig`, with "
                        "`public-key.pem` and its fingerprint in the zip; the key also at "
                        "`/api/evidence/public-key`): check it with `python -m pipeline verify-package`.",
            responses={404: {"model": ErrorOut, "description": "No such case (or not yours)."},
                       413: {"model": ErrorOut, "description": "The case's files hold more bytes than "
                                                               "CCTV_CASE_PACKAGE_MAX_BYTES (default 4 GiB): "
                                                               "nothing is packaged; split the case."},
                       503: {"model": ErrorOut, "description": "The evidence signing key is unavailable: nothing "
                                                               "is packaged."}})
def package_case(user: Investigator, case_id: CaseId, client: RedisDep, store: ApiStoreDep,
                 settings: SettingsDep) -> FileResponse:
    stamp = owner_stamp(store, user.username)
    case = _case(client, case_id, user, stamp)
    files: list[tuple[str, Path | bytes]] = []
    missing: list[dict[str, str]] = []
    expected: dict[str, Expected] = {}  # zip name of a clip or its manifest -> the SHA-256 recorded at export
    exports: dict[str, dict] = {}  # clip ref -> its export's chain of custody
    root = settings.recordings_dir.resolve()
    for item in case["items"]:
        ref = f"{item['kind']}:{item['ref']}"
        if item["kind"] == DAMAGED:
            missing.append({"item": ref, "what": "case item", "reason": "the stored case item is unreadable"})
            continue
        if item["kind"] == "clip":
            try:
                job = get_job(client, item["ref"], user, stamp)
            except HTTPException:
                missing.append({"item": ref, "what": "export job", "reason": "the export job is gone"})
                continue
            exports[item["ref"]] = _export_custody(job)
            if job.get("status") != "done":
                missing.append({"item": ref, "what": "clip", "reason": f"the export is {job.get('status')}"})
                continue
            for field, what, hashed, why in CLIP_FILES:
                path = export_file(job, field, settings)  # only inside the exports or recordings folders
                if path is not None:
                    files.append((f"clips/{item['ref']}/{path.name}", path))
                    if job.get(hashed):  # jobs from before the manifest's hash was recorded: not compared
                        expected[f"clips/{item['ref']}/{path.name}"] = Expected(ref, job[hashed], why)
                else:
                    name = Path(job[field]).name if job.get(field) else "(none)"
                    missing.append({"item": ref, "what": what, "reason": f"file not found: {name}"})
            continue
        event = _event(client, item["kind"], item["ref"]) or _kept_event(item)
        if event is None:
            missing.append({"item": ref, "what": "event record", "reason": "the event is no longer in the store"})
            continue
        data = event.model_dump(mode="json", exclude={"embedding"})
        files.append((f"events/{item['kind']}-{item['ref']}.json", json.dumps(data, ensure_ascii=False).encode()))
        for what, rel in (("snapshot", event.snapshot_path), ("crop", event.crop_path)):
            if not rel:
                missing.append({"item": ref, "what": what, "reason": "the event has none"})
                continue
            path = (settings.recordings_dir / rel).resolve()
            if path.is_relative_to(root) and path.is_file():
                files.append((f"media/{rel}", path))
            else:
                missing.append({"item": ref, "what": what, "reason": f"file not found: {rel}"})
    limit = settings.case_package_max_bytes
    size = sum(_source_size(src) for _, src in files)
    if size > limit:
        raise _too_large(case_id, size, limit)
    key = _signing_key()
    since = min([_number(case, "created_at", 0.0) or 0.0,
                 *(e["created_at"] for e in exports.values() if e["created_at"] is not None)])
    audit = _audit_extract(client, case_id, list(exports), since)
    manifest = _manifest(case, user, missing, exports, audit, key)
    with tempfile.NamedTemporaryFile(suffix=".zip", delete=False) as tmp:
        pass
    try:
        seal = _write_package(Path(tmp.name), case_id, files, manifest, expected, _Budget(limit), key)
    except BaseException as exc:  # no partial zip is left behind
        Path(tmp.name).unlink(missing_ok=True)
        if isinstance(exc, PackageTooLarge):
            raise _too_large(case_id, None, limit) from None
        raise
    store.audit(user.username, "case_package", {"case_id": case_id, "package_id": manifest["package_id"],
                                                "manifest_sha256": seal.manifest_sha256,
                                                "signature_sha256": seal.signature_sha256,
                                                "key_fingerprint": seal.key_fingerprint}, len(files))
    logger.info("case %s packaged by %s: manifest sha256 %s signed by %s", case_id, user.username,
                seal.manifest_sha256, seal.key_fingerprint)
    return FileResponse(tmp.name, media_type="application/zip", filename=f"case-{case_id}.zip",
                        background=BackgroundTask(Path(tmp.name).unlink, missing_ok=True))
