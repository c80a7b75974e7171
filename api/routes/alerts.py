"""Alerts: backlog, acknowledgement, and live delivery over WebSocket and Server-Sent Events.

Live delivery tails the ``alerts`` stream with a blocking XREAD from the last id the client has, so replay after a
reconnect (``?after=<id>`` or SSE ``Last-Event-ID``) and live alerts come through one path with no gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import anyio
import redis
import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ApiStoreDep, Operator, RedisDep, SettingsDep, User, resolve_user
from api.schemas.alerts import (
    MAX_FOLLOW_UP_NOTES,
    NOTE_MAX_CHARS,
    AckConflictOut,
    AckOut,
    AckRequest,
    AlertIdsRequest,
    AlertOut,
    NoteRequest,
)
from api.schemas.errors import ErrorOut
from api.streamscan import scan_stream
from api.validation import check_window, field_error
from pipeline.store import keys
from pipeline.store.connection import async_redis_client

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/alerts", tags=["alerts"])

SSE_RETRY_MS = 5000
"""How long a browser's EventSource waits before it reconnects to a stream that ended on a Redis failure."""
SSE_STORE_DOWN = (f"retry: {SSE_RETRY_MS}\nevent: unavailable\n"
                  f"data: {json.dumps({'reason': 'the event store is unavailable; try again'})}\n\n")
"""The last event of an alert stream whose Redis failed after it began (the 503 cannot be sent any more)."""
STREAM_ID = r"^\d{1,19}-\d{1,19}$"  # 19 digits stay below 2**64 (Redis refuses larger ids)
REF_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


def _alert(sid: bytes | str, fields: dict) -> dict:
    sid = sid.decode() if isinstance(sid, bytes) else sid
    alert = json.loads(fields[b"alert"])
    return {"id": sid, "alert": alert, "ack": None}


def _watchlist_names(client, watchlist_ids: set[str]) -> dict[str, str | None]:
    """Name of each watchlist (None for one that was deleted), one round trip."""
    ordered = sorted(watchlist_ids)
    pipe = client.pipeline(transaction=False)
    for wid in ordered:
        pipe.hget(keys.watchlist(wid), "name")
    return {wid: (raw.decode() if isinstance(raw, bytes) else raw)
            for wid, raw in zip(ordered, pipe.execute() if ordered else [], strict=True)}


def _with_acks(client, user: User, entries: list) -> list[AlertOut]:
    """AlertOut of the stream entries the user may see, each with its acknowledgement (who, note, when, follow-up
    notes) or None, and the name of the watchlist that matched."""
    alerts = [a for a in (_alert(sid, f) for sid, f in entries) if user.sees(a["alert"]["camera_id"])]
    ids = [a["alert"]["alert_id"] for a in alerts]
    raw_acks = client.hmget(keys.ALERT_ACKS, ids) if ids else []
    names = _watchlist_names(client, {a["alert"]["watchlist_id"] for a in alerts})
    out = []
    for a, raw in zip(alerts, raw_acks, strict=True):
        a["ack"] = json.loads(raw) if raw else None
        out.append(AlertOut(**a, watchlist_name=names.get(a["alert"]["watchlist_id"])))
    return out


@dataclass(frozen=True)
class AlertFilter:
    """What a listing keeps: every field None (or empty) keeps everything."""

    entry_id: str | None = None
    watchlist_id: str | None = None
    camera_id: str | None = None
    severities: frozenset[str] = frozenset()
    start: float | None = None
    end: float | None = None
    acked: bool | None = None

    def needles(self) -> list[bytes]:
        """Quoted ids every matching raw payload contains (a cheap pre-filter before parsing)."""
        return [f'"{v}"'.encode() for v in (self.entry_id, self.watchlist_id, self.camera_id) if v]

    def keeps(self, alert: dict) -> bool:
        """Whether the parsed alert passes every field filter but the acknowledgement state."""
        created = float(alert.get("created_at") or 0)
        return ((self.entry_id is None or alert.get("entry_id") == self.entry_id)
                and (self.watchlist_id is None or alert.get("watchlist_id") == self.watchlist_id)
                and (self.camera_id is None or alert.get("camera_id") == self.camera_id)
                and (not self.severities or alert.get("severity", "medium") in self.severities)
                and (self.start is None or created >= self.start)
                and (self.end is None or created <= self.end))

    def active(self) -> bool:
        """Whether any filter is set."""
        return self != AlertFilter()


