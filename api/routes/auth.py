"""Login (rate-limited per user and per client IP), logout, who-am-I and API keys."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Header, HTTPException, Request, status

from api.deps import ApiStoreDep, CurrentUser, SettingsDep
from api.schemas.auth import ApiKeyCreate, ApiKeyOut, LoginRequest, TokenOut, UserOut

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=TokenOut, summary="Exchange a user name and password for a bearer token")
def login(body: LoginRequest, request: Request, store: ApiStoreDep, settings: SettingsDep) -> TokenOut:
    ip = request.client.host if request.client else "unknown"
    for key, limit in ((f"login:u:{body.username}", settings.login_max_per_user),
                       (f"login:ip:{ip}", settings.login_max_per_ip)):
        wait = store.hit_rate_limit(key, limit, settings.login_window_s)
        if wait is not None:
            logger.warning("login rate limit hit for %s", key.split(":")[1])
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many login attempts; try again later",
                                headers={"Retry-After": str(wait)})
    if not store.check_password(body.username, body.password):
        store.audit(body.username, "login_failed", {"ip": ip})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    user = store.get_user(body.username)
    token = store.new_token(body.username, settings.session_ttl_s)
    store.audit(body.username, "login", {"ip": ip})
    return TokenOut(access_token=token, expires_in=settings.session_ttl_s, role=user["role"])


@router.post("/logout", status_code=204, summary="Revoke the current bearer token")
def logout(user: CurrentUser, store: ApiStoreDep, authorization: str | None = Header(default=None)) -> None:
    if authorization and user.via == "token":
        store.revoke_token(authorization.partition(" ")[2].strip())


@router.get("/me", response_model=UserOut, summary="The authenticated user")
def me(user: CurrentUser) -> UserOut:
    return UserOut(username=user.username, role=user.role,
                   cameras=sorted(user.cameras) if user.cameras is not None else None)


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201, summary="Create an API key (shown once)")
def create_api_key(body: ApiKeyCreate, user: CurrentUser, store: ApiStoreDep) -> ApiKeyOut:
    owner = body.username or user.username
    if owner != user.username and not user.may("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins create API keys for other users")
    if store.get_user(owner) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {owner!r} not found")
    key, meta = store.new_api_key(owner, body.name)
    store.audit(user.username, "api_key_create", {"owner": owner, "name": body.name, "key_id": meta["key_id"]})
    return ApiKeyOut(**meta, key=key)


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="Your API keys (without the keys)")
def list_api_keys(user: CurrentUser, store: ApiStoreDep) -> list[ApiKeyOut]:
    return [ApiKeyOut(**m) for m in store.list_api_keys(user.username)]


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke one of your API keys")
def delete_api_key(key_id: str, user: CurrentUser, store: ApiStoreDep) -> None:
    if not store.delete_api_key(user.username, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id!r} not found")
    store.audit(user.username, "api_key_delete", {"key_id": key_id})
