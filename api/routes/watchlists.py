"""Plate and face watchlists and their entries (reading: investigator; changes: admin; all audited)."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import Admin, ApiStoreDep, Investigator, RedisDep, User
from api.ids import EntryId, WatchlistId, known_person_id
from api.limits import FORM_OVERHEAD
from api.plate_csv import BANGKOK, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, CsvRefused, CsvRows, read_rows, write_csv
from api.routes.cameras import check_camera_ids
from api.schemas.errors import ErrorOut, FieldErrorOut
from api.schemas.watchlists import (
    DuplicateEntryOut,
    EntryOut,
    EntryUpdate,
    FaceEntryCreate,
    ImportOut,
    ImportRefusedOut,
    ImportRowErrorOut,
    PlateEntryCreate,
    WatchlistCreate,
    WatchlistOut,
    WatchlistUpdate,
)
from api.validation import field_error
from pipeline.plates.provinces import match_province
from pipeline.store import WatchlistStore
from pipeline.store.watchlists import DuplicateEntryError, UnknownPersonError, split_plate_province

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/watchlists", tags=["watchlists"])

ONLY_FOR = {"plate": ("plate", "province", "fuzzy", "max_distance"), "face": ("threshold",)}
"""Entry fields that only one kind of watchlist has."""


def _out(w: dict, entries: int = 0) -> WatchlistOut:
    return WatchlistOut(id=w["id"], kind=w["kind"], name=w["name"], description=w.get("description", ""),
                        created_by=w.get("created_by", ""), created_at=float(w["created_at"]),
                        updated_at=float(w["updated_at"]), entries=entries)


def _get(wl: WatchlistStore, watchlist_id: str) -> dict:
    w = wl.get_watchlist(watchlist_id)
    if w is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist {watchlist_id!r} not found")
    return w


def visible_entry(user: User, entry: dict) -> dict | None:
    """The entry as ``user`` may see it: as stored for a user of every camera and for an entry of every camera
    (``cameras`` null); for a camera-limited user, with ``cameras`` cut to the user's own, or None when it names none
    of them (nor anything readable), so that nothing of other cameras is told."""
    cameras = entry.get("cameras")
    if user.cameras is None or cameras is None:
        return entry
    if not isinstance(cameras, list):
        logger.warning("watchlist entry %s has unreadable cameras; hidden from camera-limited users",
                       entry.get("entry_id"))
        return None
    mine = [c for c in cameras if isinstance(c, str) and user.sees(c)]
    return {**entry, "cameras": mine} if mine else None


def visible_entries(user: User, entries: list[dict]) -> list[dict]:
    """The entries ``user`` may see (:func:`visible_entry`), in their order."""
    return [seen for seen in (visible_entry(user, e) for e in entries) if seen is not None]


def _counts(wl: WatchlistStore, user: User, watchlist_ids: list[str]) -> dict[str, int]:
    """Entries of each watchlist that ``user`` may see: HLEN each for a user of every camera (no entry read), the
    visible ones counted for a camera-limited user."""
    if user.cameras is None:
        return wl.entry_counts(watchlist_ids)
    return {wid: len(visible_entries(user, wl.list_entries(wid))) for wid in watchlist_ids}


@router.get("", response_model=list[WatchlistOut], summary="List watchlists",
            description="Each with its number of entries: for a user limited to some cameras, only the entries they "
                        "may see (those for every camera or for one of theirs).")
def list_watchlists(user: Investigator, client: RedisDep) -> list[WatchlistOut]:
    wl = WatchlistStore(client)
    lists = wl.list_watchlists()
    counts = _counts(wl, user, [w["id"] for w in lists])
    return [_out(w, counts[w["id"]]) for w in lists]


@router.post("", response_model=WatchlistOut, status_code=201, summary="Create a watchlist")
def create_watchlist(body: WatchlistCreate, admin: Admin, client: RedisDep, store: ApiStoreDep) -> WatchlistOut:
    w = WatchlistStore(client).create_watchlist(body.kind, body.name, body.description, admin.username)
    store.audit(admin.username, "watchlist_create", {"watchlist_id": w["id"], **body.model_dump()})
    return _out(w)


@router.get("/{watchlist_id}", response_model=WatchlistOut, summary="One watchlist")
def get_watchlist(user: Investigator, watchlist_id: WatchlistId, client: RedisDep) -> WatchlistOut:
    wl = WatchlistStore(client)
    return _out(_get(wl, watchlist_id), _counts(wl, user, [watchlist_id])[watchlist_id])


@router.patch("/{watchlist_id}", response_model=WatchlistOut, summary="Rename or describe a watchlist")
def update_watchlist(body: WatchlistUpdate, admin: Admin, watchlist_id: WatchlistId, client: RedisDep,
                     store: ApiStoreDep) -> WatchlistOut:
    wl = WatchlistStore(client)
    _get(wl, watchlist_id)
    w = wl.update_watchlist(watchlist_id, **body.model_dump(exclude_none=True))
    store.audit(admin.username, "watchlist_update", {"watchlist_id": watchlist_id, **body.model_dump()})
    return _out(w, wl.entry_counts([watchlist_id])[watchlist_id])


AUDIT_ENTRY_FIELDS = ("entry_id", "plate", "province", "person_id", "reason", "severity", "fuzzy", "max_distance",
                      "threshold", "cameras", "expires_at", "enabled", "created_by", "created_at")
"""Fields of a watchlist entry kept in the audit records of its addition and removal."""


def audit_entry(entry: dict, person_names: dict[str, str] | None = None) -> dict:
    """What the audit trail keeps of an entry: the :data:`AUDIT_ENTRY_FIELDS` it has and, for a person entry, the
    person's name (``person_name``, from ``person_names``), so a reviewer can tell which plate or person it was."""
    out = {name: entry[name] for name in AUDIT_ENTRY_FIELDS if name in entry}
    person_id = entry.get("person_id")
    if isinstance(person_id, str) and person_names is not None:
        out["person_name"] = person_names.get(person_id)
    return out


