"""Bounded request bodies: authentication and the size limit are checked before a body is read.

:class:`BodyGuard` is an ASGI middleware in front of the whole app. For a request that carries a body to ``/api/``
(except the public ones: login) it

1. refuses an anonymous caller (401) before a single body byte is read or spooled to disk;
2. refuses a declared ``Content-Length`` over the limit of the request (413) before the body is read;
3. counts the bytes as the app reads them and stops a body without (or lying about) ``Content-Length``
   (chunked) as soon as it passes the limit (413).

The limit is ``max_upload_bytes * max_photos`` plus 64 KiB of form overhead for ``multipart/form-data`` sent to a
route that takes file uploads (image uploads; each file is also checked against ``max_upload_bytes`` by
:func:`api.images.read_upload`; a route may declare a smaller limit of its own, :func:`own_upload_limit`, as the
watchlist CSV import does) and ``max_body_bytes`` for every other body (JSON, and a form sent anywhere else).

The login limits (:func:`login_address`, :func:`account_free_failures` and the ``LOGIN_*`` constants below) are here
too: failed password checks are counted per (user, address group), per address group and per account; see
:func:`api.routes.auth.login`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator

import redis
from fastapi import params
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auditing import mark_store_unavailable
from api.settings import ApiSettings

logger = logging.getLogger(__name__)

PUBLIC_BODY_PATHS = frozenset({"/api/auth/login"})
"""Paths that take a body from anonymous callers."""
FORM_OVERHEAD = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# -- login limits ------------------------------------------------------------------------------------------------
# An attacker with many addresses (a botnet, the 2^64 addresses of one IPv6 /64) gets CCTV_LOGIN_MAX_PER_USER free
# guesses per address at one account, and each new address starts at no backoff. The per-account limit counts the
# failures of one account from every address together; its waits are capped low (LOGIN_ACCOUNT_BACKOFF_MAX_S) so
# that an attacker cannot keep the real user out for long, and it never applies at an address group where the
# user signed in successfully lately (LOGIN_KNOWN_ADDRESS_*): a control-room operator at the usual desk is never
# held up by someone else's guessing, whatever its rate.
LOGIN_ACCOUNT_FREE_FACTOR = 4
"""Failed logins of one account, from all addresses together, before each further attempt at it waits: this many
times CCTV_LOGIN_MAX_PER_USER (20 with the default 5: a user mistyping at a few desks is never slowed down)."""
LOGIN_ACCOUNT_BACKOFF_MAX_S = 300.0
"""Longest per-account wait (5 minutes, or CCTV_LOGIN_BACKOFF_MAX_S if that is less). The wait starts at
CCTV_LOGIN_BACKOFF_BASE_S and doubles per failure, so a sustained attack gets about one guess at an account per 5
minutes (288 a day) however many addresses it has."""
LOGIN_KNOWN_ADDRESS_S = 30 * 86400
"""An address group where a user signed in successfully stays exempt from that user's account limit this long
after the last success there (the per-(user, address) and per-address limits still apply)."""
LOGIN_KNOWN_ADDRESS_MAX = 16
"""At most this many known address groups are kept per user (the most recently used)."""
LOGIN_IPV6_PREFIX = 64
"""IPv6 addresses are counted per /64 (one site or host usually has a whole /64 to rotate through); IPv4 and
IPv4-mapped IPv6 addresses are counted one by one."""


def login_address(ip: str) -> str:
    """The address group a login from ``ip`` is counted under: the IPv6 /64 network (``2001:db8::/64``), or the
    address itself (IPv4, an IPv4-mapped IPv6 address as IPv4, anything that is not an address as it is)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])  # a zone id (fe80::1%eth0) names no other host
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, LOGIN_IPV6_PREFIX), strict=False))
    return str(address)


def account_free_failures(login_max_per_user: int) -> int:
    """The free failed logins of one account from all addresses together (see :data:`LOGIN_ACCOUNT_FREE_FACTOR`)."""
    return LOGIN_ACCOUNT_FREE_FACTOR * login_max_per_user


