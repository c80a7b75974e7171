"""Legal hold: evidence attached to an open case is exempt from every retention until the case is closed.

What a case item holds
----------------------
- a plate/face event: the event itself (event retention leaves its record and index entries alone), its snapshot and
  crop files, and the camera's recording from ``EVENT_MARGIN_S`` before to after the event;
- a clip (export job): the export's files and the recording segments of its window.

Keys
----
``hold:case:{case_id}``   HASH    item key (``kind:ref``) -> JSON {events, paths, windows} held by that case.
``hold:cases``            SET     case ids with a hold.
``hold:events``           SET     ``plate:{event_id}`` / ``face:{event_id}`` held by any open case.
``hold:paths``            SET     files (relative to the recordings dir, POSIX) held by any open case.
``hold:windows``          SET     JSON [camera_id, start, end] recording windows held by any open case.
``hold:version``          STRING  bumped on every change (closing rebuilds the three sets under WATCH of it).

The three sets are the union over the cases: adding an item only adds to them; closing a case drops its hash and
rebuilds the sets from the remaining cases (so an item two cases hold stays held while either is open); removing an
item from an open case drops its field and rebuilds them likewise.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import redis

logger = logging.getLogger(__name__)

CASES = "hold:cases"
EVENTS = "hold:events"
PATHS = "hold:paths"
WINDOWS = "hold:windows"
MAX_WINDOW_END = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the latest time a date folder can name
VERSION = "hold:version"
EVENT_MARGIN_S = 30.0
"""Recording kept either side of a held event."""


def case_key(case_id: str) -> str:
    """The hash of the items one case holds."""
    return f"hold:case:{case_id}"


@dataclass
class Hold:
    """What one case item keeps from retention."""

    events: list[str] = field(default_factory=list)  # "plate:<id>" / "face:<id>"
    paths: list[str] = field(default_factory=list)  # relative to the recordings dir
    windows: list[tuple[str, float, float]] = field(default_factory=list)  # camera, start, end

    def to_json(self) -> str:
        return json.dumps({"events": self.events, "paths": self.paths, "windows": self.windows})


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def event_hold(kind: str, event: Any) -> Hold:
    """The hold of a plate/face event: the event, its JPEGs and the recording around it."""
    paths = [p for p in (event.snapshot_path, event.crop_path) if p]
    t = float(event.frame_time)
    return Hold(events=[f"{kind}:{event.event_id}"], paths=paths,
                windows=[(event.camera_id, t - EVENT_MARGIN_S, t + EVENT_MARGIN_S)])


UNKNOWN_ITEM = "unknown case item"
"""The second element of the window :func:`unknown_hold` stores (it says why that window holds all recording)."""


def unknown_hold(case_id: str, item_key: str) -> Hold:
    """The hold of a case item whose record is damaged, so that what it refers to is unknown: all recording of every
    camera (hold more, not less, as :func:`rebuild` does for a damaged hold item) until the case is closed, or until
    the item is repaired and the case's hold (``hold:case:{case_id}``) is deleted so that the API places it anew at
    its next start. It is stored as the window ``["", "unknown case item", case_id, item_key]``, which names no
    camera: :func:`held` reads it as all recording (with an error logged at each read, so that it gets repaired)
    and :func:`rebuild` keeps it like any other window."""
    return Hold(windows=[("", UNKNOWN_ITEM, case_id, item_key)])  # type: ignore[list-item]  # a marker, see above


def place(client: redis.Redis, case_id: str, item_key: str, hold: Hold) -> None:
    """Hold ``hold`` for ``case_id``'s item ``item_key`` (idempotent)."""
    pipe = client.pipeline(transaction=True)
    queue_place(pipe, case_id, item_key, hold)
    pipe.execute()


def queue_place(pipe: redis.client.Pipeline, case_id: str, item_key: str, hold: Hold) -> None:
    """Queue the commands of :func:`place` on ``pipe`` (a MULTI the caller executes: the hold then enters Redis in
    the same step as the caller's other writes, e.g. the case item it belongs to)."""
    pipe.hset(case_key(case_id), item_key, hold.to_json())
    pipe.sadd(CASES, case_id)
    if hold.events:
        pipe.sadd(EVENTS, *hold.events)
    if hold.paths:
        pipe.sadd(PATHS, *hold.paths)
    if hold.windows:
        pipe.sadd(WINDOWS, *[json.dumps(list(w)) for w in hold.windows])
    pipe.incr(VERSION)


def release(client: redis.Redis, case_id: str) -> None:
    """Lift every hold of ``case_id`` (the case was closed); items other open cases hold stay held."""
    pipe = client.pipeline(transaction=True)
    queue_release(pipe, case_id)
    pipe.execute()
    rebuild(client)


def queue_release(pipe: redis.client.Pipeline, case_id: str) -> None:
    """Queue the removal of ``case_id``'s holds on ``pipe`` (a MULTI the caller executes, e.g. with the case's close);
    the caller then runs :func:`rebuild`, so a failure in between holds more, never less."""
    pipe.delete(case_key(case_id))
    pipe.srem(CASES, case_id)


def drop(client: redis.Redis, case_id: str, item_key: str) -> None:
    """Lift the hold of ``case_id``'s item ``item_key`` (removed from the open case): :func:`rebuild` keeps whatever
    another item of this case or another open case still holds. The case stays in ``hold:cases`` (an empty hold
    holds nothing; taking it out could race with an item added meanwhile)."""
    pipe = client.pipeline(transaction=True)
    queue_drop(pipe, case_id, item_key)
    pipe.execute()
    rebuild(client)