def _names_of(wl: WatchlistStore, entries: list[dict]) -> dict[str, str]:
    """Names of the persons of ``entries`` (person entries only; one round trip)."""
    ids = sorted({e["person_id"] for e in entries if isinstance(e.get("person_id"), str)})
    return wl.person_names(ids) if ids else {}


@router.delete("/{watchlist_id}", status_code=204, summary="Delete a watchlist and its entries",
               description="Audited as `watchlist_delete` with the watchlist's name, kind and description and every "
                           "entry deleted with it (id, plate and province or person id and name, reason, severity, "
                           "who added it and when).")
def delete_watchlist(admin: Admin, watchlist_id: WatchlistId, client: RedisDep, store: ApiStoreDep) -> None:
    wl = WatchlistStore(client)
    deleted = wl.delete_watchlist(watchlist_id)
    if deleted is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist {watchlist_id!r} not found")
    names = _names_of(wl, deleted["entries"])
    store.audit(admin.username, "watchlist_delete", {
        "watchlist_id": watchlist_id, "name": deleted.get("name"), "kind": deleted.get("kind"),
        "description": deleted.get("description"), "created_by": deleted.get("created_by"),
        "entries_deleted": len(deleted["entries"]),
        "entries": [audit_entry(e, names) for e in deleted["entries"]]})


@router.get("/{watchlist_id}/entries", response_model=list[EntryOut], summary="Entries of a watchlist",
            description="A user limited to some cameras sees only the entries for every camera (`cameras` null) "
                        "and those naming one of theirs, with `cameras` cut to their own.")
def list_entries(user: Investigator, watchlist_id: WatchlistId, client: RedisDep) -> list[EntryOut]:
    wl = WatchlistStore(client)
    _get(wl, watchlist_id)
    return [EntryOut(**e) for e in visible_entries(user, wl.list_entries(watchlist_id))]


DUPLICATE = {409: {"model": DuplicateEntryOut, "description": "The watchlist already has an entry with this plate "
                                                              "and province (`entry_id` names it)."}}
"""The 409 of plate entry writes that would duplicate an entry."""
PERSON_DUPLICATE = {409: {"model": DuplicateEntryOut, "description": "The person is already on this watchlist "
                                                                     "(`entry_id` names the entry: edit it instead)."}}
"""The 409 of a person entry for a person already on the watchlist."""


def _duplicate(exc: DuplicateEntryError) -> JSONResponse:
    """The 409 answer naming the existing entry (``detail`` starts with the duplicated field)."""
    logger.info("refused a duplicate watchlist entry: %s", exc)
    body = DuplicateEntryOut(detail=f"{exc.field}: already in this watchlist as entry {exc.existing_id!r}",
                             entry_id=exc.existing_id)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)


