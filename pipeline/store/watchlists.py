"""WatchlistStore: plate and face watchlists and enrolled persons in Redis (see :mod:`pipeline.store.keys`).

The API writes through the ``create_*``/``put_*``/``delete_*`` methods; the engine reads the active entries with
:meth:`WatchlistStore.plate_entries` / :meth:`WatchlistStore.face_entries` and re-reads only when
:meth:`WatchlistStore.version` changed. Every change runs in one MULTI/EXEC together with ``INCR wl:version``.

An entry's ``enabled`` flag pauses it without deleting it: a disabled entry is never handed to the engine. Entries
stored before the flag existed (no ``enabled`` field, or null) count as enabled.

:meth:`WatchlistStore.claim_alert` keeps the engine's per-(entry, camera, plate) alert cooldown in Redis
(``wl:cooldown:<digest>``, a string with a TTL), so that it survives an engine restart and is shared by engines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import unicodedata
import uuid
from typing import Any, Literal

import numpy as np
import redis
from pydantic import BaseModel, ConfigDict, Field

from pipeline.plates.grammar import is_valid_plate
from pipeline.plates.provinces import province_by_name
from pipeline.store import keys
from pipeline.store.plates import normalise_plate

logger = logging.getLogger(__name__)

Severity = Literal["low", "medium", "high", "critical"]


class PlateWatchEntry(BaseModel):
    """An active plate watchlist entry as the engine's matcher needs it."""

    watchlist_id: str
    entry_id: str
    plate: str = Field(description="Normalised plate text.")
    province: str | None = Field(default=None, description="Province (Thai) the entry is tied to; None = any province. "
                                                            "A read of another province does not match.")
    fuzzy: bool = False
    max_distance: float = 0.0
    reason: str = ""
    severity: Severity = "medium"
    cameras: list[str] | None = None
    expires_at: float | None = None


class FaceWatchEntry(BaseModel):
    """An active face watchlist entry (a person) with the person's embeddings."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    watchlist_id: str
    person_id: str
    name: str
    threshold: float
    embeddings: np.ndarray = Field(description="[k, d] float32, L2-normalised rows.")
    reason: str = ""
    severity: Severity = "medium"
    cameras: list[str] | None = None
    expires_at: float | None = None


def new_id() -> str:
    """A short random id for watchlists, entries and persons."""
    return uuid.uuid4().hex[:16]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_object(raw: Any) -> dict | None:
    """A stored JSON object, or None when ``raw`` is not one (bad JSON, bad UTF-8, another JSON type)."""
    try:
        value = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _created_at(entry: dict) -> float:
    """An entry's creation time for sorting (0 when missing or not a number)."""
    value = entry.get("created_at", 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def is_enabled(entry: dict) -> bool:
    """Whether a stored entry is enabled: only an explicit ``enabled: false`` pauses it (older entries lack the
    field and count as enabled)."""
    return entry.get("enabled") is not False


COOLDOWN_PREFIX = "wl:cooldown:"
"""Prefix of the alert cooldown keys (STRING holding the alert id that opened the window, with a TTL)."""


def cooldown_key(watchlist_id: str, entry_id: str, camera_id: str, plate: str) -> str:
    """Redis key of the alert cooldown of one (entry, camera, plate): a digest, so that ids holding ``:`` or long
    camera names cannot collide with or bloat other keys."""
    digest = hashlib.sha1(json.dumps([watchlist_id, entry_id, camera_id, plate]).encode()).hexdigest()
    return f"{COOLDOWN_PREFIX}{digest}"


def _number(raw: Any) -> float:
    """A stored time as a float (0 when missing or not a number), for sorting."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0


_MAX_PROVINCE_TOKENS = 3
"""Most whitespace-separated words a province name is typed in (``Prachuap Khiri Khan``)."""

_GLUED_PROVINCE = re.compile(r"^(.*[0-9\u0e50-\u0e59])([^0-9\u0e50-\u0e59]+)$")
"""A token whose registration number runs straight into the province name (``1234กรุงเทพมหานคร``)."""


def _province_span(tokens: list[str]) -> tuple[int, int, str] | None:
    """The longest run of tokens ``tokens[i:j]`` that names a province, as ``(i, j, thai name)``, or None."""
    for size in range(min(_MAX_PROVINCE_TOKENS, len(tokens)), 0, -1):
        for i in range(len(tokens) - size + 1):
            province = province_by_name(" ".join(tokens[i:i + size]))
            if province is not None:
                return i, i + size, province.thai
    return None


def split_plate_province(text: str) -> tuple[str, str | None]:
    """``(normalised registration, Thai province name or None)`` of a plate as an operator types it.

    The province may be typed before, after or (motorcycle plates, in their line order ``1กช ภูเก็ต 4986``) between
    the series and the number, in Thai, Latin or a common alias (``กทม``, ``Bangkok``), or glued to the number
    (``1กข1234กรุงเทพมหานคร``). It is split off only when what remains is a valid Thai registration, so a foreign
    plate that happens to spell a province alias keeps its text. Without this, the province's consonants (and its
    Latin letters, read as digit look-alikes) would be kept in the registration and the entry would never match.
    """
    tokens = unicodedata.normalize("NFKC", text or "").split()
    span = _province_span(tokens)
    if span is not None:
        i, j, thai = span
        rest = "".join(tokens[:i] + tokens[j:])
        if is_valid_plate(rest):
            return normalise_plate(rest), thai
    if tokens:
        glued = _GLUED_PROVINCE.match(tokens[-1])
        if glued is not None:
            province = province_by_name(glued.group(2))
            rest = "".join(tokens[:-1]) + glued.group(1)
            if province is not None and is_valid_plate(rest):
                return normalise_plate(rest), province.thai
    return normalise_plate(text or ""), None


def _with_plate(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with a ``plate`` text replaced by its normalised registration and ``province`` set from it."""
    if "plate" not in fields:
        return fields
    plate, province = split_plate_province(fields["plate"])
    return {**fields, "plate": plate, "province": province or fields.get("province")}


