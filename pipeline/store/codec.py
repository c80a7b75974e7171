"""Flat Redis-stream encoding of the event models (one stream field per model field).

Strings are stored as they are, optional strings as ``""`` for None, everything else as compact JSON; the
face embedding is float32 bytes. Field names repeat in every entry, which a Redis stream stores once per
listpack node, so this is both readable and compact.
"""

from __future__ import annotations

import json
import logging
import types
import typing
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from pipeline.events import FaceEvent, PlateEvent

M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger(__name__)
EMBEDDING_FIELD = "embedding"


def _kind(annotation: Any) -> str:
    """'str', 'optstr' or 'json' for a model field annotation."""
    if annotation is str:
        return "str"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and set(typing.get_args(annotation)) == {str, type(None)}:
        return "optstr"
    return "json"


_KINDS: dict[type[BaseModel], dict[str, str]] = {
    model: {name: _kind(field.annotation) for name, field in model.model_fields.items()}
    for model in (PlateEvent, FaceEvent)
}


def encode(event: BaseModel) -> dict[str, str | bytes]:
    """Encode an event into flat stream fields."""
    kinds = _KINDS[type(event)]
    out: dict[str, str | bytes] = {}
    for name, kind in kinds.items():
        value = getattr(event, name)
        if isinstance(event, FaceEvent) and name == EMBEDDING_FIELD:
            out[name] = np.asarray(value, dtype="<f4").tobytes()
        elif kind == "str":
            out[name] = value
        elif kind == "optstr":
            out[name] = value or ""
        else:
            out[name] = _json(value)
    return out


def _json(value: Any) -> str:
    """Compact JSON; numbers (the common case) without going through the json module."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and np.isfinite(value):
        return repr(value)
    if isinstance(value, list) and all(type(v) is float and np.isfinite(v) for v in value):
        return "[" + ",".join(map(repr, value)) + "]"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


_BY_BYTES: dict[type[BaseModel], dict[bytes, tuple[str, str]]] = {
    model: {name.encode(): (name, kind) for name, kind in kinds.items()} for model, kinds in _KINDS.items()
}


def decode(model: type[M], fields: dict[Any, Any]) -> M:
    """Decode flat stream fields (bytes or str keys/values) back into ``model``."""
    by_bytes = _BY_BYTES[model]
    kinds = _KINDS[model]
    data: dict[str, Any] = {}
    for raw_key, raw_value in fields.items():
        entry = by_bytes.get(raw_key) if type(raw_key) is bytes else (raw_key, kinds.get(raw_key))
        if entry is None or entry[1] is None:
            continue
        name, kind = entry
        if kind == "str":
            data[name] = raw_value.decode() if type(raw_value) is bytes else raw_value
        elif kind == "optstr":
            data[name] = (raw_value.decode() if type(raw_value) is bytes else raw_value) or None
        elif model is FaceEvent and name == EMBEDDING_FIELD:
            buf = raw_value if isinstance(raw_value, bytes) else raw_value.encode("latin-1")
            data[name] = np.frombuffer(buf, dtype="<f4").tolist()
        else:
            data[name] = _parse_json(raw_value.decode() if type(raw_value) is bytes else raw_value)
    return model.model_validate(data)


def decode_or_none(model: type[M], fields: dict[Any, Any], record_id: Any = "?") -> M | None:
    """:func:`decode`, or None (with a warning naming ``record_id``) for a record that cannot be decoded: one
    malformed record must not fail a search, a case or the publisher over every good one around it."""
    try:
        return decode(model, fields)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, a field the model refuses, an embedding of
        # odd length, JSON nested deeper than the parser's recursion limit
        rid = record_id.decode() if isinstance(record_id, bytes) else record_id
        logger.warning("skipping an unreadable %s record %s: %s", model.__name__, rid, type(exc).__name__)
        return None


def _parse_json(text: str) -> Any:
    """JSON of one field; plain numbers (most fields) without going through the json module."""
    if text and (text[0].isdigit() or text[0] == "-"):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                pass
    return json.loads(text)


def embedding_from_fields(fields: dict[Any, Any]) -> np.ndarray:
    """The float32 embedding of raw face-stream fields, without decoding the whole event (empty where the record
    has none or a malformed one)."""
    raw = fields.get(EMBEDDING_FIELD.encode(), fields.get(EMBEDDING_FIELD))
    if isinstance(raw, str):
        raw = raw.encode("latin-1", errors="replace")
    if not isinstance(raw, bytes) or len(raw) % 4:
        return np.zeros(0, dtype="<f4")  # missing or malformed: matches no query
    return np.frombuffer(raw, dtype="<f4")
