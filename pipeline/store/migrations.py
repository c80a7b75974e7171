"""One-time upgrades of data stored by an earlier version, run where the service opens its store (the API's start-up).

:func:`backfill_face_alert_media` indexes the crops of face alerts written before the alert publisher kept
``alerts:face_media`` (:data:`pipeline.store.keys.FACE_ALERT_MEDIA`): without it an operator, who may see a face
alert's crop only through that index, gets a broken image for every older face alert.

The backfill walks the ``alerts`` stream oldest first in pages (``XRANGE ... COUNT``), so its memory is one page; it
stops after a time budget, keeping its cursor in ``alerts:face_media:backfill``, and the next start goes on from
there. Once the walk reached the stream's end it marks itself done and later starts skip it (one HEXISTS). Several
processes starting at once: a short lock (``SET NX PX``) lets one walk while the others start without waiting; and
should two walks overlap anyway (a lock that expired), every index entry is written by a script that keeps the newest
alert's stream id, as the publisher's own entries do, so overlapping walks and new alerts leave the same index.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from pipeline.store import keys, lua

logger = logging.getLogger(__name__)

PAGE = 500
"""Alert stream entries read (and indexed in one script call) per step."""
BUDGET_S = 30.0
"""How long one start may spend on the backfill; the rest waits for the next start."""
LOCK_MARGIN_S = 30.0
"""The lock outlives the budget by this much (a walk never runs past it unless Redis itself stalls)."""

_RELEASE = """
-- KEYS: lock; ARGV: holder token. Deletes the lock only while this holder has it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def face_alert_media_indexed(client: redis.Redis) -> bool:
    """Whether the one-time backfill of ``alerts:face_media`` has finished on this store."""
    return bool(client.hexists(keys.FACE_ALERT_MEDIA_BACKFILL, "done"))


def backfill_face_alert_media(client: redis.Redis, page: int = PAGE, budget_s: float = BUDGET_S,
                              clock: Callable[[], float] = time.monotonic) -> bool:
    """Index the crop of every face alert still in the ``alerts`` stream in ``alerts:face_media`` (newest alert per
    crop), once per store. Returns True when the backfill is done (now or earlier); False when another process is
    running it or the budget ran out (a later start goes on from the saved cursor)."""
    if face_alert_media_indexed(client):
        return True
    token = secrets.token_hex(8)
    if not client.set(keys.FACE_ALERT_MEDIA_BACKFILL_LOCK, token, nx=True,
                      px=int((budget_s + LOCK_MARGIN_S) * 1000)):
        logger.info("face-alert media backfill: another process is running it")
        return False
    try:
        return _walk(client, page, clock() + budget_s, clock)
    finally:
        client.eval(_RELEASE, 1, keys.FACE_ALERT_MEDIA_BACKFILL_LOCK, token)


def _walk(client: redis.Redis, page: int, deadline: float, clock: Callable[[], float]) -> bool:
    """Walk the alert stream from the saved cursor to its current last entry, page by page, until ``deadline``."""
    end = _last_id(client)
    cursor = _text(client.hget(keys.FACE_ALERT_MEDIA_BACKFILL, "cursor"))
    start = f"({cursor}" if cursor else "-"
    index = client.register_script(lua.ALERT_MEDIA_BACKFILL)
    written = 0
    while end is not None:
        entries = client.xrange(keys.ALERT_STREAM, start, end, count=page)
        if not entries:
            break
        pairs = face_media_pairs(entries)
        if pairs:
            written += int(index(keys=[keys.FACE_ALERT_MEDIA], args=[v for pair in pairs for v in pair]))
        last = _text(entries[-1][0])
        client.hset(keys.FACE_ALERT_MEDIA_BACKFILL, "cursor", last)
        if last == end or len(entries) < page:
            break
        if clock() >= deadline:
            logger.warning("face-alert media backfill: stopped at alert %s (time budget); the next start goes on",
                           last)
            return False
        start = f"({last}"
    client.hset(keys.FACE_ALERT_MEDIA_BACKFILL, "done", datetime.now(UTC).isoformat(timespec="seconds"))
    logger.info("face-alert media backfill done: %s crops of older face alerts indexed", written)
    return True


def face_media_pairs(entries: list) -> list[tuple[str, str]]:
    """``(crop path, stream id)`` of the face alerts with a crop among alert stream entries (malformed ones are
    skipped: the API would not serve their crop either)."""
    pairs: list[tuple[str, str]] = []
    for sid, fields in entries:
        try:
            alert = json.loads(fields.get(b"alert", b""))
        except ValueError:
            logger.debug("face-alert media backfill: alert %s is not JSON; skipped", sid)
            continue
        crop = alert.get("crop_path") if isinstance(alert, dict) and alert.get("kind") == "face" else None
        if isinstance(crop, str) and crop:
            pairs.append((crop, _text(sid)))
    return pairs


def _last_id(client: redis.Redis) -> str | None:
    """The newest entry id of the alert stream, None when it is empty or absent."""
    newest = client.xrevrange(keys.ALERT_STREAM, "+", "-", count=1)
    return _text(newest[0][0]) if newest else None


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