class _AlertMatch:
    """Predicate on raw alert-stream fields: the alert passes the filter and is on a camera the user sees.

    The ids are plain tokens (:data:`REF_ID`), so a quoted id in the JSON payload is a cheap, encoding-agnostic
    pre-filter before the payload is parsed. ``visible`` counts the alerts read on cameras the user sees (every
    alert read, for a user without a camera limit): what the user is told of the scan, never how many alerts other
    cameras had. The acknowledgement state is looked up (one HEXISTS) only for alerts that passed the rest."""

    def __init__(self, user: User, flt: AlertFilter, client=None) -> None:
        self.user = user
        self.flt = flt
        self.client = client
        self.needles = flt.needles()
        self.visible = 0

    def __call__(self, fields: dict) -> bool:
        raw = fields.get(b"alert", b"")
        if self.user.cameras is None:  # every alert is visible: the pre-filter spares parsing most of them
            self.visible += 1
            if not all(n in raw for n in self.needles):
                return False
            alert = json.loads(raw)
        else:
            alert = json.loads(raw)
            if not self.user.sees(alert.get("camera_id", "")):
                return False
            self.visible += 1
        if not self.flt.keeps(alert):
            return False
        if self.flt.acked is None:
            return True
        return bool(self.client.hexists(keys.ALERT_ACKS, alert.get("alert_id", ""))) == self.flt.acked


_SCAN_HEADERS = {200: {"headers": {
    "X-Alerts-Scanned": {"description": "Filtered requests: alerts read (camera-limited callers: alerts read on "
                         "their cameras).", "schema": {"type": "integer"}},
    "X-Alerts-Scan-Complete": {"description": "Filtered requests: false when the scan cap stopped the scan before "
                               "`limit` matches were found.", "schema": {"type": "boolean"}},
    "X-Alerts-Scan-Next": {"description": "Filtered requests stopped by the scan cap: the stream id the scan stopped "
                           "at; pass it as `before` (a request without `after`) or as `after` (a request with "
                           "`after`) to scan on from there, even when this page found no match.",
                           "schema": {"type": "string"}}}}}

Severity = Literal["low", "medium", "high", "critical"]


def _alert_filter(entry_id: str | None, watchlist_id: str | None, camera_id: str | None,
                  severity: list[Severity] | None, start: float | None, end: float | None,
                  acked: bool | None) -> AlertFilter:
    """The listing's filter; 422 on an inverted time window."""
    check_window(start, end)
    return AlertFilter(entry_id=entry_id, watchlist_id=watchlist_id, camera_id=camera_id,
                       severities=frozenset(severity or ()), start=start, end=end, acked=acked)


def _page(client, settings, user: User, flt: AlertFilter, response: Response, after: str | None,
          before: str | None, limit: int) -> list:
    """The stream entries of one page, oldest first: after ``after``, before ``before``, or the newest."""
    if not flt.active() and user.cameras is None and before is None:
        if after is None:
            return list(reversed(client.xrevrange(keys.ALERT_STREAM, count=limit)))
        return client.xrange(keys.ALERT_STREAM, f"({after}", "+", count=limit)
    # a camera-limited user's page is filled with their own alerts (a page cut before filtering would show
    # how many alerts other cameras had, and leave holes in the pages of the user's own)
    match = _AlertMatch(user, flt, client)
    scan = scan_stream(client, keys.ALERT_STREAM, match, limit, settings.alert_filter_scan,
                       start=after if after is not None else before, newest_first=after is None)
    response.headers["X-Alerts-Scanned"] = str(match.visible)
    response.headers["X-Alerts-Scan-Complete"] = "false" if scan.capped else "true"
    if scan.capped and scan.next_id:  # where to go on: the last page's ids cannot say when it found nothing
        response.headers["X-Alerts-Scan-Next"] = scan.next_id
    return scan.entries if after is not None else list(reversed(scan.entries))


