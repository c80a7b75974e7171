"""Bounded filtered scans of Redis streams (recent events of one camera, alerts of one watchlist entry).

The event and alert streams have no per-camera or per-entry index, so these reads walk the stream in chunks and
keep the entries a predicate accepts, stopping at ``limit`` matches or after ``cap`` scanned entries, whichever
comes first. A stopped scan says where to continue (``next_id``), so a caller can page further back without any
single request reading more than ``cap`` entries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

logger = logging.getLogger(__name__)

Fields = dict[bytes, Any]


@dataclass
class StreamScan:
    """What a bounded scan found.

    Attributes:
        entries: ``(stream_id, fields)`` of the matching entries in scan order.
        scanned: entries read.
        next_id: the last stream id read, to continue from (exclusive) when the scan did not reach the stream's
            end; None when it did.
        capped: True when the scan stopped because of ``cap`` before finding ``limit`` matches (more matches may
            lie beyond ``next_id``).
    """

    entries: list[tuple[str, Fields]] = field(default_factory=list)
    scanned: int = 0
    next_id: str | None = None
    capped: bool = False


def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def scan_stream(client: redis.Redis, stream: str, match: Callable[[Fields], bool], limit: int, cap: int,
                start: str | None = None, newest_first: bool = True, chunk: int = 500) -> StreamScan:
    """Read ``stream`` from ``start`` (exclusive; None = the newest or oldest end) and keep what ``match`` accepts.

    Reads at most ``cap`` entries in ``XREVRANGE``/``XRANGE`` calls of ``chunk`` entries and stops as soon as
    ``limit`` matches were found.
    """
    out = StreamScan()
    cursor = start
    if newest_first and cursor and not any(int(part) for part in cursor.split("-")):
        return out  # nothing is older than 0-0 (Redis refuses that exclusive bound)
    while len(out.entries) < limit and out.scanned < cap:
        count = min(chunk, cap - out.scanned)
        if newest_first:
            batch = client.xrevrange(stream, max=f"({cursor}" if cursor else "+", min="-", count=count)
        else:
            batch = client.xrange(stream, min=f"({cursor}" if cursor else "-", max="+", count=count)
        for sid, fields in batch:
            out.scanned += 1
            cursor = _sid(sid)
            if match(fields):
                out.entries.append((cursor, fields))
                if len(out.entries) >= limit:
                    break
        if len(batch) < count and len(out.entries) < limit:
            return out  # the end of the stream was reached: nothing to continue from
    out.next_id = cursor
    out.capped = len(out.entries) < limit
    if out.capped:
        logger.debug("scan of %s stopped after %s entries with %s matches", stream, out.scanned, len(out.entries))
    return out