class DuplicateEntryError(Exception):
    """An entry would duplicate another entry of the same watchlist: a plate entry with the same registration and
    province, or a person entry for a person already on the list (``field`` names what is duplicated:
    ``plate`` or ``person_id``)."""

    def __init__(self, watchlist_id: str, existing_id: str, field: str = "plate") -> None:
        super().__init__(f"watchlist {watchlist_id!r} already has this {field} as entry {existing_id!r}")
        self.watchlist_id = watchlist_id
        self.existing_id = existing_id
        self.field = field


class UnknownPersonError(Exception):
    """A person entry names a person who does not exist (never enrolled, or deleted meanwhile)."""

    def __init__(self, person_id: str) -> None:
        super().__init__(f"person {person_id!r} not found")
        self.person_id = person_id


def plate_identity(entry: dict) -> tuple[str, str | None] | None:
    """``(normalised registration, province or None)`` that makes a plate entry unique in its watchlist, or None for
    an entry without a plate (person entries)."""
    plate = entry.get("plate")
    if not isinstance(plate, str) or not plate:
        return None
    province = entry.get("province")
    return normalise_plate(plate), province if isinstance(province, str) and province else None


def find_duplicate(entries: dict[str, Any], entry: dict) -> str | None:
    """Id of a stored entry (``entries``: entry id -> raw JSON) with the same :func:`plate_identity` as ``entry``
    (``entry`` itself, by ``entry_id``, excluded), or None."""
    identity = plate_identity(entry)
    if identity is None:
        return None
    for key, raw in entries.items():
        other = _json_object(raw)
        if other is None or _s(key) == entry.get("entry_id"):
            continue
        if plate_identity(other) == identity:
            return _s(key)
    return None