@router.get("", response_model=list[AlertOut], summary="Alerts after a stream id (backlog), oldest first",
            responses=_SCAN_HEADERS,
            description="Each alert comes with its acknowledgement (`ack`: who, note, when, follow-up notes) or null "
                        "and the name of the watchlist that matched. Without `after` the newest alerts are "
                        "returned; `before` pages further back (the alerts just before that stream id). With a "
                        "filter (`entry_id`, `watchlist_id`, `camera_id`, `severity`, `start`/`end` on the alert's "
                        "`created_at`, `acked`) only matching alerts are returned: the stream has no such index, so "
                        "at most CCTV_ALERT_FILTER_SCAN alerts (default 20000) are read, the newest ones (or those "
                        "before `before`, or the first ones after `after`); the headers `X-Alerts-Scanned` and "
                        "`X-Alerts-Scan-Complete` (false when the cap stopped the scan before `limit` matches) say "
                        "how far it looked, and `X-Alerts-Scan-Next` where to go on (as `before`, or as `after` "
                        "with `after`). For a caller limited to some cameras every request is such a scan: "
                        "alerts of other cameras are skipped without being counted, so `limit` alerts of the "
                        "caller's cameras are returned when the scan finds them (a camera the caller may not see "
                        "has no alerts for them).")
def list_alerts(user: Operator, client: RedisDep, settings: SettingsDep, response: Response,
                after: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
                before: Annotated[str | None, Query(pattern=STREAM_ID, description="Older alerts: those before "
                                                    "this stream id (not with `after`).")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                entry_id: Annotated[str | None, Query(pattern=REF_ID, description="Only this watchlist entry's "
                                                      "alerts (person entries: the person id).")] = None,
                watchlist_id: Annotated[str | None, Query(pattern=REF_ID,
                                                          description="Only this watchlist's alerts.")] = None,
                camera_id: Annotated[str | None, Query(pattern=REF_ID,
                                                       description="Only this camera's alerts.")] = None,
                severity: Annotated[list[Severity] | None, Query(
                    max_length=4, description="Only these severities (repeat the field).")] = None,
                start: Annotated[float | None, Query(ge=0, description="Raised at or after this UTC epoch "
                                                     "second.")] = None,
                end: Annotated[float | None, Query(ge=0, description="Raised at or before this UTC epoch second "
                                                   "(not before `start`).")] = None,
                acked: Annotated[bool | None, Query(description="true: only acknowledged alerts; false: only "
                                                    "open ones.")] = None,
                ) -> list[AlertOut]:
    flt = _alert_filter(entry_id, watchlist_id, camera_id, severity, start, end, acked)
    if after is not None and before is not None:
        raise field_error("before", "give either after or before, not both")
    entries = _page(client, settings, user, flt, response, after, before, limit)
    return _with_acks(client, user, entries)


@router.post("/acks", response_model=list[AlertOut], summary="The current state of the given alerts",
             description="Each alert asked for, with its acknowledgement (`ack`: who, note, when, follow-up notes) "
                         "or null and the name of the watchlist that matched, oldest first: how a screen learns "
                         "of acknowledgements made on another one for every alert it shows, however old. Alerts "
                         "that do not exist (any more) or are on a camera the caller may not see are left out. At most 1000 ids (ALERT_IDS_MAX) per request; more, none or a malformed id is "
                         "answered 422.")
def alert_acks(body: AlertIdsRequest, user: Operator, client: RedisDep) -> list[AlertOut]:
    ids = list(dict.fromkeys(body.alert_ids))
    sids = sorted({sid for sid in client.hmget(keys.ALERT_INDEX, ids) if sid}, key=_stream_order)
    pipe = client.pipeline(transaction=False)
    for sid in sids:
        pipe.xrange(keys.ALERT_STREAM, sid, sid)
    entries = [found[0] for found in (pipe.execute() if sids else []) if found]
    return _with_acks(client, user, entries)


def _stream_order(sid: bytes) -> tuple[int, int]:
    """Sort key of a stream id (``ms-seq``)."""
    ms, _, seq = sid.partition(b"-")
    return int(ms), int(seq or 0)


def _visible_alert(client, user: User, alert_id: str) -> dict:
    """The alert (``_alert`` dict) if it exists and the user sees its camera; else 404 (the same either way)."""
    sid = client.hget(keys.ALERT_INDEX, alert_id)
    entries = client.xrange(keys.ALERT_STREAM, sid, sid) if sid else []
    alert = _alert(*entries[0]) if entries else None
    if alert is None or not user.sees(alert["alert"]["camera_id"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} not found")
    return alert


def _conflict(alert_id: str, existing: dict) -> JSONResponse:
    """409 with the acknowledgement that stands."""
    ack = AckOut(**existing)
    body = AckConflictOut(detail=f"alert {alert_id!r} was already acknowledged by {ack.by}; add a follow-up note "
                                 "instead", ack=ack)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)


_ACK_RESPONSES = {404: {"model": ErrorOut, "description": "No such alert (or on a camera you may not see)."},
                  409: {"model": AckConflictOut, "description": "Already acknowledged: the first acknowledgement "
                                                                "stands and is returned as `ack`."}}


@router.post("/{alert_id}/ack", response_model=AckOut, summary="Acknowledge an alert with a note (once)",
             responses=_ACK_RESPONSES,
             description="The first acknowledgement (who, when, note) is kept: a later one, or the loser of two at "
                         "once, is answered 409 with the acknowledgement that stands. Add to it with "
                         "`POST /api/alerts/{alert_id}/notes`.")
def ack_alert(alert_id: str, body: AckRequest, user: Operator, client: RedisDep,
              store: ApiStoreDep) -> AckOut | JSONResponse:
    _visible_alert(client, user, alert_id)
    ack = {"by": user.username, "note": body.note, "at": time.time(), "notes": []}
    if not client.hsetnx(keys.ALERT_ACKS, alert_id, json.dumps(ack, ensure_ascii=False)):
        existing = client.hget(keys.ALERT_ACKS, alert_id)
        if existing is None:  # pruned in between: the alert left the stream
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} not found")
        logger.info("acknowledgement of alert %s by %s refused: already acknowledged", alert_id, user.username)
        return _conflict(alert_id, json.loads(existing))
    store.audit(user.username, "alert_ack", {"alert_id": alert_id, "note": body.note})
    return AckOut(**ack)


