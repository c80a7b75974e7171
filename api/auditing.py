"""Audit of every API request that a handler did not audit itself: refused and failed requests (401, 403, 404,
422, 429, ...) and the queries whose routers keep no record of their own.

A pure ASGI middleware opens an :class:`AuditContext` per ``/api/`` request (client address, and the user once the
auth dependency has resolved one). :meth:`api.store.ApiStore.audit` reads the context for the client address and
marks the request as audited; when the response starts, a request that nobody audited is recorded here if it was
refused or failed (status >= 400) or is a query (:data:`QUERY_PREFIXES`) -- with the user (or ``-`` when there
was none), the method and path, the query parameters and the status. Bodies are never read or recorded.

A request refused with 503 because Redis is down (:func:`mark_store_unavailable`) is always recorded, as
``store_unavailable``, even when its route already wrote a record: with the user if authentication had resolved one,
else the user name the caller claimed (a login's, :func:`set_claimed_user`; ``authenticated`` false) or ``-``, and
the client address, method, path and query. Such records wait in the API's audit spool until Redis is back
(:mod:`pipeline.store.audit_spool`). A token, API key or password is never recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool

from pipeline.store.audit_spool import AuditSpool

logger = logging.getLogger(__name__)

# queries whose successful answers are audited here when the handler did not record them itself
QUERY_PREFIXES = ("/api/plates", "/api/faces", "/api/media", "/api/exports", "/api/cases", "/api/audit")
QUERY_PATTERNS = (re.compile(r"^/api/cameras/[^/]+/(events|snapshot)$"),)
# never audited: health probes and the static page
SKIP = ("/api/health",)
_SECRET_PARAMS = {"token", "access_token", "api_key", "key", "password"}


@dataclass
class AuditContext:
    """What the audit of one request knows: the client address, the user, and whether a record was written."""

    ip: str
    user: str | None = None
    audited: bool = False
    claimed_user: str | None = None  # a user name the caller gave but that is not (yet) authenticated: a login's
    store_unavailable: bool = False  # the answer is a 503 because Redis is down
    extra: dict[str, Any] = field(default_factory=dict)


_CONTEXT: ContextVar[AuditContext | None] = ContextVar("audit_context", default=None)


def current_context() -> AuditContext | None:
    """The audit context of the request being served, or None outside a request."""
    return _CONTEXT.get()


def set_user(username: str) -> None:
    """Record the authenticated user of the current request (called by the auth dependency)."""
    ctx = _CONTEXT.get()
    if ctx is not None:
        ctx.user = username


def set_claimed_user(username: str) -> None:
    """Record the user name the caller claims (a login's, before the password is checked) for the audit of a
    request that fails before it is authenticated."""
    ctx = _CONTEXT.get()
    if ctx is not None:
        ctx.claimed_user = username[:200]


def mark_store_unavailable() -> None:
    """Mark the current request as refused because Redis is down: it is audited as ``store_unavailable``."""
    ctx = _CONTEXT.get()
    if ctx is not None:
        ctx.store_unavailable = True


def _is_query(path: str) -> bool:
    return path.startswith(QUERY_PREFIXES) or any(p.match(path) for p in QUERY_PATTERNS)


class AuditMiddleware:
    """ASGI middleware writing the generic audit records (see the module docstring)."""

    def __init__(self, app, store_getter) -> None:
        self.app = app
        self.store_getter = store_getter

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path.startswith(SKIP):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ctx = AuditContext(ip=client[0] if client else "unknown")
        token = _CONTEXT.set(ctx)
        status: list[int] = []

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start" and not status:
                status.append(int(message["status"]))
                await run_in_threadpool(self._record, scope, ctx, status[0])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if not status:
                await run_in_threadpool(self._record, scope, ctx, 500)
            raise
        finally:
            _CONTEXT.reset(token)

    def _record(self, scope, ctx: AuditContext, status: int) -> None:
        store_down = ctx.store_unavailable and status == 503
        if not store_down and (ctx.audited or not (status >= 400 or _is_query(scope["path"]))):
            return
        params = _request_params(scope)
        user = ctx.user or "-"
        if store_down:
            action = "store_unavailable"
            params["authenticated"] = ctx.user is not None
            if ctx.user is None and ctx.claimed_user:
                user = ctx.claimed_user
        else:
            action = "refused" if 400 <= status < 500 else ("failed" if status >= 500 else "query")
        try:
            self.store_getter().audit(user, action, params, status=status, ip=ctx.ip)
        except Exception as exc:  # noqa: BLE001 - a failed audit write must not turn an answer into a 500
            logger.error("could not write the audit record of %s %s: %s", scope.get("method"), scope["path"], exc)


def _request_params(scope) -> dict[str, Any]:
    """The method, path and query parameters of a request (secret parameters left out, values cut at 200)."""
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
             if k.lower() not in _SECRET_PARAMS]
    params: dict[str, Any] = {"method": scope.get("method"), "path": scope["path"]}
    for k, v in query:
        params.setdefault(k, [])
        params[k].append(v[:200])
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in params.items()}


def replay_spool(spool: AuditSpool, client: Any) -> int:
    """Append the audit records spooled during an outage (see :class:`AuditSpool`); never raises."""
    try:
        return spool.replay(client)
    except Exception as exc:  # noqa: BLE001 - the spool folder unusable: said, and tried again later
        logger.error("could not replay the audit spool under %s: %s", spool.root, exc)
        return 0


async def audit_replay_loop(spool: AuditSpool, client: Any, interval_s: float) -> None:
    """Offer the spooled audit records to Redis every ``interval_s`` until cancelled (a quiet API replays too)."""
    while True:
        await asyncio.sleep(interval_s)
        await run_in_threadpool(replay_spool, spool, client)
