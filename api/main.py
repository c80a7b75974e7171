"""App factory: ``uvicorn api.main:create_app --factory``."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketState

from api import openapi as api_openapi
from api.auditing import AuditMiddleware, audit_replay_loop, mark_store_unavailable, replay_spool
from api.clusterconfig import camera_config_loop, sync_camera_config
from api.exportqueue import ALIVE_TTL_S, ExportQueue, alive_key
from api.faces import FaceService
from api.limits import BodyGuard
from api.routes import (
    alerts,
    apikeys,
    audit,
    auth,
    cameras,
    cases,
    evidence,
    exports,
    faces,
    health,
    live,
    media,
    notifications,
    persons,
    plates,
    users,
    watchlists,
)
from api.schemas.auth import PASSWORD_MIN, password_problem
from api.security import SecurityHeaders
from api.settings import ApiSettings
from api.staticmem import MemoryStaticFiles
from api.store import ApiStore
from pipeline.config import ConfigError, load_config
from pipeline.fileperms import apply_service_umask
from pipeline.notify.webhooks import Notifier
from pipeline.search.faces import FaceIndex
from pipeline.secrets import install_log_redaction, url_secrets
from pipeline.settings import get_settings
from pipeline.store.audit_spool import AuditSpool
from pipeline.store.connection import bounded_copy, interactive_async_client, interactive_client, redis_client
from pipeline.store.durability import ensure_durable
from pipeline.store.migrations import backfill_face_alert_media

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


def bootstrap_password_problem(password: str, username: str) -> str | None:
    """Why CCTV_ADMIN_PASSWORD may not be the password of ``username`` (the rules of every password), or None."""
    if len(password) < PASSWORD_MIN:
        return f"needs at least {PASSWORD_MIN} characters"
    return password_problem(password, username)


def bootstrap_admin(store: ApiStore, settings: ApiSettings) -> None:
    """Create the first admin from CCTV_ADMIN_USER / CCTV_ADMIN_PASSWORD if that user does not exist; else, when
    no user exists at all (first run), create ``CCTV_FIRST_ADMIN_USER`` with a generated password, printed once to
    the console (stderr; never to a logger or log file) and to be changed at first login."""
    if settings.admin_user and settings.admin_password:
        if store.get_user(settings.admin_user) is not None:
            return
        problem = bootstrap_password_problem(settings.admin_password, settings.admin_user)
        if problem is None:
            store.put_user(settings.admin_user, "admin", settings.admin_password)
            logger.info("created admin user %s from the environment", settings.admin_user)
            return
        logger.error("CCTV_ADMIN_PASSWORD %s (the rules of every password, README: Security): admin user %s not "
                     "created", problem, settings.admin_user)
    elif settings.admin_user or settings.admin_password:
        logger.warning("%s is set but %s is not: no admin user created from the environment",
                       *(("CCTV_ADMIN_USER", "CCTV_ADMIN_PASSWORD") if settings.admin_user
                         else ("CCTV_ADMIN_PASSWORD", "CCTV_ADMIN_USER")))
    password = store.create_first_admin(settings.first_admin_user)
    if password is None:
        return
    logger.info("first run: created admin user %s (password shown once on the console)", settings.first_admin_user)
    bar = "=" * 72
    sys.stderr.write(f"\n{bar}\n  First run: no user existed, so an admin was created.\n"
                     f"    user name : {settings.first_admin_user}\n    password  : {password}\n"
                     f"  Sign in at the control room; you will be asked to choose a new password.\n"
                     f"  Shown only now. Lost it? python -m api create-user {settings.first_admin_user}\n{bar}\n")
    sys.stderr.flush()


# clearer words than "Field required" for fields people are likely to leave out
MISSING_HINTS = {"reason": "required: give the reason for this search or its case number (recorded in the audit "
                           "trail; face and plate-history searches are personal data under the PDPA)"}


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form")),
               "message": e.get("msg", "invalid"), "type": e.get("type")} for e in exc.errors()]
    for e in errors:
        if e["type"] == "missing" and e["field"] in MISSING_HINTS:
            e["message"] = MISSING_HINTS[e["field"]]
    text = "; ".join(f"{e['field'] or 'request'}: {e['message']}" for e in errors)
    return JSONResponse({"detail": text, "errors": errors}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's answer to an ``HTTPException``, with the machine ``code`` of a :class:`CodedHTTPException` added
    to its body (``detail`` unchanged)."""
    response = await http_exception_handler(request, exc)
    code = getattr(exc, "code", None)
    if code and isinstance(response, JSONResponse):
        return JSONResponse({"detail": exc.detail, "code": code}, status_code=exc.status_code, headers=exc.headers)
    return response