def _append_note(client, alert_id: str, note: dict) -> tuple[str, dict | None]:
    """Append ``note`` to the alert's acknowledgement atomically (WATCH/MULTI, retried on a concurrent write).

    Returns ("ok", ack), ("unacked", None) or ("full", ack)."""
    result: list[tuple[str, dict | None]] = []

    def step(pipe) -> None:
        raw = pipe.hget(keys.ALERT_ACKS, alert_id)
        result.clear()
        if raw is None:
            result.append(("unacked", None))
            return
        ack = json.loads(raw)
        notes = ack.setdefault("notes", [])
        if len(notes) >= MAX_FOLLOW_UP_NOTES:
            result.append(("full", ack))
            return
        notes.append(note)
        pipe.multi()
        pipe.hset(keys.ALERT_ACKS, alert_id, json.dumps(ack, ensure_ascii=False))
        result.append(("ok", ack))

    client.transaction(step, keys.ALERT_ACKS)
    return result[0]


@router.post("/{alert_id}/notes", response_model=AckOut, summary="Add a follow-up note to an acknowledged alert",
             responses={404: _ACK_RESPONSES[404],
                        409: {"model": ErrorOut, "description": "The alert is not acknowledged yet (acknowledge it "
                                                                f"first), or has {MAX_FOLLOW_UP_NOTES} notes."}},
             description=f"Appends `{{by, at, note}}` to the acknowledgement's `notes` (at most "
                         f"{MAX_FOLLOW_UP_NOTES} per alert, {NOTE_MAX_CHARS} characters each); returns the "
                         "acknowledgement with every note.")
def add_alert_note(alert_id: str, body: NoteRequest, user: Operator, client: RedisDep,
                   store: ApiStoreDep) -> AckOut:
    _visible_alert(client, user, alert_id)
    outcome, ack = _append_note(client, alert_id, {"by": user.username, "at": time.time(), "note": body.note})
    if outcome == "unacked":
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id!r} is not acknowledged yet; acknowledge "
                                                      "it first")
    if outcome == "full":
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id!r} already has {MAX_FOLLOW_UP_NOTES} notes")
    store.audit(user.username, "alert_note", {"alert_id": alert_id, "note": body.note})
    return AckOut(**ack)


