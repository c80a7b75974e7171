"""Live video of the cameras over WebSocket (fragmented MP4 for Media Source Extensions) and the video wall layout.

The stream comes from :class:`pipeline.live.hub.LiveHub`, which runs in this API process: one upstream ffmpeg per
camera stream however many viewers (every viewer of one API process shares it), started on the first viewer and
stopped ``CCTV_LIVE_LINGER_S`` after the last. The API process is where the viewers' authentication, role and
camera limits are checked, and forwarding bytes costs it little (nothing is decoded); a deployment with several
API processes gets one upstream per camera per process.

**Preload** (``CCTV_LIVE_PRELOAD``, default ``layouts``): the camera streams of the saved wall layouts run with no
viewer, so a wall opening shows them at once from the hub's keyframe cache; the set is read from Redis every
``CCTV_LIVE_PRELOAD_REFRESH_S`` and again at once when a layout is saved here (:func:`preload_wanted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import redis
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request, WebSocket, WebSocketDisconnect, status
from starlette.concurrency import run_in_threadpool

from api.deps import Operator, RedisDep, User, resolve_user
from api.routes.alerts import SessionEnded, StreamSlots, _rechecker, _ws_credentials
from api.schemas.errors import ErrorOut
from api.schemas.live import LiveInfoOut, WallLayoutIn, WallLayoutOut
from pipeline.config import CAMERA_ID_PATTERN, Config
from pipeline.live.fmp4 import Fragment, InitSegment
from pipeline.live.hub import CODE_REMOVED, LiveHub, LiveSettings, StatusMessage, Viewer

logger = logging.getLogger(__name__)

LAYOUT_KEY = "wall:layout:{username}"
END_SESSION_ENDED = "session_ended"  # reason_code of the "end" message when the user's session ended
END_CAMERA_REVOKED = "camera_revoked"  # reason_code of the "end" message when the camera is no longer permitted
GRID_TILES = {"1": 1, "2x2": 4, "3x3": 9, "4x4": 16}

WS_PROTOCOL = """\
**Live video: `GET /api/live/{camera_id}/ws?stream=main|sub` (WebSocket).** The stream is the camera's own
H.264, remuxed (not re-encoded) into fragmented MP4 for Media Source Extensions, one fragment per frame.

1. Authenticate without putting the token in the URL: send `{"token": "<bearer token>"}` as the first text message
   within CCTV_WS_AUTH_TIMEOUT_S (5 s), or connect with the `X-API-Key` header. Operator role or higher.
2. The server sends text (JSON) and binary messages:
   - `{"type": "hello", "camera_id", "name", "stream"}` once;
   - `{"type": "init", "codec": "avc1.64001f", "mime": "video/mp4; codecs=\\"avc1.64001f\\"", "width", "height",
     "mode"}`, followed by one **binary** message: the init segment (`ftyp`+`moov`); again whenever the upstream
     restarts (then start a new SourceBuffer or `changeType` and append the new init segment);
   - **binary** messages: one or more whole `moof`+`mdat` fragments each (a viewer that fell a little behind
     gets what queued meanwhile in one message; Media Source Extensions take the concatenation in one
     `appendBuffer`), the first one after an init a keyframe;
   - `{"type": "status", "status": "connecting|live|offline", "reason", "reason_code", "mode"}` on every change: an
     offline camera keeps the socket open and is retried by the server (the stream resumes with a new init);
     a camera that stays connected but sends no frame for CCTV_LIVE_STALE_S (3 s) is `offline` with `no_video`
     ("no video from the camera for N s") and `live` again with its next fragment (no new init: the stream goes
     on); a viewer joining such a frozen camera gets the init segment and that `offline` status, never the cached
     old frames, and its video starts at the next keyframe;
     `reason` is English text, `reason_code` the same as a stable code for translation (`refused`, `timeout`,
     `unauthorized`, `forbidden`, `not_found`, `unreachable`, `no_video`, `bad_stream`, `open_failed`,
     `transcode_limit`, `removed`, `config_changed`, `ended`; "" when none);
   - `{"type": "end", "reason", "reason_code"}` before the server closes: `reason_code` `removed` (the camera left
     the configuration; close 4404), `session_ended` (the session ended: signed out, revoked, the user deleted
     or below the operator role; close 4401) or `camera_revoked` (the session goes on but the user's camera
     limits no longer include this camera; close 4403: only this stream ends), `reason` the same in English.