def _audit_add(store: ApiStoreDep, admin: Admin, watchlist: dict, entry: dict, typed: dict,
               person_names: dict[str, str] | None = None) -> None:
    """Audit ``watchlist_entry_add``: the request body as typed and the entry as stored (its id, normalised plate
    and province, or person id and name)."""
    store.audit(admin.username, "watchlist_entry_add", {
        **typed, "watchlist_id": watchlist["id"], "watchlist_name": watchlist.get("name"),
        **audit_entry(entry, person_names)})


@router.post("/{watchlist_id}/plates", response_model=EntryOut, status_code=201, summary="Add a plate entry",
             responses=DUPLICATE)
def add_plate_entry(body: PlateEntryCreate, request: Request, admin: Admin, watchlist_id: WatchlistId,
                    client: RedisDep, store: ApiStoreDep) -> EntryOut | JSONResponse:
    wl = WatchlistStore(client)
    watchlist = _get(wl, watchlist_id)
    if watchlist["kind"] != "plate":
        raise HTTPException(422, "watchlist_id: this is a face watchlist")
    plate, typed = _check_plate(body.plate)
    province = _check_province(body.province, typed)
    check_camera_ids(request, body.cameras, "cameras")
    try:
        entry = wl.put_entry(watchlist_id, {**body.model_dump(), "plate": plate, "province": province,
                                            "created_by": admin.username})
    except DuplicateEntryError as exc:
        return _duplicate(exc)
    if entry is None:  # deleted between the check and the write
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist {watchlist_id!r} not found")
    _audit_add(store, admin, watchlist, entry, {"typed_plate": body.plate})
    return EntryOut(**entry)


@router.post("/{watchlist_id}/persons", response_model=EntryOut, status_code=201, summary="Add a person entry",
             description="A person is on a watchlist once: adding one already on it is refused (409, `entry_id` "
                         "names their entry; edit it with PATCH instead), and of two concurrent adds only one gets "
                         "in. A `person_id` that cannot name a person (a character other than letters, digits, `_` "
                         "and `-`, or a word of the store's own keys such as `ids`) is answered 404 like an unknown "
                         "person, as in a path. Audited as `watchlist_entry_add` with the entry id and the person's "
                         "name.",
             responses=PERSON_DUPLICATE)
def add_face_entry(body: FaceEntryCreate, request: Request, admin: Admin, watchlist_id: WatchlistId, client: RedisDep,
                   store: ApiStoreDep) -> EntryOut | JSONResponse:
    wl = WatchlistStore(client)
    watchlist = _get(wl, watchlist_id)
    if watchlist["kind"] != "face":
        raise HTTPException(422, "watchlist_id: this is a plate watchlist")
    check_camera_ids(request, body.cameras, "cameras")
    person = wl.get_person(known_person_id(body.person_id))
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"person {body.person_id!r} not found")
    try:
        entry = wl.put_entry(watchlist_id, {**body.model_dump(), "entry_id": body.person_id,
                                            "created_by": admin.username})
    except DuplicateEntryError as exc:
        return _duplicate(exc)
    except UnknownPersonError as exc:  # deleted between the check and the write
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    if entry is None:  # deleted between the check and the write
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist {watchlist_id!r} not found")
    _audit_add(store, admin, watchlist, entry, {}, {body.person_id: person.get("name", "")})
    return EntryOut(**entry)


REGISTRATION_MAX = 16
"""Longest normalised registration (Thai plates have at most 7 characters; foreign ones a few more)."""


def _check_plate(text: str) -> tuple[str, str | None]:
    """``(normalised registration, province or None)`` of a plate as typed (:func:`split_plate_province`), or 422
    when the registration is empty or too long."""
    plate, province = split_plate_province(text)
    if not plate:
        raise HTTPException(422, f"plate: nothing left of {text!r} after normalisation")
    if len(plate) > REGISTRATION_MAX:
        raise HTTPException(422, f"plate: the registration {plate!r} is longer than {REGISTRATION_MAX} characters")
    return plate, province


def _check_province(given: str | None, typed: str | None) -> str | None:
    """The Thai name of the province of a plate entry: ``given`` (Thai, Latin or alias, validated like the search
    filter) or else the one ``typed`` with the plate; 422 on ``province`` when unknown or not the typed one."""
    if given is None:
        return typed
    found = match_province(given, max_ratio=0.2)
    if found is None:
        raise field_error("province", f"unknown province {given!r}", "body")
    if typed is not None and typed != found.thai:
        raise field_error("province", f"{found.thai!r} is not the province typed with the plate ({typed!r})", "body")
    return found.thai