class StreamSlots:
    """Counts the open live-alert streams per user and in total (in this API process)."""

    def __init__(self) -> None:
        self.per_user: dict[str, int] = {}
        self.total = 0

    def acquire(self, username: str, per_user: int, total: int) -> str | None:
        """Take a slot; the reason it is refused, or None when taken."""
        if self.total >= total:
            return f"too many live alert streams are open ({total}); try again later"
        if self.per_user.get(username, 0) >= per_user:
            return f"you already have {per_user} live alert streams open; close one first"
        self.per_user[username] = self.per_user.get(username, 0) + 1
        self.total += 1
        return None

    def release(self, username: str) -> None:
        """Give a slot back."""
        self.total -= 1
        left = self.per_user.get(username, 1) - 1
        if left > 0:
            self.per_user[username] = left
        else:
            self.per_user.pop(username, None)


def _slots(app) -> StreamSlots:
    if getattr(app.state, "alert_slots", None) is None:
        app.state.alert_slots = StreamSlots()
    return app.state.alert_slots


def stream_client(app) -> aioredis.Redis:
    """The one asyncio Redis client (one connection pool, sized to the stream cap) every alert stream shares.

    Made on first use in the serving event loop (a pool's connections belong to the loop that opened them)."""
    loop = asyncio.get_running_loop()
    current = getattr(app.state, "stream_redis", None)
    if current is None or current[0] is not loop:
        settings = app.state.settings
        app.state.stream_redis = (loop, async_redis_client(settings.redis_url,
                                                           max_connections=settings.alert_streams_total + 4))
    return app.state.stream_redis[1]


async def close_stream_pool(app) -> None:
    """Close the shared stream pool (app shutdown)."""
    current = getattr(app.state, "stream_redis", None)
    app.state.stream_redis = None
    if current is not None and current[0] is asyncio.get_running_loop():
        await current[1].aclose()


class SessionEnded(Exception):
    """The stream's user was deleted, disabled, lost the role, or their token/key was revoked."""


def _rechecker(store, token: str | None, api_key: str | None, settings):
    """An async callable that re-validates the stream's credentials at most every CCTV_STREAM_RECHECK_S seconds
    (``settings``, which also give the current session idle timeout and key lifetime): the user (with current role
    and camera limits) or :class:`SessionEnded`."""
    every_s = settings.stream_recheck_s
    next_check = time.monotonic() + every_s
    current: list[User | None] = [None]

    async def recheck(user: User) -> User:
        nonlocal next_check
        if time.monotonic() < next_check:
            return current[0] or user
        next_check = time.monotonic() + every_s
        fresh = await run_in_threadpool(resolve_user, store, token, api_key, settings)
        if fresh is None or not fresh.may("operator"):
            raise SessionEnded("the session ended (signed out, revoked, or the user changed)")
        current[0] = fresh
        return fresh

    return recheck


async def _tail(client: aioredis.Redis, user: User, after: str | None, block_ms: int,
                recheck) -> AsyncIterator[dict | None]:
    """Alerts after ``after`` (or from now), then live ones; yields None every ``block_ms`` of wall-clock time
    (keep-alive), whatever other cameras' alerts arrive meanwhile: a keep-alive sent only after an empty read would
    come late or never while cameras the user cannot see raise alerts, and so tell a camera-limited user of them.

    ``recheck(user)`` runs before every read: it returns the (possibly updated) user or raises
    :class:`SessionEnded`."""
    last = after or "$"
    interval = block_ms / 1000
    due = time.monotonic() + interval
    while True:
        user = await recheck(user)
        wait_ms = max(1, int((due - time.monotonic()) * 1000))
        reply = await client.xread({keys.ALERT_STREAM: last}, count=100, block=wait_ms)
        if not reply and last == "$":
            top = await client.xrevrange(keys.ALERT_STREAM, count=1)
            last = top[0][0].decode() if top else "0-0"
        for sid, fields in reply[0][1] if reply else ():
            last = sid.decode()
            alert = _alert(sid, fields)
            if user.sees(alert["alert"]["camera_id"]):
                yield alert
        if time.monotonic() >= due:
            due = time.monotonic() + interval
            yield None