3. Flow control: a client should send `{"ack": N}` (N = fragments received on this socket, i.e. the `moof`
   boxes of the binary messages after their init segments, init segments not counted) every few fragments. Once it does, at most CCTV_LIVE_ACK_WINDOW fragments are in flight; a viewer
   that cannot keep up (slow network or decoder) loses the queued fragments and resumes at the next keyframe, so
   its delay stays bounded and the server never buffers more than CCTV_LIVE_QUEUE_FRAGMENTS fragments for it. A
   client that never acknowledges is only bounded by that queue and its socket buffers.

Close codes: 4401 not authenticated or the session ended (user and token re-checked every CCTV_STREAM_RECHECK_S),
4403 the role does not allow live video, or (with the `end` message `camera_revoked`) the camera is no longer
one the user may see, 4404 no such camera or not one the user may see (camera limits),
4422 a malformed camera id or stream, 4429 too many live streams (CCTV_LIVE_STREAMS_PER_USER per user,
CCTV_LIVE_STREAMS_TOTAL in all). Every live session is audited (`live_start`, `live_stop` with its duration,
bytes and dropped fragments).
"""


MAX_BATCH_FRAGMENTS = 50  # fragments sent in one WebSocket message at most
MAX_BATCH_BYTES = 4 * 2**20
LAYOUT_SCAN = "wall:layout:*"


def live_hub(app) -> LiveHub:
    """The app's live hub (made on first use from the camera config and the CCTV_LIVE_* settings)."""
    hub = getattr(app.state, "live_hub", None)
    if hub is None:
        settings = app.state.settings
        config = app.state.camera_config
        hub = LiveHub(config, LiveSettings(
            linger_s=settings.live_linger_s, queue_fragments=settings.live_queue_fragments,
            queue_bytes=settings.live_queue_bytes, queue_age_s=settings.live_queue_age_s, stale_s=settings.live_stale_s,
            max_transcodes=settings.live_max_transcodes, preload_max=settings.live_preload_max,
            connect_timeout_s=config.ingest.connect_timeout_s if config else 10.0,
            stall_s=config.ingest.stall_timeout_s if config else 10.0))
        app.state.live_hub = hub
    elif hub.applied is not app.state.camera_config:  # a pushed configuration (api.clusterconfig) replaced it
        if _in_event_loop():
            hub.set_config(app.state.camera_config)
        else:  # a sync route (thread pool): camera lookups follow now, the sources from the event loop
            hub.config = app.state.camera_config
    return hub


def _in_event_loop() -> bool:
    """Whether this thread runs the event loop (the hub's sources and their tasks live there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def follow_live_config(app) -> None:
    """Hand a newly loaded camera configuration to the live hub, if there is one: viewers of a camera whose stream
    URL changed move to the new stream; those of a removed camera are ended. Call in the event loop."""
    hub = getattr(app.state, "live_hub", None)
    if hub is not None and hub.applied is not app.state.camera_config:
        hub.set_config(app.state.camera_config)


class CameraGone(Exception):
    """The camera a viewer watches left the configuration."""


class CameraRevoked(Exception):
    """The viewer's session goes on, but their camera limits no longer include the camera they watch."""