@router.patch("/{watchlist_id}/entries/{entry_id}", response_model=EntryOut, summary="Edit a watchlist entry",
              description="Changes reason, severity, expiry, cameras, enabled (false pauses the entry: kept "
                          "and listed, never alerts; true resumes it) and (plate entries) plate text, province, fuzzy "
                          "and max_distance or (person entries) threshold in place: the entry keeps its id, so its "
                          "past alerts stay linked. A new plate text is normalised (and unties the entry from its "
                          "province unless one is typed with it or given). A change that would duplicate another "
                          "entry's plate and province is refused (409). Bumps the watchlist version so the engine "
                          "re-reads the entries; audited as `watchlist_entry_update`.",
              responses=DUPLICATE)
def update_entry(body: EntryUpdate, request: Request, admin: Admin, watchlist_id: WatchlistId, entry_id: EntryId,
                 client: RedisDep, store: ApiStoreDep) -> EntryOut | JSONResponse:
    wl = WatchlistStore(client)
    kind = _get(wl, watchlist_id)["kind"]
    if wl.get_entry(watchlist_id, entry_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"entry {entry_id!r} not found in watchlist {watchlist_id!r}")
    changes = body.changes()
    other = "face" if kind == "plate" else "plate"
    for name in ONLY_FOR[other]:
        if name in changes:
            raise HTTPException(422, f"{name}: {kind} watchlist entries have no {name}")
    _plate_changes(changes)
    check_camera_ids(request, changes.get("cameras"), "cameras")
    try:
        result = wl.update_entry(watchlist_id, entry_id, changes)
    except DuplicateEntryError as exc:
        return _duplicate(exc)
    if result is None:  # removed between the check and the write
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"entry {entry_id!r} not found in watchlist {watchlist_id!r}")
    before, after = result
    store.audit(admin.username, "watchlist_entry_update", {
        "watchlist_id": watchlist_id, "entry_id": entry_id, "changes": changes,
        "before": {name: before.get(name) for name in changes}})
    return EntryOut(**after)


def _plate_changes(changes: dict) -> None:
    """Normalise the plate and province of a PATCH in place (422 on a bad one). A new plate without a typed or given
    province unties the entry from its province (the store clears it)."""
    typed = None
    if "plate" in changes:
        changes["plate"], typed = _check_plate(changes["plate"])
    if changes.get("province") is not None or typed is not None:
        changes["province"] = _check_province(changes.get("province"), typed)


@router.delete("/{watchlist_id}/entries/{entry_id}", status_code=204, summary="Remove an entry",
               description="Audited as `watchlist_entry_delete` with the watchlist's name and the entry as it was "
                           "(plate and province or person id and name, reason, severity, who added it and when).")
def delete_entry(admin: Admin, watchlist_id: WatchlistId, entry_id: EntryId, client: RedisDep,
                 store: ApiStoreDep) -> None:
    wl = WatchlistStore(client)
    watchlist = _get(wl, watchlist_id)
    removed = wl.delete_entry(watchlist_id, entry_id)
    if removed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"entry {entry_id!r} not found")
    store.audit(admin.username, "watchlist_entry_delete", {
        "watchlist_id": watchlist_id, "watchlist_name": watchlist.get("name"),
        **audit_entry(removed, _names_of(wl, [removed]))})


# -- CSV import and export ------------------------------------------------------------------------------------------
IMPORT_ERRORS_SHOWN = 100
"""Row errors listed in an import's answer (all are counted)."""
IMPORT_COLUMN = {"plate": "plate", "province": "province", "reason": "reason", "severity": "severity",
                 "expires_at": "expires"}
"""The CSV column of each entry field."""

IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": f"The request is over {MAX_IMPORT_BYTES + FORM_OVERHEAD} bytes (refused "
                                            f"before it is read), the file over {MAX_IMPORT_BYTES} bytes, or it "
                                            f"has more than {MAX_IMPORT_ROWS} rows."},
    415: {"model": ErrorOut, "description": "The file is not UTF-8 or Windows-874/TIS-620 text (UTF-16, a NUL byte, "
                                            "binary): `detail` names the line and column."},
    422: {"model": ImportRefusedOut, "description": "The file is not a usable CSV (no header, unknown or repeated "
                                                    "column, unreadable line: `detail` names the line), or rows are "
                                                    "invalid and `invalid=refuse`: nothing was written, `result` "
                                                    "holds the counts and the first row errors."},
}