def _check_after(after: str | None) -> None:
    import re

    if after is not None and not re.fullmatch(STREAM_ID, after):
        raise HTTPException(422, "after: must be an alert stream id like 1-0")


async def _ws_credentials(websocket: WebSocket, timeout_s: float) -> tuple[str | None, str | None]:
    """(token, api key) of an accepted WebSocket: the ``X-API-Key`` header, else the first message
    ``{"token": "..."}`` within ``timeout_s`` (never the URL, which ends up in access logs)."""
    api_key = websocket.headers.get("x-api-key")
    if api_key:
        return None, api_key
    try:
        first = await asyncio.wait_for(websocket.receive_text(), timeout_s)
        token = json.loads(first).get("token")
    except (TimeoutError, ValueError, AttributeError):
        return None, None
    return (token if isinstance(token, str) and token else None), None


async def _send_alerts(websocket: WebSocket, alerts: AsyncIterator[dict | None]) -> None:
    """Send every alert of ``alerts`` as a JSON message (its keep-alives, None, are not sent: the client's
    disconnect is noticed by :func:`_client_leaves`, a dead peer by the server's protocol pings)."""
    async for item in alerts:
        if item is not None:
            await websocket.send_json(item)


async def _client_leaves(websocket: WebSocket) -> None:
    """Returns once the connection ends: the client closed it, it dropped, or the server is shutting down (uvicorn
    then closes the socket with 1012 and hands the handler a disconnect). The client's other messages are
    ignored."""
    while True:
        message = await websocket.receive()
        if message.get("type") == "websocket.disconnect":
            return


async def _until_either(sender: Callable[[], Awaitable[None]],
                        watcher: Callable[[], Awaitable[None]]) -> Literal["sender", "client"]:
    """Run the sender and the client watcher together until either ends, then cancel the other and wait for it
    (the Redis tail is stopped before the stream's slot is released). Returns which ended first; an exception of
    the sender (:class:`SessionEnded`, a failed send) is raised.

    An anyio task group, not bare asyncio tasks: a cancellation from outside (a test client leaving, the server
    giving up on the handler) then stays the caller's, and is neither lost nor mistaken for the handler's own."""
    ended: dict[str, BaseException | None] = {}

    async def run(name: str, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
            ended.setdefault(name, None)
        except Exception as exc:  # noqa: BLE001 - handed to the caller below (the sender's) or ends the stream
            ended.setdefault(name, exc)
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "sender", sender)
        tg.start_soon(run, "client", watcher)
    first = next(iter(ended))  # one of them ended (a cancellation from outside was re-raised by the task group)
    if first == "client" and ended["client"] is not None:
        logger.debug("alert websocket: reading from the client failed (%r)", ended["client"])
    if first == "sender" and ended["sender"] is not None:
        raise ended["sender"]
    return first  # type: ignore[return-value]