def find_person_entry(entries: dict[str, Any], person_id: str) -> str | None:
    """Id of a stored entry (``entries``: entry id -> raw JSON) for ``person_id``, or None: a person entry's id is
    the person id, and an entry written with another id but the same ``person_id`` counts too."""
    if person_id in {_s(key) for key in entries}:
        return person_id
    for key, raw in entries.items():
        other = _json_object(raw)
        if other is not None and other.get("person_id") == person_id:
            return _s(key)
    return None


def normalise_rows(embeddings: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of a [k, d] matrix (float32)."""
    mat = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, 1e-12)


class WatchlistStore:
    """Reads (engine) and writes (API) watchlists, their entries and enrolled persons."""

    def __init__(self, client: redis.Redis):
        self.client = client

    # -- reading (engine) -------------------------------------------------------------------------------------
    def version(self) -> int:
        """Counter bumped on every watchlist or person change."""
        raw = self.client.get(keys.WATCHLIST_VERSION)
        return int(raw) if raw else 0

    def _lists_with_entries(self, kind: str) -> list[tuple[dict[str, str], dict[str, dict]]]:
        """The watchlists of ``kind`` with their decoded entries; an entry that is not a JSON object is skipped
        with a warning (one damaged record must not hide every other watchlist entry from the engine)."""
        lists = [w for w in self.list_watchlists() if w.get("kind") == kind]
        pipe = self.client.pipeline(transaction=False)
        for w in lists:
            pipe.hgetall(keys.watchlist_entries(w["id"]))
        out = []
        for w, raw in zip(lists, pipe.execute(), strict=True):
            entries: dict[str, dict] = {}
            for k, v in raw.items():
                entry = _json_object(v)
                if entry is None:
                    logger.warning("watchlist %s: entry %s is not a JSON object; skipping it", w["id"], _s(k))
                    continue
                entries[_s(k)] = entry
            out.append((w, entries))
        return out

    def plate_entries(self, now: float | None = None) -> list[PlateWatchEntry]:
        """Active (enabled and unexpired) plate entries of every plate watchlist."""
        now = time.time() if now is None else now
        entries = []
        for w, raw in self._lists_with_entries("plate"):
            for entry_id, entry in raw.items():
                try:
                    if not is_enabled(entry) or (entry.get("expires_at") is not None and entry["expires_at"] <= now):
                        continue
                    entries.append(PlateWatchEntry(watchlist_id=w["id"], **{
                        k: entry[k] for k in ("entry_id", "plate", "province", "fuzzy", "max_distance", "reason",
                                              "severity", "cameras", "expires_at")
                        if entry.get(k) is not None  # a field missing (older entry) or null takes its default
                    }))
                except (TypeError, ValueError) as exc:  # a field of the wrong type (ValidationError is a ValueError)
                    logger.warning("watchlist %s: plate entry %s is malformed (%s); skipping it", w["id"], entry_id,
                                   type(exc).__name__)
        return entries

    def face_entries(self, now: float | None = None) -> list[FaceWatchEntry]:
        """Active (enabled and unexpired) face entries (persons on face watchlists) with their L2-normalised
        embeddings."""
        now = time.time() if now is None else now
        entries = []
        persons: dict[str, dict | None] = {}
        for w, raw in self._lists_with_entries("face"):
            for entry_id, entry in raw.items():
                try:
                    if not is_enabled(entry) or (entry.get("expires_at") is not None and entry["expires_at"] <= now):
                        continue
                    pid = str(entry["person_id"])
                    if pid not in persons:
                        persons[pid] = self.get_person(pid, with_embeddings=True)
                    person = persons[pid]
                    if person is None or person["embeddings"].size == 0:
                        continue
                    entries.append(FaceWatchEntry(
                        watchlist_id=w["id"], person_id=pid, name=person.get("name", ""), threshold=entry["threshold"],
                        embeddings=person["embeddings"], reason=entry.get("reason") or "",
                        severity=entry.get("severity") or "medium", cameras=entry.get("cameras"),
                        expires_at=entry.get("expires_at"),
                    ))
                except (KeyError, TypeError, ValueError) as exc:
                    logger.warning("watchlist %s: face entry %s is malformed (%s); skipping it", w["id"], entry_id,
                                   type(exc).__name__)
        return entries

    # -- watchlists -------------------------------------------------------------------------------------------
    def list_watchlists(self) -> list[dict[str, str]]:
        """Metadata of every watchlist, sorted by creation time."""
        ids = sorted(_s(i) for i in self.client.smembers(keys.WATCHLIST_IDS))
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.hgetall(keys.watchlist(wid))
        lists = [{"id": wid, **{_s(k): _s(v) for k, v in raw.items()}}
                 for wid, raw in zip(ids, pipe.execute(), strict=True) if raw]
        return sorted(lists, key=lambda w: (_number(w.get("created_at")), w["id"]))

    def get_watchlist(self, watchlist_id: str) -> dict[str, str] | None:
        """Metadata of one watchlist, or None."""
        raw = self.client.hgetall(keys.watchlist(watchlist_id))
        return {_s(k): _s(v) for k, v in raw.items()} or None

    def create_watchlist(self, kind: Literal["plate", "face"], name: str, description: str = "",
                         created_by: str = "") -> dict[str, str]:
        """Create an empty watchlist and return its metadata."""
        now = repr(time.time())
        meta = {"id": new_id(), "kind": kind, "name": name, "description": description,
                "created_by": created_by, "created_at": now, "updated_at": now}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.watchlist(meta["id"]), mapping=meta)
        pipe.sadd(keys.WATCHLIST_IDS, meta["id"])
        pipe.incr(keys.WATCHLIST_VERSION)
        pipe.execute()
        return meta

    def update_watchlist(self, watchlist_id: str, **changes: str) -> dict[str, str] | None:
        """Update name/description; None if the watchlist does not exist."""
        if self.get_watchlist(watchlist_id) is None:
            return None
        fields = {k: v for k, v in changes.items() if k in ("name", "description") and v is not None}
        fields["updated_at"] = repr(time.time())
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.watchlist(watchlist_id), mapping=fields)
        pipe.incr(keys.WATCHLIST_VERSION)
        pipe.execute()
        return self.get_watchlist(watchlist_id)

    def delete_watchlist(self, watchlist_id: str) -> dict | None:
        """Delete a watchlist and its entries; returns its metadata as it was with ``entries``, the entries deleted
        with it (read in the same transaction as the deletion, for the audit trail), or None if it did not exist."""
        meta_key, entries_key = keys.watchlist(watchlist_id), keys.watchlist_entries(watchlist_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(meta_key)
        pipe.hgetall(entries_key)
        pipe.srem(keys.WATCHLIST_IDS, watchlist_id)
        pipe.delete(meta_key, entries_key)
        pipe.incr(keys.WATCHLIST_VERSION)
        meta, raw_entries, removed, _, _ = pipe.execute()
        if not removed:
            return None
        entries = []
        for key, raw in raw_entries.items():
            entry = _json_object(raw)
            entries.append({**(entry or {}), "entry_id": _s(key)})
        entries.sort(key=lambda e: (_created_at(e), e["entry_id"]))
        return {"id": watchlist_id, **{_s(k): _s(v) for k, v in meta.items()}, "entries": entries}

    # -- entries ----------------------------------------------------------------------------------------------
    def entry_counts(self, watchlist_ids: list[str]) -> dict[str, int]:
        """Number of entries of each watchlist (expired and disabled ones included), one ``HLEN`` each in a single
        round trip: no entry is read or decoded."""
        pipe = self.client.pipeline(transaction=False)
        for wid in watchlist_ids:
            pipe.hlen(keys.watchlist_entries(wid))
        return {wid: int(n) for wid, n in zip(watchlist_ids, pipe.execute(), strict=True)}

    def list_entries(self, watchlist_id: str) -> list[dict]:
        """Raw entries of a watchlist (expired ones included), sorted by creation time."""
        raw = self.client.hgetall(keys.watchlist_entries(watchlist_id))
        entries = []
        for k, v in raw.items():
            entry = _json_object(v)
            if entry is None or not isinstance(entry.get("entry_id"), str):
                logger.warning("watchlist %s: entry %s is damaged; not listed", watchlist_id, _s(k))
                continue
            entries.append(entry)
        return sorted(entries, key=lambda e: (_created_at(e), e["entry_id"]))

    def get_entry(self, watchlist_id: str, entry_id: str) -> dict | None:
        """One raw entry, or None."""
        raw = self.client.hget(keys.watchlist_entries(watchlist_id), entry_id)
        entry = _json_object(raw) if raw else None
        if raw and entry is None:
            logger.warning("watchlist %s: entry %s is damaged; treated as missing", watchlist_id, entry_id)
        return entry

    def put_entry(self, watchlist_id: str, entry: dict) -> dict | None:
        """Insert or replace an entry (``entry_id`` is created if absent; plates are normalised, a province typed
        with them is moved to ``province``: :func:`split_plate_province`); None when the
        watchlist does not exist (deleted meanwhile: the write is made only while it exists, ``WATCH``, so that a
        concurrent delete cannot leave a headless watchlist behind).

        Raises :class:`UnknownPersonError` for a person entry whose person does not exist (deleted meanwhile: the
        person's record is watched too, so an entry never outlives a concurrent :meth:`delete_person`), and
        :class:`DuplicateEntryError` when another entry of the watchlist has the same plate and province, or
        when the entry is for a person already on the watchlist (a person entry is added once and edited with
        :meth:`update_entry`; both checked inside the same ``WATCH``, so two concurrent adds cannot both get in)."""
        entry = _with_plate(dict(entry))
        entry.setdefault("entry_id", entry.get("person_id") or new_id())
        entry.setdefault("created_at", time.time())
        entry["updated_at"] = time.time()
        meta, entries_key = keys.watchlist(watchlist_id), keys.watchlist_entries(watchlist_id)
        person_key = keys.person(entry["person_id"]) if entry.get("person_id") else None
        watched = (meta, entries_key) if person_key is None else (meta, entries_key, person_key)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*watched)
                    if not pipe.exists(meta):
                        pipe.reset()
                        return None
                    if person_key is not None and not pipe.exists(person_key):
                        pipe.reset()
                        raise UnknownPersonError(entry["person_id"])
                    self._refuse_duplicate(pipe, watchlist_id, entry)
                    self._refuse_person_again(pipe, watchlist_id, entry)
                    pipe.multi()
                    pipe.hset(entries_key, entry["entry_id"],
                              json.dumps(entry, ensure_ascii=False))
                    pipe.hset(meta, "updated_at", repr(time.time()))
                    pipe.incr(keys.WATCHLIST_VERSION)
                    pipe.execute()
                    return entry
                except redis.WatchError:
                    continue

    def update_entry(self, watchlist_id: str, entry_id: str, changes: dict[str, Any]) -> tuple[dict, dict] | None:
        """Change fields of an existing entry in place (same ``entry_id``; a new plate text is normalised).

        The read-modify-write is optimistic (``WATCH`` on the entries hash, retried on a concurrent change) and
        bumps ``wl:version`` in the same transaction, so the engine re-reads the entry. A change of plate or province
        that would duplicate another entry raises :class:`DuplicateEntryError`. ``entry_id``,
        ``person_id``, ``created_at`` and ``created_by`` are never changed. Returns ``(before, after)`` or None if
        the entry does not exist.
        """
        fixed = {"entry_id", "person_id", "created_at", "created_by"}
        changes = _with_plate({k: v for k, v in changes.items() if k not in fixed})
        key = keys.watchlist_entries(watchlist_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hget(key, entry_id)
                    if raw is None:
                        pipe.reset()
                        return None
                    before = json.loads(raw)
                    after = {**before, **changes, "updated_at": time.time()}
                    if "plate" in changes or "province" in changes:
                        self._refuse_duplicate(pipe, watchlist_id, after)
                    pipe.multi()
                    pipe.hset(key, entry_id, json.dumps(after, ensure_ascii=False))
                    pipe.hset(keys.watchlist(watchlist_id), "updated_at", repr(time.time()))
                    pipe.incr(keys.WATCHLIST_VERSION)
                    pipe.execute()
                    return before, after
                except redis.WatchError:
                    logger.debug("entry %s of watchlist %s changed concurrently; retrying", entry_id, watchlist_id)

    def import_plate_entries(self, watchlist_id: str, rows: list[dict], on_duplicate: Literal["skip", "update"],
                             created_by: str = "", dry_run: bool = False) -> dict[str, int] | None:
        """Add many plate entries at once (a hot-list import); ``rows`` are entries with a normalised ``plate`` and
        ``province`` (no two with the same :func:`plate_identity`: the caller refuses such rows).

        A row whose plate and province are already on the watchlist is skipped (``on_duplicate="skip"``) or
        updates that entry in place (``"update"``: its reason, severity and expiry; id, creation and cameras kept).
        The entries are read and written under ``WATCH`` and the write is one MULTI/EXEC with the ``wl:version``
        bump, so the engine sees all rows or none, and a concurrent add of one of the plates cannot make a duplicate.
        ``dry_run`` counts without writing. Returns ``{"added", "updated", "skipped"}``, or None when the watchlist
        does not exist."""
        meta, entries_key = keys.watchlist(watchlist_id), keys.watchlist_entries(watchlist_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(meta, entries_key)
                    if not pipe.exists(meta):
                        pipe.reset()
                        return None
                    writes, counts = self._plan_import(pipe.hgetall(entries_key), rows, on_duplicate, created_by)
                    if dry_run or not writes:
                        pipe.reset()
                        return counts
                    pipe.multi()
                    pipe.hset(entries_key, mapping={eid: json.dumps(e, ensure_ascii=False)
                                                    for eid, e in writes.items()})
                    pipe.hset(meta, "updated_at", repr(time.time()))
                    pipe.incr(keys.WATCHLIST_VERSION)
                    pipe.execute()
                    return counts
                except redis.WatchError:
                    logger.debug("watchlist %s changed during an import; retrying", watchlist_id)

    @staticmethod
    def _plan_import(stored: dict[Any, Any], rows: list[dict], on_duplicate: str,
                     created_by: str) -> tuple[dict[str, dict], dict[str, int]]:
        """The entries an import writes (entry id -> entry) and its counts, given the stored entries."""
        existing: dict[tuple[str, str | None], dict] = {}
        for key, raw in stored.items():
            entry = _json_object(raw)
            identity = plate_identity(entry) if entry is not None else None
            if identity is not None:
                existing.setdefault(identity, {**entry, "entry_id": _s(key)})
        now = time.time()
        writes: dict[str, dict] = {}
        counts = {"added": 0, "updated": 0, "skipped": 0}
        for row in rows:
            old = existing.get(plate_identity(row))  # type: ignore[arg-type]
            if old is None:
                entry = {**row, "entry_id": new_id(), "created_by": created_by, "created_at": now,
                         "updated_at": now}
                writes[entry["entry_id"]] = entry
                counts["added"] += 1
            elif on_duplicate == "update":
                changes = {k: row.get(k) for k in ("reason", "severity", "expires_at")}
                writes[old["entry_id"]] = {**old, **changes, "updated_at": now}
                counts["updated"] += 1
            else:
                counts["skipped"] += 1
        return writes, counts

    @staticmethod
    def _refuse_duplicate(pipe: Any, watchlist_id: str, entry: dict) -> None:
        """Raise :class:`DuplicateEntryError` (after resetting the watching ``pipe``) when ``entry`` duplicates
        another entry of the watchlist."""
        if plate_identity(entry) is None:
            return
        existing = find_duplicate(pipe.hgetall(keys.watchlist_entries(watchlist_id)), entry)
        if existing is not None:
            pipe.reset()
            raise DuplicateEntryError(watchlist_id, existing)

    @staticmethod
    def _refuse_person_again(pipe: Any, watchlist_id: str, entry: dict) -> None:
        """Raise :class:`DuplicateEntryError` (after resetting the watching ``pipe``) when ``entry`` is for a person
        who already has an entry in the watchlist."""
        person_id = entry.get("person_id")
        if not isinstance(person_id, str) or not person_id:
            return
        existing = find_person_entry(pipe.hgetall(keys.watchlist_entries(watchlist_id)), person_id)
        if existing is not None:
            pipe.reset()
            raise DuplicateEntryError(watchlist_id, existing, field="person_id")

    def delete_entry(self, watchlist_id: str, entry_id: str) -> dict | None:
        """Remove one entry and return it as it was (read in the same transaction as the removal, for the audit
        trail; ``{"entry_id": ...}`` alone for a damaged entry); None if it did not exist."""
        key = keys.watchlist_entries(watchlist_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(key, entry_id)
        pipe.hdel(key, entry_id)
        pipe.incr(keys.WATCHLIST_VERSION)
        raw, removed, _ = pipe.execute()
        if not removed:
            return None
        entry = _json_object(raw)
        if entry is None:
            logger.warning("watchlist %s: removed entry %s was damaged", watchlist_id, entry_id)
            return {"entry_id": entry_id}
        return {**entry, "entry_id": entry_id}

    # -- alert cooldown (engine) ------------------------------------------------------------------------------
    def claim_alert(self, key: str, alert_id: str, ttl_s: float) -> bool:
        """Whether ``alert_id`` may be raised under the cooldown ``key`` (:func:`cooldown_key`).

        The first alert opens the window (``SET key alert_id NX PX ttl``); another alert id is refused until the key
        expires. The alert that holds the window is always allowed again, so an alert re-raised after an engine
        restart (crashed between claiming and publishing) is not lost: its deterministic id lets the event store drop
        the duplicate. Redis errors propagate (the caller decides how to degrade).
        """
        ttl_ms = max(1, int(ttl_s * 1000))
        if self.client.set(key, alert_id, nx=True, px=ttl_ms):
            return True
        holder = self.client.get(key)
        if holder is None:  # expired between SET and GET: take the new window
            return bool(self.client.set(key, alert_id, nx=True, px=ttl_ms)) or _s(self.client.get(key)) == alert_id
        return _s(holder) == alert_id

    # -- persons ----------------------------------------------------------------------------------------------
    def create_person(self, name: str, embeddings: np.ndarray, notes: str = "", created_by: str = "") -> dict:
        """Enrol a person with [k, d] embeddings (stored L2-normalised float32); returns the person."""
        person_id = new_id()
        self._write_person(person_id, {"name": name, "notes": notes, "created_by": created_by,
                                       "created_at": repr(time.time())}, embeddings)
        return self.get_person(person_id)  # type: ignore[return-value]

    @staticmethod
    def _person_mapping(person_id: str, fields: dict[str, str], embeddings: np.ndarray | None) -> dict[str, Any]:
        """The hash fields written for a person: ``fields``, ``updated_at`` and the embeddings if given."""
        mapping: dict[str, Any] = {"id": person_id, **fields, "updated_at": repr(time.time())}
        if embeddings is not None:
            mat = normalise_rows(embeddings)
            mapping.update({"embeddings": mat.astype("<f4").tobytes(), "dim": str(mat.shape[1]),
                            "count": str(mat.shape[0])})
        return mapping

    def _write_person(self, person_id: str, fields: dict[str, str], embeddings: np.ndarray | None) -> None:
        """Write a new person (the hash, the index entry and a version bump in one transaction)."""
        mapping = self._person_mapping(person_id, fields, embeddings)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.person(person_id), mapping=mapping)
        pipe.sadd(keys.PERSON_IDS, person_id)
        pipe.incr(keys.WATCHLIST_VERSION)
        pipe.execute()

    def update_person(self, person_id: str, name: str | None = None, notes: str | None = None,
                      embeddings: np.ndarray | None = None) -> dict | None:
        """Change a person's name/notes or replace their embeddings; None if unknown.

        The write is made only while the person exists (``WATCH`` on the person's hash, retried on a concurrent
        change): a person deleted meanwhile (:meth:`delete_person`) gets None, never a nameless record or their
        embeddings written back."""
        fields = {k: v for k, v in (("name", name), ("notes", notes)) if v is not None}
        mapping = self._person_mapping(person_id, fields, embeddings)
        key = keys.person(person_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if not pipe.exists(key):
                        pipe.reset()
                        return None
                    pipe.multi()
                    pipe.hset(key, mapping=mapping)
                    pipe.hgetall(key)
                    pipe.incr(keys.WATCHLIST_VERSION)
                    _, raw, _ = pipe.execute()
                    return self._decode_person(person_id, raw, with_embeddings=False)
                except redis.WatchError:
                    logger.debug("person %s changed concurrently; retrying the update", person_id)

    def get_person(self, person_id: str, with_embeddings: bool = False) -> dict | None:
        """A person's fields (``embeddings`` as a [k, d] array if asked), or None."""
        return self._decode_person(person_id, self.client.hgetall(keys.person(person_id)), with_embeddings)

    def person_names(self, person_ids: list[str]) -> dict[str, str]:
        """The names of the persons ``person_ids`` that exist (one round trip), for audit records."""
        pipe = self.client.pipeline(transaction=False)
        for pid in person_ids:
            pipe.hget(keys.person(pid), "name")
        return {pid: _s(name) for pid, name in zip(person_ids, pipe.execute(), strict=True) if name is not None}

    @staticmethod
    def _decode_person(person_id: str, raw: dict, with_embeddings: bool) -> dict | None:
        """A person's fields from their stored hash (:meth:`get_person`), or None when it is empty."""
        if not raw:
            return None
        person: dict[str, Any] = {_s(k): v for k, v in raw.items()}
        emb = person.pop("embeddings", b"")
        person = {k: _s(v) for k, v in person.items()}
        if with_embeddings:
            dim = person.get("dim", "")
            dim = int(dim) if dim.isdigit() else 0
            if dim and isinstance(emb, bytes) and len(emb) % (4 * dim) == 0:
                person["embeddings"] = np.frombuffer(emb, dtype="<f4").reshape(-1, dim).copy()
            else:
                if emb:
                    logger.warning("person %s: stored embeddings (%d bytes) do not fit dim %r; ignoring them",
                                   person_id, len(emb), person.get("dim"))
                person["embeddings"] = np.zeros((0, dim), np.float32)
        return person

    def list_persons(self) -> list[dict]:
        """Every enrolled person (without embeddings), sorted by name."""
        persons = [self.get_person(_s(pid)) for pid in self.client.smembers(keys.PERSON_IDS)]
        return sorted((p for p in persons if p), key=lambda p: (p.get("name", ""), p["id"]))

    def delete_person(self, person_id: str) -> bool:
        """Delete a person and remove them from every face watchlist; False if unknown.

        The set of watchlists and the person's record are watched while the lists are read, so a watchlist created
        meanwhile is not missed and an entry added meanwhile (:meth:`put_entry` watches the person) is either
        removed here or refused there: no entry outlives its person."""
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(keys.WATCHLIST_IDS, keys.person(person_id))
                    lists = [w["id"] for w in self.list_watchlists() if w["kind"] == "face"]
                    pipe.multi()
                    pipe.srem(keys.PERSON_IDS, person_id)
                    pipe.delete(keys.person(person_id))
                    for wid in lists:
                        pipe.hdel(keys.watchlist_entries(wid), person_id)
                    pipe.incr(keys.WATCHLIST_VERSION)
                    return bool(pipe.execute()[0])
                except redis.WatchError:
                    continue