def create_app(settings: ApiSettings | None = None, client: redis.Redis | None = None) -> FastAPI:
    """Build the API (settings from the environment unless given). Sets the service's umask
    (:func:`pipeline.fileperms.apply_service_umask`): exports, crops and the audit spool it writes stay private to
    its user and group, also when uvicorn serves this factory directly."""
    apply_service_umask()
    settings = settings or ApiSettings()
    # a bounded wait per command (CCTV_API_REDIS_TIMEOUT_S) and one quick retry: a primary that hangs gives a 503
    # within seconds instead of requests that pile up in the worker threads
    client = client or interactive_client(settings.redis_url, health_check_interval=30)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # the alert streams' client, made in the serving loop (as alerts.stream_client would) with the same bounds
        app.state.stream_redis = (asyncio.get_running_loop(), stream_redis_client(settings))
        # refuse to serve from a Redis that keeps nothing on disk (CCTV_REDIS_ALLOW_VOLATILE=1 overrides)
        ensure_durable(client, get_settings().redis_allow_volatile, settings.redis_url)
        # audit records spooled during an outage (this process's or a dead one's) go first, in order, once
        await run_in_threadpool(replay_spool, audit_spool, client)
        # the background replay holds the spool while it tries Redis: a short wait, so that the audit records of
        # requests refused meanwhile are not held up for a whole command timeout on a primary that hangs
        replay_client = quick_copy(client, AUDIT_REPLAY_TIMEOUT_S)
        replay_task = asyncio.create_task(audit_replay_loop(audit_spool, replay_client, settings.audit_spool_retry_s))
        try:
            bootstrap_admin(app.state.api_store, settings)
            # the dummy hash of unknown user names, made now so that no login pays for it (equal login cost)
            await run_in_threadpool(app.state.api_store.dummy_hash)
        except redis.RedisError as exc:
            logger.warning("could not bootstrap the admin user (Redis: %s)", exc)
        try:  # exports a killed server left queued or running will never finish: say so
            client.set(alive_key(app.state.export_queue.instance), "1", px=int(ALIVE_TTL_S * 1000))
            await run_in_threadpool(exports.fail_interrupted_exports, client, settings.exports_root())
        except redis.RedisError as exc:
            logger.warning("could not check for interrupted exports (Redis: %s)", exc)
        # several API replicas: this one stays alive for its own jobs and fails those of replicas that are gone
        app.state.export_queue.keep_alive(client, lambda: exports.fail_interrupted_exports(client,
                                                                                           settings.exports_root()))
        sync_camera_config(app, client)  # multi-host: the cameras.yaml pushed to Redis, if any (not --role all)
        config_task = asyncio.create_task(camera_config_loop(app, client))
        try:  # open cases from before legal hold existed get their hold now
            await run_in_threadpool(cases.hold_open_cases, client, settings.recordings_dir)
        except redis.RedisError as exc:
            logger.warning("could not check the legal hold of open cases (Redis: %s)", exc)
        try:  # face alerts from before alerts:face_media existed: their crops enter it (once per store)
            await run_in_threadpool(backfill_face_alert_media, client)
        except redis.RedisError as exc:
            logger.warning("could not index the crops of older face alerts (Redis: %s)", exc)
        notifier = start_notifier(app, settings)  # alert webhooks (pipeline.notify.webhooks)
        yield
        if notifier is not None:
            await run_in_threadpool(notifier.stop)
        config_task.cancel()
        replay_task.cancel()
        for job_id in app.state.export_queue.shutdown():
            client.hset(f"export:{job_id}", mapping={"status": "failed", "error": "the server stopped before the "
                                                                                  "export ran; ask again"})
        await alerts.close_stream_pool(app)
        await live.close_live_hub(app)
        await run_in_threadpool(replay_spool, audit_spool, client)  # a last try; what is left waits on disk
        audit_spool.close()
        if replay_client is not client:
            replay_client.close()
        client.close()

    app = FastAPI(title="CCTV control-room API", version="1.0", lifespan=lifespan,
                  description="Plate and face search, watchlists, live alerts, cameras and evidence export.")
    app.state.settings = settings
    app.state.redis = client
    audit_spool = AuditSpool(settings.audit_spool_dir, settings.audit_spool_max_bytes)
    app.state.api_store = ApiStore(client, settings.scrypt_n, audit_spool=audit_spool)
    app.state.faces = FaceService(FaceIndex(client), settings)
    app.state.export_queue = ExportQueue(settings.export_workers, settings.export_queue)
    try:
        app.state.camera_config = load_config(settings.config_path)
    except (ConfigError, OSError) as exc:
        logger.warning("cameras config %s not loaded: %s", settings.config_path, exc)
        app.state.camera_config = None
    install_log_redaction()
    for url in app.state.camera_config.stream_urls() if app.state.camera_config else []:
        url_secrets(url)  # registered: camera health read from Redis and every log line are redacted by value too
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(redis.RedisError, _redis_down)
    app.add_middleware(BodyGuard)  # anonymous and oversized bodies refused before they are read
    api_openapi.install(app)  # security schemes and the error bodies every route really sends
    # outside the others: refused and failed requests (theirs too) and unrecorded queries are audited
    app.add_middleware(AuditMiddleware, store_getter=lambda: app.state.api_store)
    if settings.cors_origins:
        from api.routes.recordings import PLAYBACK_HEADERS  # a cross-origin player reads these and downloads

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                           expose_headers=[*PLAYBACK_HEADERS, "Content-Disposition", "X-Content-SHA256", "X-Alerts-Scanned",
                                           "X-Alerts-Scan-Complete", "X-Alerts-Scan-Next"])
    app.add_middleware(SecurityHeaders)  # outermost: CSP, no framing, no sniffing on every answer, refusals too
    for module in (health, auth, apikeys, users, plates, faces, persons, watchlists, alerts, cameras, exports, cases,
                   audit, media, evidence, notifications):
        app.include_router(module.router)
    app.include_router(live.router)  # live video (WebSocket) and the video wall layout
    from api.routes import recordings  # recorded playback: timeline and fMP4 stream

    app.include_router(recordings.router)
    STATIC_DIR.mkdir(exist_ok=True)
    # from memory: the page loads even while every worker thread waits on Redis (a hung primary)
    app.mount("/", MemoryStaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


def start_notifier(app: FastAPI, settings: ApiSettings) -> Notifier | None:
    """Start the alert webhook workers of the loaded cameras.yaml (None when it has none): each on its own Redis
    client, whose reads wait longer than their XREADGROUP BLOCK."""
    config = app.state.camera_config
    hooks = list(config.notifications.webhooks) if config is not None else []
    if not any(h.enabled for h in hooks):
        return None
    notifier = Notifier(redis_client(settings.redis_url, socket_timeout=30, socket_connect_timeout=5,
                                     health_check_interval=30), hooks)
    notifier.start()
    return notifier


def stream_redis_client(settings: ApiSettings) -> aioredis.Redis:
    """The asyncio client every live alert stream shares (one pool, sized to the stream cap): the API's bounds,
    plus the longest ``XREAD BLOCK`` of a stream (CCTV_WS_POLL_S) on each command: the one place the API waits
    longer on Redis, because that wait is the stream's idle poll."""
    return interactive_async_client(settings.redis_url, read_extra_s=settings.ws_poll_s,
                                    max_connections=settings.alert_streams_total + 4)


AUDIT_REPLAY_TIMEOUT_S = 0.5
"""The longest wait of one Redis command of the background audit spool replay (it retries every
CCTV_AUDIT_SPOOL_RETRY_S)."""


def quick_copy(client: redis.Redis, timeout_s: float) -> redis.Redis:
    """A :func:`~pipeline.store.connection.bounded_copy` of ``client`` (close it after use); a stand-in without a
    connection pool (a test's) as it is."""
    if not isinstance(getattr(client, "connection_pool", None), redis.ConnectionPool):
        return client
    return bounded_copy(client, timeout_s)


STORE_DOWN = "the event store is unavailable; try again"
WS_TRY_AGAIN_LATER = 1013
"""WebSocket close code of a stream whose Redis failed (RFC 6455 "Try Again Later"): the page reconnects."""


async def _redis_down(conn: Request | WebSocket, exc: Exception) -> JSONResponse | None:
    """Any Redis error (connection refused or lost, a timeout on a primary that hangs, no primary known to the
    Sentinels): 503 for a request, audited as ``store_unavailable``; a WebSocket is closed with 1013 instead (an
    HTTP answer cannot be sent on it). Async: the answer never waits for a worker thread."""
    logger.error("Redis error on %s: %s", conn.url.path, exc)
    if conn.scope["type"] == "websocket":
        await _close_websocket(conn)  # type: ignore[arg-type]
        return None
    mark_store_unavailable()  # audited as store_unavailable (spooled on disk until Redis is back)
    return JSONResponse({"detail": STORE_DOWN, "code": "store_unavailable"}, status_code=503)


async def _close_websocket(websocket: WebSocket) -> None:
    """Close ``websocket`` with 1013 unless it is closed already (refused before its handshake if not accepted)."""
    if WebSocketState.DISCONNECTED in (websocket.application_state, websocket.client_state):
        return
    try:
        await websocket.close(code=WS_TRY_AGAIN_LATER, reason=STORE_DOWN)
    except (RuntimeError, OSError) as gone:  # the client went meanwhile
        logger.debug("websocket %s gone before its close (%r)", websocket.url.path, gone)


__all__ = ["HTTPException", "create_app"]
