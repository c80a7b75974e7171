"""Dependencies as ``Annotated`` aliases: Redis clients, settings, the current user and role checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Header, HTTPException, Request, status

from api.auditing import set_user
from api.settings import ApiSettings
from api.store import ROLES, ApiStore

# the routes a user who must change their password may still call
PASSWORD_CHANGE_PATHS = frozenset({"/api/auth/me", "/api/auth/password", "/api/auth/logout"})
# the request methods a read-only API key may use
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class User:
    """The authenticated caller."""

    username: str
    role: str
    cameras: frozenset[str] | None  # None = every camera
    via: str  # "token" or "api_key"
    must_change: bool = False  # first-run admin or admin-set password: every route but the password change is 403
    read_only: bool = False  # an API key of scope "read": only GET and HEAD requests

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


def resolve_user(store: ApiStore, token: str | None, api_key: str | None) -> User | None:
    """The user behind a bearer token or an API key, or None."""
    username, via, read_only = None, "", False
    if token:
        username, via = store.token_user(token), "token"
    elif api_key:
        meta = store.api_key_meta(api_key)
        if meta is not None:
            username, via, read_only = meta["username"], "api_key", meta["scope"] == "read"
    record = store.get_user(username) if username else None
    if record is None:
        return None
    cams = record.get("cameras")
    return User(record["username"], record["role"], frozenset(cams) if cams is not None else None, via,
                bool(record.get("must_change")), read_only)


def get_current_user(request: Request, store: ApiStoreDep, authorization: Annotated[str | None, Header()] = None,
                     x_api_key: Annotated[str | None, Header()] = None) -> User:
    """The caller, checked on every request against the live user record (a revoked token, a deleted user or a
    changed role shows at once); 401 without valid credentials, 403 while a first-login password change is due
    and for anything but GET and HEAD with a read-only API key."""
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise _UNAUTHORISED
        token = value.strip()
    user = resolve_user(store, token, x_api_key)
    if user is None:
        raise _UNAUTHORISED
    set_user(user.username)
    if user.must_change and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "password change required: set your own password with "
                            "POST /api/auth/password before using the service")
    if user.read_only and request.method not in READ_METHODS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is read-only (scope 'read'): only GET and "
                            "HEAD requests")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(role: str):
    """Dependency factory: the current user, if their role is at least ``role`` (else 403)."""

    def check(user: CurrentUser) -> User:
        if not user.may(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the '{role}' role; you are '{user.role}'")
        return user

    return check


Operator = Annotated[User, Depends(require_role("operator"))]
Investigator = Annotated[User, Depends(require_role("investigator"))]
Admin = Annotated[User, Depends(require_role("admin"))]