async def close_live_hub(app) -> None:
    """Stop the preload loop and every upstream (app shutdown)."""
    task = getattr(app.state, "live_preload_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        app.state.live_preload_task = None
    hub = getattr(app.state, "live_hub", None)
    if hub is not None:
        await hub.close()


# -- preload -------------------------------------------------------------------------------------------------
def layout_streams(layout: dict) -> list[tuple[str, str]]:
    """``(camera_id, variant)`` a saved layout's wall opens: ``auto`` is the sub-stream in a multi-tile grid and the
    main stream on a one-tile wall (as wall.js does; the hub falls back to main for a camera without a sub-stream)."""
    stream = layout.get("stream", "auto")
    variant = stream if stream in ("main", "sub") else ("main" if layout.get("grid") == "1" else "sub")
    return [(cam, variant) for cam in layout.get("tiles", []) if isinstance(cam, str)]


def preload_wanted(app, client: redis.Redis) -> list[tuple[str, str]]:
    """The camera streams to preload, by CCTV_LIVE_PRELOAD: CCTV_LIVE_PRELOAD_CAMERAS, then (``layouts``/``all``)
    the streams of every saved layout, newest first, and of the default wall (:func:`default_wall`, what a user
    without a saved layout opens), then (``all``) every enabled camera's wall stream. Duplicates
    removed; the hub keeps the first CCTV_LIVE_PRELOAD_MAX. Blocking (Redis): call in a thread."""
    settings = app.state.settings
    wanted = [(cam, "sub") for cam in settings.live_preload_cameras]
    if settings.live_preload in ("layouts", "all"):
        layouts = []
        for key in client.scan_iter(match=LAYOUT_SCAN, count=500):
            raw = client.get(key)
            try:
                layout = json.loads(raw) if raw else {}
            except ValueError:
                continue
            if isinstance(layout, dict) and isinstance(layout.get("tiles", []), list):
                layouts.append(layout)
        layouts.sort(key=lambda layout: -_number(layout.get("updated_at")))
        for layout in layouts:
            wanted += layout_streams(layout)
    config = app.state.camera_config
    if settings.live_preload in ("layouts", "all") and settings.live_preload_default_wall:
        wanted += layout_streams(default_wall(config))
    if settings.live_preload == "all" and config is not None:
        wanted += [(c.id, "sub") for c in config.cameras if c.enabled]
    return list(dict.fromkeys(wanted))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


async def apply_preload(app) -> list[str]:
    """Read the preload set now and hand it to the hub; returns the streams preloaded (``camera/variant``)."""
    wanted = await run_in_threadpool(preload_wanted, app, app.state.redis)
    return live_hub(app).set_preload(wanted)


async def _preload_loop(app, wake: asyncio.Event) -> None:
    """Re-evaluate the preload set every CCTV_LIVE_PRELOAD_REFRESH_S and whenever ``wake`` is set (a layout was
    saved); a Redis error keeps the previous set."""
    every = app.state.settings.live_preload_refresh_s
    while True:
        wake.clear()
        try:
            keys = await apply_preload(app)
            logger.debug("live preload: %s", keys)
        except (redis.RedisError, OSError) as exc:
            logger.warning("live preload not re-evaluated (Redis: %s); keeping the previous set", exc)
        except Exception:  # noqa: BLE001 - the loop must outlive anything one evaluation meets; logged with its cause
            logger.exception("live preload not re-evaluated; keeping the previous set")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):  # not wait_for, which can drop the shutdown's cancellation (3.11)
                await wake.wait()


