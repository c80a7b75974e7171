"""Dependencies as ``Annotated`` aliases: Redis clients, settings, the current user and role checks."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, Header, HTTPException, Request, status

from api.auditing import set_user
from api.settings import ApiSettings
from api.store import ROLES, ApiStore

logger = logging.getLogger(__name__)

# the routes a user who must change their password may still call
PASSWORD_CHANGE_PATHS = frozenset({"/api/auth/me", "/api/auth/password", "/api/auth/logout"})
# the request methods a read-only API key may use on any route; a route that only reads but is sent otherwise (a
# search as POST, for its body) says so with a reading dependency (:data:`ReadingInvestigator`, :func:`require_role`)
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class User:
    """The authenticated caller."""

    username: str
    role: str
    cameras: frozenset[str] | None  # None = every camera
    via: str  # "token" or "api_key"
    must_change: bool = False  # first-run admin or admin-set password: every route but the password change is 403
    read_only: bool = False  # an API key of scope "read": only GET and HEAD requests and routes that only read

    def may(self, role: str) -> bool:
        """Whether the user's role is at least ``role`` (never while a first-login password change is due, so
        that checks outside :func:`get_current_user`, such as the alert WebSocket's, refuse such a user too)."""
        return not self.must_change and ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, camera_id: str) -> bool:
        """Whether the user may see this camera's data."""
        return self.cameras is None or camera_id in self.cameras

    def camera_filter(self, requested: list[str] | None) -> set[str] | None:
        """The cameras a search may cover: the requested ones within the user's own."""
        if requested is None:
            return None if self.cameras is None else set(self.cameras)
        return set(requested) if self.cameras is None else set(requested) & self.cameras


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


def get_api_store(request: Request) -> ApiStore:
    return request.app.state.api_store


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
ApiStoreDep = Annotated[ApiStore, Depends(get_api_store)]

_UNAUTHORISED = HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated: send 'Authorization: Bearer "
                              "<token>' or 'X-API-Key'", headers={"WWW-Authenticate": "Bearer"})


def key_expiry(meta: dict[str, Any], max_days: int) -> float | None:
    """When an API key expires: its ``expires_at``; for a key made before every key had to expire (none), its
    ``created_at`` plus ``max_days`` (CCTV_API_KEY_MAX_DAYS); None for such a key without a usable ``created_at``
    (it is refused as expired: its age is unknown)."""
    if meta.get("expires_at"):
        return float(meta["expires_at"])
    created = meta.get("created_at")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return float(created) + max_days * 86400
    return None


def _live_api_key(store: ApiStore, api_key: str, max_days: int) -> dict[str, Any] | None:
    """The metadata of a live API key (see :meth:`ApiStore.api_key_meta`), or None; a key without ``expires_at``
    also ends at :func:`key_expiry`."""
    meta = store.api_key_meta(api_key)
    if meta is None or meta.get("expires_at"):
        return meta
    expires = key_expiry(meta, max_days)
    if expires is None:
        logger.warning("API key %s of %s refused: no expiry and no created_at, so it is treated as expired; "
                       "mint a new key", meta.get("key_id"), meta.get("username"))
        return None
    if expires <= time.time():
        logger.info("API key %s of %s refused: made without an expiry, it expired %s days (CCTV_API_KEY_MAX_DAYS) "
                    "after its creation", meta.get("key_id"), meta.get("username"), max_days)
        return None
    return meta


def resolve_user(store: ApiStore, token: str | None, api_key: str | None, settings: ApiSettings) -> User | None:
    """The user behind a bearer token or an API key, or None: on every path (routes, WebSockets, their re-checks,
    the body-size pre-check) a token's idle timeout is CCTV_SESSION_IDLE_S as it is now (not as when the token was
    issued) and a key made without an expiry ends CCTV_API_KEY_MAX_DAYS after its creation."""
    username, via, read_only = None, "", False
    if token:
        username, via = store.token_user(token, settings.session_idle_s), "token"
    elif api_key:
        meta = _live_api_key(store, api_key, settings.api_key_max_days)
        if meta is not None:
            username, via, read_only = meta["username"], "api_key", meta["scope"] == "read"
    record = store.get_user(username) if username else None
    if record is None or record.get("disabled"):
        return None  # a disabled user is no user (their sessions were revoked too; this holds for a race)
    cams = record.get("cameras")
    return User(record["username"], record["role"], frozenset(cams) if cams is not None else None, via,
                bool(record.get("must_change")), read_only)


def _authenticate(request: Request, store: ApiStore, authorization: str | None, x_api_key: str | None,
                  reads: bool) -> User:
    """The caller, checked against the live user record and the settings in force; ``reads``: the route only
    reads, so a read-only API key may call it whatever the request method."""
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise _UNAUTHORISED
        token = value.strip()
    user = resolve_user(store, token, x_api_key, request.app.state.settings)
    if user is None:
        raise _UNAUTHORISED
    set_user(user.username)
    if user.must_change and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "password change required: set your own password with "
                            "POST /api/auth/password before using the service")
    if user.read_only and not reads and request.method not in READ_METHODS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is read-only (scope 'read'): only GET and "
                            "HEAD requests and searches")
    return user


def get_current_user(request: Request, store: ApiStoreDep, authorization: Annotated[str | None, Header()] = None,
                     x_api_key: Annotated[str | None, Header()] = None) -> User:
    """The caller, checked on every request against the live user record (a revoked token, a deleted user or a
    changed role shows at once); 401 without valid credentials, 403 while a first-login password change is due
    and for anything but GET and HEAD with a read-only API key."""
    return _authenticate(request, store, authorization, x_api_key, reads=False)


def get_reading_user(request: Request, store: ApiStoreDep, authorization: Annotated[str | None, Header()] = None,
                     x_api_key: Annotated[str | None, Header()] = None) -> User:
    """The caller of a route that only reads (a search sent as POST for its body): as :func:`get_current_user`,
    but a read-only API key may call it whatever the request method. Only for routes that change nothing but the
    audit trail."""
    return _authenticate(request, store, authorization, x_api_key, reads=True)


CurrentUser = Annotated[User, Depends(get_current_user)]
ReadingUser = Annotated[User, Depends(get_reading_user)]


def require_role(role: str, reads: bool = False):
    """Dependency factory: the current user, if their role is at least ``role`` (else 403); ``reads``: the route
    only reads, so a read-only API key may call it whatever the method (see :func:`get_reading_user`)."""

    def check(user: CurrentUser) -> User:
        return _check_role(user, role)

    def check_reading(user: ReadingUser) -> User:
        return _check_role(user, role)

    return check_reading if reads else check


def _check_role(user: User, role: str) -> User:
    """``user`` if their role is at least ``role``, else 403."""
    if not user.may(role):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the '{role}' role; you are '{user.role}'")
    return user


Operator = Annotated[User, Depends(require_role("operator"))]
Investigator = Annotated[User, Depends(require_role("investigator"))]
Admin = Annotated[User, Depends(require_role("admin"))]
# an investigator on a route that only reads (a search sent as POST): read-only API keys may call it
ReadingInvestigator = Annotated[User, Depends(require_role("investigator", reads=True))]
