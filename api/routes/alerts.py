"""Alerts: backlog, acknowledgement, and live delivery over WebSocket and Server-Sent Events.

Live delivery tails the ``alerts`` stream with a blocking XREAD from the last id the client has, so replay after a
reconnect (``?after=<id>`` or SSE ``Last-Event-ID``) and live alerts come through one path with no gap.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse

from api.deps import ApiStoreDep, Operator, RedisDep, SettingsDep, User, resolve_user
from api.schemas.alerts import AckOut, AckRequest, AlertOut
from api.streamscan import scan_stream
from pipeline.store import keys

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/alerts", tags=["alerts"])

STREAM_ID = r"^\d{1,20}-\d{1,20}$"
REF_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


def _alert(sid: bytes | str, fields: dict, acks: dict | None = None) -> dict:
    sid = sid.decode() if isinstance(sid, bytes) else sid
    alert = json.loads(fields[b"alert"])
    ack = (acks or {}).get(alert["alert_id"])
    return {"id": sid, "alert": alert, "ack": ack}


def _with_acks(client, user: User, entries: list) -> list[AlertOut]:
    """AlertOut of the stream entries the user may see, each with its acknowledgement (who, note, when) or None."""
    alerts = [a for a in (_alert(sid, f) for sid, f in entries) if user.sees(a["alert"]["camera_id"])]
    ids = [a["alert"]["alert_id"] for a in alerts]
    raw_acks = client.hmget(keys.ALERT_ACKS, ids) if ids else []
    out = []
    for a, raw in zip(alerts, raw_acks, strict=True):
        a["ack"] = json.loads(raw) if raw else None
        out.append(AlertOut(**a))
    return out


def _matcher(user: User, entry_id: str | None, watchlist_id: str | None):
    """Predicate on raw alert-stream fields: the alert is of this entry/watchlist and on a camera the user sees.

    The ids are plain tokens (:data:`REF_ID`), so a quoted id in the JSON payload is a cheap, encoding-agnostic
    pre-filter before the payload is parsed."""
    needles = [f'"{v}"'.encode() for v in (entry_id, watchlist_id) if v]

    def match(fields: dict) -> bool:
        raw = fields.get(b"alert", b"")
        if not all(n in raw for n in needles):
            return False
        alert = json.loads(raw)
        return ((entry_id is None or alert.get("entry_id") == entry_id)
                and (watchlist_id is None or alert.get("watchlist_id") == watchlist_id)
                and user.sees(alert.get("camera_id", "")))

    return match


_SCAN_HEADERS = {200: {"headers": {
    "X-Alerts-Scanned": {"description": "Filtered requests: alerts read.", "schema": {"type": "integer"}},
    "X-Alerts-Scan-Complete": {"description": "Filtered requests: false when the scan cap stopped the scan before "
                               "`limit` matches were found.", "schema": {"type": "boolean"}}}}}


@router.get("", response_model=list[AlertOut], summary="Alerts after a stream id (backlog), oldest first",
            responses=_SCAN_HEADERS,
            description="Each alert comes with its acknowledgement (`ack`: who, note, when) or null. With `entry_id` "
                        "and/or `watchlist_id` only that entry's / watchlist's alerts are returned: the stream has no "
                        "per-entry index, so at most CCTV_ALERT_FILTER_SCAN alerts (default 20000) are read, the "
                        "newest ones (or the first ones after `after`); the headers `X-Alerts-Scanned` and "
                        "`X-Alerts-Scan-Complete` (false when the cap stopped the scan before `limit` matches) say "
                        "how far it looked.")
def list_alerts(user: Operator, client: RedisDep, settings: SettingsDep, response: Response,
                after: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                entry_id: Annotated[str | None, Query(pattern=REF_ID, description="Only this watchlist entry's "
                                                      "alerts (person entries: the person id).")] = None,
                watchlist_id: Annotated[str | None, Query(pattern=REF_ID,
                                                          description="Only this watchlist's alerts.")] = None,
                ) -> list[AlertOut]:
    if entry_id or watchlist_id:
        scan = scan_stream(client, keys.ALERT_STREAM, _matcher(user, entry_id, watchlist_id), limit,
                           settings.alert_filter_scan, start=after, newest_first=after is None)
        response.headers["X-Alerts-Scanned"] = str(scan.scanned)
        response.headers["X-Alerts-Scan-Complete"] = "false" if scan.capped else "true"
        entries = scan.entries if after is not None else list(reversed(scan.entries))
        return _with_acks(client, user, entries)
    if after is None:
        entries = list(reversed(client.xrevrange(keys.ALERT_STREAM, count=limit)))
    else:
        entries = client.xrange(keys.ALERT_STREAM, f"({after}", "+", count=limit)
    return _with_acks(client, user, entries)


@router.post("/{alert_id}/ack", response_model=AckOut, summary="Acknowledge an alert with a note")
def ack_alert(alert_id: str, body: AckRequest, user: Operator, client: RedisDep, store: ApiStoreDep) -> AckOut:
    sid = client.hget(keys.ALERT_INDEX, alert_id)
    entries = client.xrange(keys.ALERT_STREAM, sid, sid) if sid else []
    if not entries or not user.sees(_alert(*entries[0])["alert"]["camera_id"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} not found")
    ack = {"by": user.username, "note": body.note, "at": time.time()}
    client.hset(keys.ALERT_ACKS, alert_id, json.dumps(ack, ensure_ascii=False))
    store.audit(user.username, "alert_ack", {"alert_id": alert_id, "note": body.note})
    return AckOut(**ack)


async def _tail(redis_url: str, user: User, after: str | None, block_ms: int) -> AsyncIterator[dict | None]:
    """Alerts after ``after`` (or from now), then live ones; yields None on each idle poll (keep-alive)."""
    client = aioredis.from_url(redis_url)
    try:
        last = after or "$"
        while True:
            reply = await client.xread({keys.ALERT_STREAM: last}, count=100, block=block_ms)
            if not reply:
                if last == "$":
                    top = await client.xrevrange(keys.ALERT_STREAM, count=1)
                    last = top[0][0].decode() if top else "0-0"
                yield None
                continue
            for sid, fields in reply[0][1]:
                last = sid.decode()
                alert = _alert(sid, fields)
                if user.sees(alert["alert"]["camera_id"]):
                    yield alert
    finally:
        await client.aclose()


def _check_after(after: str | None) -> None:
    import re

    if after is not None and not re.fullmatch(STREAM_ID, after):
        raise HTTPException(422, "after: must be an alert stream id like 1-0")


@router.websocket("/ws")
async def alerts_ws(websocket: WebSocket, token: str | None = None, after: str | None = None) -> None:
    """Live alerts as JSON messages ``{"id", "alert"}``; authenticate with ``?token=`` or ``X-API-Key``."""
    store = websocket.app.state.api_store
    user = resolve_user(store, token, websocket.headers.get("x-api-key"))
    if user is None or not user.may("operator"):
        await websocket.close(code=4401, reason="not authenticated")
        return
    try:
        _check_after(after)
    except HTTPException as exc:
        await websocket.close(code=4422, reason=str(exc.detail))
        return
    await websocket.accept()
    settings = websocket.app.state.settings
    last = after
    if last is None:  # start from "now", fixed before anything is sent so no alert falls in a gap
        top = websocket.app.state.redis.xrevrange(keys.ALERT_STREAM, count=1)
        last = top[0][0].decode() if top else "0-0"

    try:
        async for item in _tail(settings.redis_url, user, last, int(settings.ws_poll_s * 1000)):
            if item is not None:
                await websocket.send_json(item)
    except (WebSocketDisconnect, RuntimeError):
        logger.debug("alert websocket of %s closed", user.username)


@router.get("/stream", summary="Live alerts as Server-Sent Events (resumes from Last-Event-ID)")
async def alerts_sse(request: Request, user: Operator,
                     after: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    start = after or last_event_id
    _check_after(start)
    settings = request.app.state.settings
    if start is None:
        top = request.app.state.redis.xrevrange(keys.ALERT_STREAM, count=1)
        start = top[0][0].decode() if top else "0-0"

    async def events() -> AsyncIterator[str]:
        async for item in _tail(settings.redis_url, user, start, int(settings.ws_poll_s * 1000)):
            if await request.is_disconnected():
                break
            if item is None:
                yield ": keep-alive\n\n"
            else:
                yield f"id: {item['id']}\nevent: alert\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