class _StoreDown(Exception):
    """Redis did not answer the authentication pre-check."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit (FastAPI re-raises HTTPExceptions as they
    are, so the client gets this 413 whether the body was being parsed as JSON or as a form)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def body_limit(settings: ApiSettings, content_type: str, takes_files: bool = True) -> int:
    """The largest body accepted for a request of this content type to a route that takes file uploads
    (``takes_files``) or not: the upload limit only for a form sent to an upload route, whatever a client declares
    elsewhere (a "multipart" login would otherwise be read whole up to the upload limit)."""
    if takes_files and content_type.lower().startswith("multipart/form-data"):
        return settings.max_upload_bytes * settings.max_photos + FORM_OVERHEAD
    return settings.max_body_bytes


def _takes_files(route: BaseRoute) -> bool:
    """Whether a FastAPI route has a file upload among its body parameters."""
    dependant = getattr(route, "dependant", None)
    return dependant is not None and any(isinstance(f.field_info, params.File) for f in dependant.body_params)


def _endpoints(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every endpoint route, through included routers (FastAPI keeps an included router whole) and mounts."""
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None) or getattr(route, "routes", None)
        if inner:
            yield from _endpoints(inner)
        else:
            yield route


def upload_routes(app: Starlette) -> list[BaseRoute]:
    """The app's routes that take file uploads (computed once per app)."""
    cached = getattr(app.state, "upload_routes", None)
    if cached is None:
        cached = app.state.upload_routes = [route for route in _endpoints(app.routes) if _takes_files(route)]
    return cached


def upload_route(app: Starlette, scope: Scope) -> BaseRoute | None:
    """The route that takes file uploads that the request goes to (method and path both match), or None."""
    return next((route for route in upload_routes(app) if route.matches(scope)[0] == Match.FULL), None)


def is_upload_request(app: Starlette, scope: Scope) -> bool:
    """Whether the request goes to a route that takes file uploads (method and path both match)."""
    return upload_route(app, scope) is not None


def own_upload_limit(route: BaseRoute | None) -> int | None:
    """The upload limit an upload route declares for itself (``max_upload_bytes`` set on its endpoint, e.g. the
    5 MiB CSV import of a watchlist), or None to use the image upload limit."""
    limit = getattr(getattr(route, "endpoint", None), "max_upload_bytes", None)
    return limit if isinstance(limit, int) else None


def request_limit(settings: ApiSettings, content_type: str, route: BaseRoute | None) -> int:
    """The body limit of a request to ``route`` (an upload route, or None): :func:`body_limit`, except that a form
    sent to an upload route with its own limit (:func:`own_upload_limit`) gets that limit plus the form overhead."""
    own = own_upload_limit(route)
    if own is not None and content_type.lower().startswith("multipart/form-data"):
        return own + FORM_OVERHEAD
    return body_limit(settings, content_type, route is not None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyGuard:
    """ASGI middleware: authentication and size limit first, then a streaming cap (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        settings: ApiSettings = app.state.settings
        length_header = _header(scope, b"content-length")
        has_body = _header(scope, b"transfer-encoding") is not None or (length_header not in (None, "", "0"))
        try:
            anonymous = (has_body and scope["path"] not in PUBLIC_BODY_PATHS
                         and not await self._authenticated(app, scope))
        except _StoreDown:
            mark_store_unavailable()  # audited (spooled until Redis is back) with what is known without Redis
            await _reply(send, 503, "the event store is unavailable; try again")
            return
        if anonymous:
            await _reply(send, 401, "not authenticated: send 'Authorization: Bearer <token>' or 'X-API-Key' "
                                    "(checked before the body is read)", {"WWW-Authenticate": "Bearer"})
            return
        limit = request_limit(settings, _header(scope, b"content-type") or "", upload_route(app, scope))
        if length_header is not None:
            try:
                declared = int(length_header)
            except ValueError:
                await _reply(send, 400, "invalid Content-Length")
                return
            if declared > limit:
                logger.info("refused a %s-byte body to %s (limit %s)", declared, scope["path"], limit)
                await _reply(send, 413, f"request body of {declared} bytes is larger than the {limit} bytes "
                                        f"accepted here")
                return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    logger.info("stopped a streamed body to %s at %s bytes (limit %s)", scope["path"], received,
                                limit)
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _reply(send, 413, str(exc.detail))

    @staticmethod
    async def _authenticated(app, scope: Scope) -> bool:
        """Whether the request's bearer token or API key belongs to a user (a pre-check; the routes' own
        dependencies still decide roles and camera limits)."""
        from api.deps import resolve_user

        authorization = _header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        api_key = _header(scope, b"x-api-key")
        if not token and not api_key:
            return False
        try:
            user = await run_in_threadpool(resolve_user, app.state.api_store, token or None, api_key,
                                          app.state.settings)
        except redis.RedisError as exc:
            logger.error("Redis error while authenticating a body request: %s", exc)
            raise _StoreDown from exc
        return user is not None


async def _reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