def _wake_preload(app) -> None:
    """Re-evaluate the preload set soon (from any thread: the layout routes run in the thread pool)."""
    wake, loop = getattr(app.state, "live_preload_wake", None), getattr(app.state, "live_preload_loop", None)
    if wake is not None and loop is not None:
        with contextlib.suppress(RuntimeError):  # the loop is closing (shutdown)
            loop.call_soon_threadsafe(wake.set)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the preload loop with the app (unless nothing can be preloaded) and stop every upstream at shutdown."""
    settings = app.state.settings
    if settings.live_preload_max > 0 and (settings.live_preload != "none" or settings.live_preload_cameras):
        app.state.live_preload_wake = asyncio.Event()
        app.state.live_preload_loop = asyncio.get_running_loop()
        app.state.live_preload_task = asyncio.create_task(_preload_loop(app, app.state.live_preload_wake),
                                                          name="live-preload")
    try:
        yield
    finally:
        app.state.live_preload_wake = app.state.live_preload_loop = None
        await close_live_hub(app)


router = APIRouter(prefix="/api/live", tags=["live"], lifespan=_lifespan)


def _slots(app) -> StreamSlots:
    if getattr(app.state, "live_slots", None) is None:
        app.state.live_slots = StreamSlots()
    return app.state.live_slots


REFUSAL_WINDOW_S = 600.0
"""A refusal of the same user, camera and reason within this long of its last audit record is counted, not recorded."""
REFUSAL_KEYS_MAX = 10_000
"""Beyond this many remembered refusals, those with nothing left to record are forgotten."""


class RefusalThrottle:
    """Keeps a wall tile that keeps asking for a camera its user may not see (it retries every 30 s) from writing an
    audit record each time: the first refusal of a user, camera and reason is recorded; the same refusal again
    within ``window_s`` of that record is only counted, and the next record of it, once the window is over, carries
    that count as ``repeats``, so the trail still says how often it happened."""

    def __init__(self, window_s: float = REFUSAL_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # key -> (last record, refusals counted since)

    def note(self, user: str, camera_id: str, reason: str) -> int | None:
        """Count one refusal: None when it is only counted, else the refusals counted since the last record (0 the
        first time) to write with a new record now."""
        key, now = (user, camera_id, reason), self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return None
        self._forget_old(now)
        self._seen[key] = (now, 0)
        return last[1] if last else 0

    def _forget_old(self, now: float) -> None:
        if len(self._seen) < REFUSAL_KEYS_MAX:
            return
        for key, (at, count) in list(self._seen.items()):
            if not count and now - at >= self.window_s:
                del self._seen[key]


def _refusals(app) -> RefusalThrottle:
    if getattr(app.state, "live_refusals", None) is None:
        app.state.live_refusals = RefusalThrottle()
    return app.state.live_refusals


async def _audit_refusal(app, user: str, camera_id: str, reason: str, ip: str) -> None:
    """Audit ``live_refused`` unless the same refusal was recorded within the window (then it is counted)."""
    repeats = _refusals(app).note(user, camera_id, reason)
    if repeats is None:
        logger.debug("live refusal of %s for %s (%s) counted, not recorded again yet", user, camera_id, reason)
        return
    params: dict = {"camera_id": camera_id, "reason": reason}
    if repeats:
        params["repeats"] = repeats
    await _audit(app, user, "live_refused", params, ip)


def _visible_camera(request_app, user: User, camera_id: str):
    config = request_app.state.camera_config
    camera = next((c for c in (config.cameras if config else []) if c.id == camera_id and c.enabled), None)
    return camera if camera is not None and user.sees(camera_id) else None


CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="A camera id of cameras.yaml.")]
StreamQuery = Annotated[Literal["main", "sub"], Query(description="main: the camera's main stream; sub: its "
                                                      "sub-stream (the main one when it has none).")]


@router.get("/{camera_id}/info", response_model=LiveInfoOut, summary="Live stream state of a camera (and the "
            "live WebSocket protocol)", description=WS_PROTOCOL,
            responses={404: {"model": ErrorOut, "description": "No such camera, or not one you may see."}})
def live_info(camera_id: CameraId, request: Request, user: Operator, stream: StreamQuery = "main") -> LiveInfoOut:
    camera = _visible_camera(request.app, user, camera_id)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} not found")
    source = live_hub(request.app).source(camera_id, stream)
    return LiveInfoOut(camera_id=camera.id, name=camera.name, stream=source.variant,
                       has_sub_stream=bool(camera.sub_stream), websocket=f"/api/live/{camera.id}/ws",
                       **source.info())


def default_wall(config: Config | None, sees: Callable[[str], bool] = lambda _camera: True) -> dict:
    """The wall of a user who saved none: the enabled cameras they see, in configuration order, on the smallest
    grid that holds them (at most 4x4)."""
    cams = [c.id for c in (config.cameras if config else []) if c.enabled and sees(c.id)]
    grid = next(g for g, n in GRID_TILES.items() if n >= min(len(cams), 16) or g == "4x4")
    return {"grid": grid, "tiles": cams[:GRID_TILES[grid]], "stream": "auto"}


def _default_layout(request: Request, user: User) -> WallLayoutOut:
    return WallLayoutOut(**default_wall(request.app.state.camera_config, user.sees), saved=False)


@router.get("/layout", response_model=WallLayoutOut, summary="Your saved video wall layout")
def get_layout(request: Request, user: Operator, client: RedisDep) -> WallLayoutOut:
    raw = client.get(LAYOUT_KEY.format(username=user.username))
    if not raw:
        return _default_layout(request, user)
    data = json.loads(raw)
    # cameras the user may no longer see (limits changed, camera removed) are shown as empty tiles
    tiles = [c if c and _visible_camera(request.app, user, c) else None for c in data.get("tiles", [])]
    return WallLayoutOut(grid=data["grid"], tiles=tiles, stream=data.get("stream", "auto"), saved=True,
                         updated_at=data.get("updated_at"))


@router.put("/layout", response_model=WallLayoutOut, summary="Save your video wall layout",
            responses={422: {"description": "A tile names a camera that does not exist or that you may not see."}})
def put_layout(body: WallLayoutIn, request: Request, user: Operator, client: RedisDep) -> WallLayoutOut:
    for i, cam in enumerate(body.tiles):
        if cam is not None and _visible_camera(request.app, user, cam) is None:
            raise HTTPException(422, f"tiles[{i}]: unknown camera {cam!r}")
    record = {"grid": body.grid, "tiles": body.tiles, "stream": body.stream, "updated_at": time.time()}
    client.set(LAYOUT_KEY.format(username=user.username), json.dumps(record))
    _wake_preload(request.app)  # the preload set follows the saved layouts
    return WallLayoutOut(**record, saved=True)


# -- WebSocket -----------------------------------------------------------------------------------------------
async def _authenticate(websocket: WebSocket) -> User | None:
    settings = websocket.app.state.settings
    try:
        token, api_key = await _ws_credentials(websocket, settings.ws_auth_timeout_s)
    except WebSocketDisconnect:
        return None
    if not (token or api_key):
        return None
    user = await run_in_threadpool(resolve_user, websocket.app.state.api_store, token, api_key,
                                     settings)
    websocket.state.credentials = (token, api_key)
    return user


async def _send(websocket: WebSocket, item: InitSegment | list[Fragment] | StatusMessage, mode: str) -> int:
    """Send one hub item (fragments: all in one binary message); returns the bytes of video sent."""
    if isinstance(item, list):
        data = item[0].data if len(item) == 1 else b"".join(f.data for f in item)
        await websocket.send_bytes(data)
        return len(data)
    if isinstance(item, InitSegment):
        await websocket.send_text(json.dumps({"type": "init", "codec": item.codec, "mime": item.mime,
                                              "width": item.width, "height": item.height, "mode": mode}))
        await websocket.send_bytes(item.data)
        return len(item.data)
    await websocket.send_text(json.dumps({"type": "status", "status": item.status, "reason": item.reason,
                                          "reason_code": item.code, "mode": mode}))
    return 0


async def _watch_client(websocket: WebSocket, viewer: Viewer) -> None:
    """Wakes the viewer when the client closes (its other messages, e.g. keep-alives, are ignored)."""
    try:
        while True:
            message = await websocket.receive()
            if message.get("type") == "websocket.disconnect":
                return
            text = message.get("text")
            if text and len(text) < 200:
                try:
                    received = json.loads(text).get("ack")
                except (ValueError, AttributeError):
                    continue
                if isinstance(received, int) and not isinstance(received, bool):
                    viewer.ack(received)
    finally:
        viewer.wake()


async def _stream(websocket: WebSocket, viewer: Viewer, user: User, camera_id: str, recheck) -> None:
    """Forward the viewer's queue to the socket until the client goes or the session ends.

    One wait per frame on the viewer's event (no task per message); the client watcher and a periodic timer wake it
    to notice a closed socket and to re-check the session."""
    loop = asyncio.get_running_loop()
    closed = loop.create_task(_watch_client(websocket, viewer))
    every = websocket.app.state.settings.stream_recheck_s
    window = websocket.app.state.settings.live_ack_window
    ticker = _Ticker(loop, every, viewer.wake)
    next_check = loop.time() + every
    try:
        while not closed.done():
            if viewer.source.retired:
                raise CameraGone(viewer.source.retired)
            if viewer.in_flight() >= window:  # the client is behind: what comes meanwhile queues (bounded) or drops
                await viewer.wait_ack()
                continue
            item = viewer.pop()
            if isinstance(item, Fragment):  # with what else queued meanwhile, up to the window: one message
                room = window - viewer.in_flight() if viewer.acked is not None else MAX_BATCH_FRAGMENTS
                more = viewer.pop_fragments(min(room, MAX_BATCH_FRAGMENTS - 1), MAX_BATCH_BYTES - len(item.data))
                await _send(websocket, [item, *more], viewer.source.mode)
            elif item is not None:
                await _send(websocket, item, viewer.source.mode)
            else:
                await viewer.wait()
            if loop.time() >= next_check:
                next_check = loop.time() + every
                user = await recheck(user)
                if not user.sees(camera_id):
                    raise CameraRevoked("camera no longer permitted")
    finally:
        ticker.cancel()
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await closed


class _Ticker:
    """Calls ``fn`` every ``every`` seconds until cancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float, fn) -> None:
        self.loop, self.every, self.fn = loop, every, fn
        self.handle = loop.call_later(every, self._tick)

    def _tick(self) -> None:
        self.fn()
        self.handle = self.loop.call_later(self.every, self._tick)

    def cancel(self) -> None:
        self.handle.cancel()