@router.websocket("/ws")
async def alerts_ws(websocket: WebSocket, after: str | None = None) -> None:
    """Live alerts as JSON messages ``{"id", "alert"}``.

    Authenticate with the ``X-API-Key`` header, or send ``{"token": "<bearer token>"}`` as the first message within
    CCTV_WS_AUTH_TIMEOUT_S (default 5 s). Close codes: 4401 not authenticated or the session ended (the user and
    token are re-checked every CCTV_STREAM_RECHECK_S, at most 30 s), 4422 bad ``after``, 4429 too many streams.
    Later client messages are ignored; the stream, and its slot, end as soon as the client goes."""
    app = websocket.app
    settings = app.state.settings
    store = app.state.api_store
    try:
        _check_after(after)
    except HTTPException as exc:
        await websocket.close(code=4422, reason=str(exc.detail))
        return
    await websocket.accept()
    try:
        token, api_key = await _ws_credentials(websocket, settings.ws_auth_timeout_s)
    except WebSocketDisconnect:
        return
    user = await run_in_threadpool(resolve_user, store, token, api_key, settings) if token or api_key else None
    if user is None or not user.may("operator"):
        await websocket.close(code=4401, reason="not authenticated")
        return
    slots = _slots(app)
    refused = slots.acquire(user.username, settings.alert_streams_per_user, settings.alert_streams_total)
    if refused:
        logger.info("alert websocket of %s refused: %s", user.username, refused)
        await websocket.close(code=4429, reason=refused[:120])
        return
    try:
        client = stream_client(app)
        last = after
        if last is None:  # start from "now", fixed before anything is sent so no alert falls in a gap
            top = await client.xrevrange(keys.ALERT_STREAM, count=1)
            last = top[0][0].decode() if top else "0-0"
        recheck = _rechecker(store, token, api_key, settings)
        alerts = _tail(client, user, last, int(settings.ws_poll_s * 1000), recheck)
        if await _until_either(lambda: _send_alerts(websocket, alerts), lambda: _client_leaves(websocket)) == "client":
            logger.debug("alert websocket of %s: the client left", user.username)
    except SessionEnded as exc:
        logger.info("alert websocket of %s closed: %s", user.username, exc)
        try:
            await websocket.close(code=4401, reason="session ended")
        except (WebSocketDisconnect, RuntimeError, OSError) as gone:  # the client had already gone: nothing to tell
            logger.debug("alert websocket of %s: client gone before the close (%r)", user.username, gone)
    except (WebSocketDisconnect, RuntimeError, OSError):  # OSError: uvicorn's ClientDisconnected on a send
        logger.debug("alert websocket of %s closed", user.username)
    finally:
        slots.release(user.username)


def _credentials(request: Request) -> tuple[str | None, str | None]:
    """(bearer token, API key) of a request, as the authentication dependency read them."""
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return token, (None if token else request.headers.get("x-api-key"))


@router.get("/stream", summary="Live alerts as Server-Sent Events (resumes from Last-Event-ID)",
            response_class=StreamingResponse,
            description="Each alert is an `alert` event whose data is `{\"id\", \"alert\"}`; idle comments keep the "
                        "connection open. The user and token are re-checked every CCTV_STREAM_RECHECK_S (at most "
                        "30 s): when the session ended the stream sends an `end` event and closes. When Redis "
                        "fails after the stream began, it sends an `unavailable` event (with `retry: 5000`) and "
                        "closes: an EventSource reconnects by itself. At most "
                        "CCTV_ALERT_STREAMS_PER_USER streams per user and CCTV_ALERT_STREAMS_TOTAL in all (429).",
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       429: {"model": ErrorOut, "description": "Too many open alert streams.",
                             "headers": {"Retry-After": {"schema": {"type": "integer"}}}}})
async def alerts_sse(request: Request, user: Operator,
                     after: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
                     last_event_id: Annotated[str | None, Header(pattern=STREAM_ID)] = None) -> Response:
    start = after or last_event_id
    _check_after(start)
    app = request.app
    settings = app.state.settings
    slots = _slots(app)
    refused = slots.acquire(user.username, settings.alert_streams_per_user, settings.alert_streams_total)
    if refused:
        logger.info("alert stream of %s refused: %s", user.username, refused)
        return JSONResponse({"detail": refused}, status_code=429, headers={"Retry-After": "30"})
    token, api_key = _credentials(request)
    recheck = _rechecker(app.state.api_store, token, api_key, settings)

    async def events() -> AsyncIterator[str]:
        try:
            client = stream_client(app)
            begin = start
            if begin is None:
                top = await client.xrevrange(keys.ALERT_STREAM, count=1)
                begin = top[0][0].decode() if top else "0-0"
            async for item in _tail(client, user, begin, int(settings.ws_poll_s * 1000), recheck):
                if await request.is_disconnected():
                    break
                if item is None:
                    yield ": keep-alive\n\n"
                else:
                    yield f"id: {item['id']}\nevent: alert\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"
        except SessionEnded as exc:
            logger.info("alert stream of %s closed: %s", user.username, exc)
            yield 'event: end\ndata: {"reason": "session ended"}\n\n'
        except redis.RedisError as exc:  # the answer has started: no 503 now, a last event and a clean close
            logger.warning("alert stream of %s ended: the event store is unavailable (%s)", user.username, exc)
            yield SSE_STORE_DOWN
        finally:
            slots.release(user.username)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