def _bangkok_expiry(text: str) -> float | None:
    """The ``expires`` cell as epoch seconds: empty -> None; an ISO date alone means the end of that day, an ISO time
    without a zone is Bangkok time. ValueError says what is wrong."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not an ISO date or time (2026-12-31 or 2026-12-31T18:00)") from None
    if when.year > 2400:
        raise ValueError(f"{text[:40]!r} looks like a Buddhist-era year; give the Common Era year (minus 543)")
    if len(text) == 10:  # a date alone: valid through that day
        when = when.replace(hour=23, minute=59, second=59)
    if when.tzinfo is None:
        when = when.replace(tzinfo=BANGKOK)
    return when.timestamp()


def _pydantic_errors(exc: ValidationError) -> list[tuple[str | None, str]]:
    return [(IMPORT_COLUMN.get(str(err["loc"][0])) if err["loc"] else None, err["msg"].removeprefix("Value error, "))
            for err in exc.errors()]


def import_row(cells: dict[str, str]) -> tuple[dict | None, list[tuple[str | None, str]]]:
    """One CSV row as a plate entry checked exactly as ``POST /plates`` checks one (:class:`PlateEntryCreate`,
    :func:`_check_plate`, :func:`_check_province`), or ``(None, [(column, reason), ...])``."""
    try:
        expires_at = _bangkok_expiry(cells.get("expires", ""))
    except ValueError as exc:
        return None, [("expires", str(exc))]
    fields = {"plate": cells.get("plate", ""), "province": cells.get("province") or None,
              "reason": cells.get("reason", ""), "severity": cells.get("severity") or "medium",
              "expires_at": expires_at}
    try:
        body = PlateEntryCreate.model_validate(fields)
        plate, typed = _check_plate(body.plate)
        province = _check_province(body.province, typed)
    except ValidationError as exc:
        return None, _pydantic_errors(exc)
    except HTTPException as exc:
        return None, [("plate", str(exc.detail).removeprefix("plate: "))]
    except RequestValidationError as exc:
        return None, [("province", str(exc.errors()[0]["msg"]))]
    return {**body.model_dump(), "plate": plate, "province": province}, []


def _check_rows(read: CsvRows) -> tuple[list[dict], list[ImportRowErrorOut], int]:
    """The valid entries of an import, its row errors (in file order) and the number of invalid rows; a plate and
    province given twice is refused on its later line."""
    errors = [ImportRowErrorOut(line=line, column=column, reason=reason) for line, column, reason in read.errors]
    invalid = {line for line, _, _ in read.errors}
    entries: list[dict] = []
    seen: dict[tuple[str, str | None], int] = {}
    for line, cells in read.rows:
        entry, problems = import_row(cells)
        if entry is not None:
            identity = (entry["plate"], entry["province"])
            if identity in seen:
                problems = [("plate", f"same plate and province as line {seen[identity]}")]
            else:
                seen[identity] = line
                entries.append(entry)
        for column, reason in problems:
            invalid.add(line)
            errors.append(ImportRowErrorOut(line=line, column=column, reason=reason))
    errors.sort(key=lambda e: e.line)
    return entries, errors, len(invalid)


def _read_upload(file: UploadFile) -> bytes:
    """The uploaded file's bytes, 413 past :data:`MAX_IMPORT_BYTES` (the body guard already bounds the request)."""
    data = file.file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"file: larger than {MAX_IMPORT_BYTES} bytes")
    return data


@router.post("/{watchlist_id}/plates/import", response_model=ImportOut, summary="Import plate entries from CSV",
             description=f"A `multipart/form-data` upload (field `file`) of a CSV file of at most {MAX_IMPORT_BYTES} "
                         f"bytes and {MAX_IMPORT_ROWS} rows, in UTF-8 (with or without a byte-order mark) or "
                         "Windows-874/TIS-620 (Thai Excel). The first line names the columns: `plate` (required), "
                         "`province`, `reason`, `severity` (low, medium, high, critical; empty = medium), `expires` "
                         "(ISO date or time; no zone = Asia/Bangkok; a date alone = the end of that day; empty = "
                         "never). Each row is checked as `POST /plates` checks one entry; imported entries alert on "
                         "every camera. A plate and province already on the list is skipped or (`on_duplicate="
                         "update`) has its reason, severity and expiry replaced; the same plate and province twice "
                         "in the file is an invalid row. With `invalid=refuse` (the default) any invalid row refuses "
                         "the whole file (422, nothing written); `invalid=skip` writes the valid rows. `dry_run=true` "
                         "answers the same counts and errors without writing. The write is one transaction (the "
                         "engine sees every row or none) and is audited once as `watchlist_import` with the file "
                         "name, its SHA-256 and the counts.",
             responses=IMPORT_RESPONSES)