def queue_drop(pipe: redis.client.Pipeline, case_id: str, item_key: str) -> None:
    """Queue the removal of the hold of ``case_id``'s item ``item_key`` on ``pipe`` (a MULTI the caller executes, e.g.
    with the item's removal); the caller then runs :func:`rebuild`."""
    pipe.hdel(case_key(case_id), item_key)


def rebuild(client: redis.Redis) -> None:
    """Recompute the held events, paths and windows from the cases' hold hashes (atomically)."""
    while True:
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(VERSION, CASES)
                events: set[str] = set()
                paths: set[str] = set()
                windows: set[str] = set()
                for cid in pipe.smembers(CASES):
                    for item_key, raw in pipe.hgetall(case_key(_s(cid))).items():
                        item = _hold_item(raw, _s(cid), _s(item_key))
                        if item is None:  # what it held is unknown: hold all recording until it is repaired
                            windows.add(json.dumps({"damaged_hold_item": [_s(cid), _s(item_key)]}))
                            continue
                        events.update(item.events)
                        paths.update(item.paths)
                        windows.update(json.dumps(list(w)) for w in item.windows)
                pipe.multi()
                pipe.delete(EVENTS, PATHS, WINDOWS)
                if events:
                    pipe.sadd(EVENTS, *events)
                if paths:
                    pipe.sadd(PATHS, *paths)
                if windows:
                    pipe.sadd(WINDOWS, *windows)
                pipe.incr(VERSION)
                pipe.execute()
                return
            except redis.WatchError:
                continue


def _hold_item(raw: Any, case_id: str, item_key: str) -> Hold | None:
    """One stored case item's hold, or None (with a logged warning) when it is damaged.

    A damaged item (malformed JSON, a missing or mistyped field) cannot stop every other case's hold from being
    rebuilt (and so every release and retention pass); what it held is unknown, so :func:`rebuild` stores a window
    that :func:`held` cannot read in its place, which holds all recording (hold more, not less) until it is repaired.
    """
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TypeError("not a JSON object")
        hold = Hold(events=_strings(value["events"]), paths=_strings(value["paths"]),
                    windows=[_stored_window(w) for w in _sequence(value["windows"])])
    except (KeyError, TypeError, ValueError, RecursionError) as exc:  # JSON and UTF-8 errors are ValueErrors
        logger.warning("legal hold item %r of case %r is damaged (%s); all recording is held until it is repaired: "
                       "%r", item_key, case_id, exc, raw[:200])
        return None
    return hold


def _sequence(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else TypeError."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _strings(value: Any) -> list[str]:
    """A JSON array of strings, else TypeError."""
    items = _sequence(value)
    if not all(isinstance(v, str) for v in items):
        raise TypeError("expected a list of strings")
    return items


def _stored_window(value: Any) -> Any:
    """A window as stored (a JSON array; :func:`held` judges its contents), else TypeError."""
    return tuple(_sequence(value))


@dataclass(frozen=True)
class Held:
    """A snapshot of everything held, for one retention pass."""

    events: frozenset[str]
    paths: frozenset[str]
    windows: tuple[tuple[str, float, float], ...]
    whole_cameras: frozenset[str] = frozenset()  # a damaged window of these cameras: all their recording is held
    everything: bool = False  # a damaged window naming no camera: all recording is held

    def path(self, relative: str | PurePosixPath) -> bool:
        """Whether the file (relative to the recordings dir) is held."""
        return PurePosixPath(relative).as_posix() in self.paths

    def segment(self, camera_id: str, start: float, end: float) -> bool:
        """Whether a recording segment of ``camera_id`` overlaps a held window."""
        if self.camera_wholly(camera_id):
            return True
        return any(cam == camera_id and start < w_end and end > w_start for cam, w_start, w_end in self.windows)

    def camera_wholly(self, camera_id: str) -> bool:
        """Whether every recording of ``camera_id`` is held (a damaged window that may have been its)."""
        return self.everything or camera_id in self.whole_cameras

    def dirs(self) -> frozenset[str]:
        """Every folder (relative, POSIX) that contains a held file."""
        out: set[str] = set()
        for p in self.paths:
            out.update(parent.as_posix() for parent in PurePosixPath(p).parents)
        return frozenset(out)


NOTHING = Held(frozenset(), frozenset(), ())


def held(client: redis.Redis) -> Held:
    """What is held now."""
    pipe = client.pipeline(transaction=False)
    pipe.smembers(EVENTS)
    pipe.smembers(PATHS)
    pipe.smembers(WINDOWS)
    events, paths, windows = pipe.execute()
    parsed: list[tuple[str, float, float]] = []
    whole: set[str] = set()
    everything = False
    for raw in windows:
        window = _window(raw)
        if isinstance(window, tuple):
            parsed.append(window)
            continue
        # a damaged member (Redis edited by hand, a bad restore): what it held is unknown, so hold more, not less
        logger.error("legal hold window %r is unreadable; holding %s until it is repaired", _s(raw)[:200],
                     f"all recording of camera {window!r}" if window else "all recording")
        if window:
            whole.add(window)
        else:
            everything = True
    return Held(frozenset(_s(e) for e in events), frozenset(_s(p) for p in paths), tuple(parsed),
                frozenset(whole), everything)


def _window(raw: Any) -> tuple[str, float, float] | str | None:
    """A stored hold window ``[camera, start, end]``; when damaged, its camera id if that can be read, else None."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or not value or not isinstance(value[0], str) or not value[0]:
        return None
    try:
        cam, start, end = value
        start, end = float(start), float(end)
    except (TypeError, ValueError):
        return value[0]
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end <= MAX_WINDOW_END):
        return value[0]
    return cam, start, end