async def _audit(app, user: str, action: str, params: dict, ip: str) -> None:
    try:
        await run_in_threadpool(app.state.api_store.audit, user, action, params, None, None, ip)
    except Exception as exc:  # noqa: BLE001 - an audit failure is logged; the stream itself is not the cause
        logger.warning("could not audit %s of %s: %s", action, user, exc)


@router.websocket("/{camera_id}/ws")
async def live_ws(websocket: WebSocket, camera_id: str, stream: str = "main") -> None:
    """Live video of one camera as fragmented MP4 (protocol: the description of ``GET /api/live/{id}/info``)."""
    app = websocket.app
    settings = app.state.settings
    if not re.fullmatch(CAMERA_ID_PATTERN, camera_id) or stream not in ("main", "sub"):
        await websocket.close(code=4422, reason="malformed camera id or stream (main or sub)")
        return
    await websocket.accept()
    user = await _authenticate(websocket)
    if user is None:
        await websocket.close(code=4401, reason="not authenticated")
        return
    if not user.may("operator"):
        await websocket.close(code=4403, reason="live video needs the operator role")
        return
    camera = _visible_camera(app, user, camera_id)
    ip = websocket.client.host if websocket.client else ""
    if camera is None:
        await _audit_refusal(app, user.username, camera_id, "not found or not permitted", ip)
        await websocket.close(code=4404, reason=f"camera {camera_id!r} not found")
        return
    slots = _slots(app)
    refused = slots.acquire(user.username, settings.live_streams_per_user, settings.live_streams_total)
    if refused:
        await websocket.close(code=4429, reason=refused.replace("live alert", "live video")[:120])
        return
    hub = live_hub(app)
    try:
        viewer = hub.subscribe(camera_id, stream)
    except KeyError:  # gone from the hub's configuration meanwhile: the slot must not stay taken
        slots.release(user.username)
        await websocket.close(code=4404, reason=f"camera {camera_id!r} not found")
        return
    started = time.time()
    await _audit(app, user.username, "live_start", {"camera_id": camera_id, "stream": viewer.source.variant}, ip)
    reason = "client closed"
    try:
        await websocket.send_text(json.dumps({"type": "hello", "camera_id": camera.id, "name": camera.name,
                                              "stream": viewer.source.variant}))
        token, api_key = websocket.state.credentials
        await _stream(websocket, viewer, user, camera_id,
                      _rechecker(app.state.api_store, token, api_key, settings))
    except (SessionEnded, CameraGone, CameraRevoked) as exc:
        reason, reason_code, code = (
            ("session ended", END_SESSION_ENDED, 4401) if isinstance(exc, SessionEnded)
            else ("camera no longer permitted", END_CAMERA_REVOKED, 4403) if isinstance(exc, CameraRevoked)
            else ("camera removed", CODE_REMOVED, 4404))
        logger.info("live video of %s for %s closed: %s", camera_id, user.username, exc)
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps({"type": "end", "reason": reason, "reason_code": reason_code}))
            await websocket.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        reason = "connection lost"
    finally:
        hub.unsubscribe(viewer)
        slots.release(user.username)
        stop = asyncio.get_running_loop().create_task(_audit(app, user.username, "live_stop", {
            "camera_id": camera_id, "stream": viewer.source.variant, "seconds": round(time.time() - started, 1),
            "bytes": viewer.sent_bytes, "fragments": viewer.sent_fragments, "dropped_fragments": viewer.dropped,
            "reason": reason}, ip))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(stop)  # recorded even when the server cancels this handler (shutdown)
