"""Field errors raised by route code, answered like FastAPI's own validation errors; the shared time type and the
camera-id check of search and export requests.

A check that FastAPI cannot express as a parameter constraint (one field against another, such as a time window)
raises :class:`fastapi.exceptions.RequestValidationError` through :func:`field_error`, so the client gets the same
422 body as for any other invalid field (``{"detail": "end: ...", "errors": [{"field": "end", ...}]}``, see
:func:`api.main._validation_error`) and the OpenAPI document's 422 response stays true.

Times: every route that takes an instant takes it as :data:`Instant` (or parses it with :func:`parse_instant`):
UTC epoch seconds (a JSON number, or its text in a query) or an ISO-8601 text. An ISO time without a zone is read as
UTC, like the recordings timeline and ``python -m pipeline export-clip`` always did (:data:`TIME_HELP`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import redis
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator, WithJsonSchema

logger = logging.getLogger(__name__)

Location = Literal["query", "form", "body", "path"]

MAX_EPOCH_S = 253_402_300_800.0
"""10000-01-01T00:00:00Z: no later instant can be written as an ISO-8601 date."""
TIME_HELP = "UTC epoch seconds (1733050000.5) or ISO-8601 (2026-12-01T14:32:00Z, +07:00; without a zone: UTC)."
INSTANT_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "number", "minimum": 0},
                                            {"type": "string", "format": "date-time", "maxLength": 40}]}
"""OpenAPI schema of an :data:`Instant`: a number of epoch seconds or an ISO-8601 date-time text."""


def field_error(field: str, message: str, location: Location = "query") -> RequestValidationError:
    """The 422 error of one invalid request field (raise it)."""
    return RequestValidationError([{"loc": (location, field), "msg": message, "type": "value_error",
                                    "input": None}])


def check_window(start: float | None, end: float | None, location: Location = "query") -> None:
    """422 on ``end`` when a time window is inverted (``end`` before ``start``); call it before any other work."""
    if start is not None and end is not None and end < start:
        raise field_error("end", "must not be before start", location)


# ---- times ---------------------------------------------------------------------------------------------------
BUDDHIST_ERA_OFFSET = 543
"""Thai Buddhist-era years run 543 ahead of the Gregorian ones (2569 BE = 2026 CE)."""
BUDDHIST_ERA_FROM = 2400
"""An ISO year this late is a Buddhist-era year typed by mistake (a Thai user's habit), never a wanted time."""


class BuddhistEraYearError(ValueError):
    """An ISO-8601 time whose year is a Thai Buddhist-era year: the message says the Gregorian one."""


def _iso_seconds(text: str) -> float:
    """Epoch seconds of an ISO-8601 text (``Z`` or an offset; none: UTC); ValueError when it is not one,
    :class:`BuddhistEraYearError` when its year is a Buddhist-era one (it would silently match nothing)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.year >= BUDDHIST_ERA_FROM:
        raise BuddhistEraYearError(
            f"{text[:40]!r}: the year {parsed.year} looks like a Buddhist-era year; times are in Gregorian years "
            f"(write {parsed.year - BUDDHIST_ERA_OFFSET})")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def read_instant(value: str | float) -> float:
    """Seconds from epoch seconds (a number or its text) or an ISO-8601 text, not range-checked (may be nan or
    inf); ValueError, whose text says what is accepted, when it is neither."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r} ({TIME_HELP})")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return _iso_seconds(text)
    except BuddhistEraYearError:
        raise
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"not a time: {text[:40]!r} ({TIME_HELP})") from None


def parse_instant(value: str | float) -> float:
    """UTC epoch seconds from epoch seconds (a number or its text) or an ISO-8601 text; ValueError (whose text says
    what is accepted) when it is neither or lies outside 1970 .. 9999."""
    when = read_instant(value)
    if not math.isfinite(when) or not 0 <= when < MAX_EPOCH_S:
        raise ValueError(f"{str(value)[:40]!r} is not between 1970 and the year 10000 ({TIME_HELP})")
    return when


def _instant(value: Any) -> Any:
    """Pydantic before-validator of :data:`Instant`: numbers and texts become epoch seconds; anything else is left
    to the float validation (which refuses it)."""
    if isinstance(value, str | int | float):
        return parse_instant(value)
    return value


Instant = Annotated[float, BeforeValidator(_instant), WithJsonSchema(INSTANT_SCHEMA)]
"""A time field or parameter: epoch seconds or ISO-8601 in, UTC epoch seconds (float) out."""


# ---- cameras -------------------------------------------------------------------------------------------------
def has_stored_data(client: redis.Redis, camera_id: str) -> bool:
    """Whether a well-formed camera id (:func:`well_formed_camera_id`) left plate reads or indexed recordings
    behind (a camera removed from cameras.yaml whose history is still searched)."""
    from pipeline.store.keys import PLATE_CODES  # its ``c{camera}`` fields: every camera that stored a plate read

    if not well_formed_camera_id(camera_id):
        return False
    return bool(client.hexists(PLATE_CODES, f"c{camera_id}")) or has_recordings(client, camera_id)


def well_formed_camera_id(camera_id: object) -> bool:
    """Whether ``camera_id`` matches :data:`pipeline.config.CAMERA_ID_PATTERN` (no ``/``, ``..``, NUL or key
    separator): the only ids a lookup of a removed camera's stored data may name."""
    from pipeline.config import CAMERA_ID_PATTERN

    return isinstance(camera_id, str) and re.fullmatch(CAMERA_ID_PATTERN, camera_id) is not None


def has_recordings(client: redis.Redis, camera_id: str) -> bool:
    """Whether ``camera_id`` is a well-formed camera id (:data:`pipeline.config.CAMERA_ID_PATTERN`: no ``/``,
    ``..``, NUL or key separator) whose recording index still holds segments: a camera removed from cameras.yaml
    whose recordings retention has not deleted yet. The index's own bookkeeping keys (``cctv:rec:bytes``...) are
    hashes, never a camera's index."""
    from pipeline.recording.index import index_key

    if not well_formed_camera_id(camera_id):
        return False
    key = index_key(camera_id)
    return client.type(key) in (b"zset", "zset") and client.zcard(key) > 0


def unknown_cameras(requested: Iterable[str], configured: set[str] | None, visible: frozenset[str] | None,
                    client: redis.Redis | None = None) -> list[str]:
    """The requested ids a caller cannot search: outside ``visible`` (the caller's cameras; None = all), or neither
    in ``configured`` (None: the config is not loaded, not checked) nor, with ``client``, holding stored data.

    An id outside the caller's cameras is reported exactly like an id that exists nowhere, so that a camera-limited
    user cannot learn which other cameras exist."""
    out: list[str] = []
    for camera_id in dict.fromkeys(requested):
        if visible is not None and camera_id not in visible:
            out.append(camera_id)
        elif configured is not None and camera_id not in configured and (
                client is None or not has_stored_data(client, camera_id)):
            out.append(camera_id)
    return out


def check_cameras(requested: list[str] | None, configured: set[str] | None, visible: frozenset[str] | None,
                  field: str, location: Location = "query", client: redis.Redis | None = None) -> None:
    """422 on ``field`` naming the requested cameras the caller cannot use (see :func:`unknown_cameras`); the
    message never lists the cameras that do exist."""
    if not requested:
        return
    unknown = unknown_cameras(requested, configured, visible, client)
    if unknown:
        names = ", ".join(repr(c[:64]) for c in unknown[:20])
        raise field_error(field, f"unknown camera{'s' if len(unknown) > 1 else ''} {names}", location)