def import_plates(admin: Admin, watchlist_id: WatchlistId, client: RedisDep, store: ApiStoreDep,
                  file: Annotated[UploadFile, File(description="The CSV file.")],
                  dry_run: Annotated[bool, Query(description="Only count and check; write nothing.")] = False,
                  on_duplicate: Annotated[Literal["skip", "update"], Query(
                      description="What to do with a plate already on the list.")] = "skip",
                  invalid: Annotated[Literal["refuse", "skip"], Query(
                      description="refuse: any invalid row refuses the file; skip: write the valid rows.")] = "refuse",
                  ) -> ImportOut | JSONResponse:
    wl = WatchlistStore(client)
    if _get(wl, watchlist_id)["kind"] != "plate":
        raise HTTPException(422, "watchlist_id: this is a face watchlist")
    data = _read_upload(file)
    digest = hashlib.sha256(data).hexdigest()
    try:
        read = read_rows(data)
    except CsvRefused as exc:
        logger.info("refused the CSV import %r into watchlist %s: %s", file.filename, watchlist_id, exc.message)
        raise HTTPException(exc.status, exc.message) from None
    entries, errors, bad = _check_rows(read)
    result = ImportOut(dry_run=dry_run, rows=len(read.rows) + len(read.errors), added=0, updated=0, skipped=0,
                       invalid=bad, errors=errors[:IMPORT_ERRORS_SHOWN],
                       errors_truncated=len(errors) > IMPORT_ERRORS_SHOWN, sha256=digest)
    if bad and invalid == "refuse":
        return _refused_import(result)
    counts = wl.import_plate_entries(watchlist_id, entries, on_duplicate, admin.username, dry_run=dry_run)
    if counts is None:  # deleted meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist {watchlist_id!r} not found")
    result = result.model_copy(update=counts)
    if not dry_run:
        store.audit(admin.username, "watchlist_import", {
            "watchlist_id": watchlist_id, "file_name": (file.filename or "")[:200], "sha256": digest,
            "encoding": read.encoding, "on_duplicate": on_duplicate, "invalid_rows": invalid, "rows": result.rows,
            **counts, "invalid": bad})
    return result


def _refused_import(result: ImportOut) -> JSONResponse:
    """The 422 of an all-or-nothing import with invalid rows (nothing written)."""
    first = result.errors[0]
    body = ImportRefusedOut(
        detail=f"{result.invalid} invalid row(s), the first at line {first.line}"
               f"{f' ({first.column})' if first.column else ''}: {first.reason}; nothing was written "
               f"(fix them, or import with invalid=skip)",
        errors=[FieldErrorOut(field=f"line {e.line}" + (f": {e.column}" if e.column else ""), message=e.reason)
                for e in result.errors],
        result=result)
    return JSONResponse(body.model_dump(), status_code=422)


@router.get("/{watchlist_id}/plates/export", summary="Export plate entries as CSV",
            description="The plate entries as a CSV file (columns plate, province, reason, severity, expires in "
                        "Bangkok time), UTF-8 with a byte-order mark so that Excel shows Thai; cells that a "
                        "spreadsheet would run as a formula (= + - @, tab, CR first) are prefixed with a single "
                        "quote (an import takes it off again). A user limited to some cameras gets only the entries "
                        "they may see. Audited as `watchlist_export`.",
            response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The CSV."}})
def export_plates(user: Investigator, watchlist_id: WatchlistId, client: RedisDep, store: ApiStoreDep) -> Response:
    wl = WatchlistStore(client)
    watchlist = _get(wl, watchlist_id)
    if watchlist["kind"] != "plate":
        raise HTTPException(422, "watchlist_id: this is a face watchlist")
    entries = visible_entries(user, wl.list_entries(watchlist_id))
    body = write_csv(entries)
    store.audit(user.username, "watchlist_export", {"watchlist_id": watchlist_id,
                                                    "watchlist_name": watchlist.get("name"), "entries": len(entries),
                                                    "sha256": hashlib.sha256(body).hexdigest()})
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="watchlist-{watchlist_id}.csv"'})


import_plates.max_upload_bytes = MAX_IMPORT_BYTES  # type: ignore[attr-defined]  # the body guard's limit (api.limits)
