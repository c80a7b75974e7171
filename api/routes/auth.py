"""Login (with growing delays per user and client address, per address and per account), logout, who-am-I, own password and own API keys."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Header, HTTPException, Request, status

from api.auditing import set_claimed_user
from api.deps import ApiStoreDep, CurrentUser, SettingsDep, key_expiry
from api.limits import (
    LOGIN_ACCOUNT_BACKOFF_MAX_S,
    LOGIN_KNOWN_ADDRESS_MAX,
    LOGIN_KNOWN_ADDRESS_S,
    account_free_failures,
    login_address,
)
from api.schemas.auth import (
    USER_KEY_DEFAULT_DAYS,
    USER_KEY_MAX_DAYS,
    ApiKeyCreate,
    ApiKeyOut,
    LoginRequest,
    PasswordChange,
    TokenOut,
    UserOut,
    password_problem,
)
from api.schemas.errors import ErrorOut
from api.settings import ApiSettings
from api.store import ApiStore
from api.validation import field_error

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/auth", tags=["auth"])

_401 = {401: {"model": ErrorOut, "description": "Not authenticated."}}


def client_ip(request: Request) -> str:
    """The client address of a request (the socket peer; put a proxy's real-IP handling in uvicorn)."""
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=TokenOut, summary="Exchange a user name and password for a bearer token",
             description="Failed logins are counted per (user name, client address) and per client address (an "
                         "IPv6 address counts as its /64): past CCTV_LOGIN_MAX_PER_USER (resp. _PER_IP) failures "
                         "each further attempt from there waits CCTV_LOGIN_BACKOFF_BASE_S, doubling per failure up "
                         "to CCTV_LOGIN_BACKOFF_MAX_S (429 with Retry-After). They are also counted per user name "
                         "from all addresses together: past 4 x CCTV_LOGIN_MAX_PER_USER failures each further "
                         "attempt at that account waits the same way, but at most 5 minutes, and never at an "
                         "address where the user signed in within 30 days. Attempts still being checked count as "
                         "failures (a burst of parallel guesses gets 429). A right password resets its pair (not the "
                         "account); a flood from one address never holds up a login from another, and guessing from "
                         "many addresses never holds up the user at a known address.",
             responses={401: {"model": ErrorOut, "description": "Wrong user name or password, or a disabled user."},
                        429: {"model": ErrorOut, "description": "Too many failures from here; see Retry-After."}})
def login(body: LoginRequest, request: Request, store: ApiStoreDep, settings: SettingsDep) -> TokenOut:
    set_claimed_user(body.username)  # named in the audit of an attempt that fails before the check (Redis down)
    ip = client_ip(request)
    if not _password_checked(store, settings, body.username, body.password, ip):
        store.audit(body.username, "login_failed", {"ip": ip}, status=401)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    user = store.get_user(body.username)
    if user is None or user["disabled"]:
        # the same answer as a wrong password: a disabled account is not revealed to whoever holds its password
        store.audit(body.username, "login_failed", {"ip": ip, "disabled": True}, status=401)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    _login_succeeded(store, body.username, ip)
    token = store.new_token(body.username, settings.session_ttl_s, settings.session_idle_s)
    store.audit(body.username, "login", {"ip": ip}, status=200)
    return TokenOut(access_token=token, expires_in=settings.session_ttl_s, idle_timeout=settings.session_idle_s,
                    role=user["role"], must_change_password=user["must_change"])


def _pair_key(username: str, ip: str) -> str:
    """The backoff key of one (user name, client address group) pair."""
    return f"u:{username}|ip:{login_address(ip)}"


def _account_key(username: str) -> str:
    """The backoff key of one user name from every address."""
    return f"acct:{username}"


def _login_succeeded(store: ApiStore, username: str, ip: str) -> None:
    """A right password: forget the failures of the pair and remember the address group (the account limit no
    longer applies there). The account's failures are not forgotten: an attacker would get its free failures back
    at every sign-in of the user, who needs no reset (known addresses skip the account limit)."""
    store.login_succeeded(_pair_key(username, ip))
    store.login_remember(username, login_address(ip), LOGIN_KNOWN_ADDRESS_S, LOGIN_KNOWN_ADDRESS_MAX)


def _password_limits(store: ApiStore, username: str, ip: str, settings: ApiSettings) -> dict[str, int]:
    """The backoff keys of a password check (key -> free failures): the (user, address group) pair, the address
    group and, unless the user signed in from that group lately, the account from every address."""
    group = login_address(ip)
    limits = {_pair_key(username, ip): settings.login_max_per_user, f"ip:{group}": settings.login_max_per_ip}
    if not store.login_known(username, group, LOGIN_KNOWN_ADDRESS_S):
        limits[_account_key(username)] = account_free_failures(settings.login_max_per_user)
    return limits


def _password_checked(store: ApiStore, settings: ApiSettings, username: str, password: str, ip: str) -> bool:
    """Whether ``password`` is ``username``'s, checked under the login backoff: 429 (audited, Retry-After) while
    the pair or the address must wait; a wrong password is counted on both keys before the turn is ended."""
    limits = _password_limits(store, username, ip, settings)
    _take_turn(store, limits, username, ip)
    try:
        right = store.check_password(username, password)
        if not right:
            _count_failure(limits, store, settings)
    finally:
        store.login_end(list(limits))
    return right


def _take_turn(store: ApiStore, limits: dict[str, int], username: str, ip: str) -> None:
    """Take a password-check turn under ``limits``, or answer 429 (audited) with Retry-After."""
    wait = store.login_begin(limits)  # atomic with the count: parallel guesses cannot all slip past the wait
    if wait is not None:
        store.audit(username, "login_refused", {"ip": ip, "retry_after": wait}, status=429)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"too many failed logins; try again in {wait} s",
                            headers={"Retry-After": str(wait)})


def _count_failure(limits: dict[str, int], store: ApiStore, settings: ApiSettings) -> None:
    """Count one wrong password under every key of ``limits`` (the backoff grows past the free failures; the
    account's is capped at :data:`api.limits.LOGIN_ACCOUNT_BACKOFF_MAX_S`)."""
    for key, free in limits.items():
        delay = store.login_failed(key, free, settings.login_backoff_base_s, _backoff_cap(key, settings),
                                   settings.login_window_s)
        if delay:
            logger.warning("failed password checks: %s waits %.0f s", key.split("|")[-1], delay)


def _backoff_cap(key: str, settings: ApiSettings) -> float:
    """The longest wait under a backoff key: low for an account (an attacker must not keep its user out for long),
    CCTV_LOGIN_BACKOFF_MAX_S for a pair or an address."""
    if key.startswith("acct:"):
        return min(settings.login_backoff_max_s, LOGIN_ACCOUNT_BACKOFF_MAX_S)
    return settings.login_backoff_max_s


@router.post("/logout", status_code=204, summary="Revoke the current bearer token", responses=_401)
def logout(user: CurrentUser, store: ApiStoreDep, authorization: str | None = Header(default=None)) -> None:
    if authorization and user.via == "token":
        store.revoke_token(authorization.partition(" ")[2].strip())


@router.get("/me", response_model=UserOut, summary="The authenticated user", responses=_401)
def me(user: CurrentUser) -> UserOut:
    return UserOut(username=user.username, role=user.role,
                   cameras=sorted(user.cameras) if user.cameras is not None else None,
                   must_change_password=user.must_change, disabled=False)  # a disabled user is never signed in


@router.post("/password", response_model=TokenOut, summary="Change your own password (ends your other sessions)",
             description="Needs the current password (wrong ones count towards the login backoff of your user "
                         "name and address: 429 with Retry-After). Every token and API key of yours is revoked; "
                         "the answer carries a fresh token for this session. The first-run admin, and a user whose "
                         "password an admin set, must call this first.",
             responses={**_401, 429: {"model": ErrorOut, "description": "Too many wrong passwords from here."},
                        403: {"model": ErrorOut, "description": "Wrong current password, or an API key "
                                                                        "(only a signed-in person changes it)."}})
def change_password(body: PasswordChange, request: Request, user: CurrentUser, store: ApiStoreDep,
                    settings: SettingsDep) -> TokenOut:
    if user.via != "token":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "sign in with your password to change it, not an API key")
    # a stolen token must not become a password oracle: wrong current passwords share the login backoff
    if not _password_checked(store, settings, user.username, body.current_password, client_ip(request)):
        store.audit(user.username, "password_change_refused", {}, status=403)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "current_password: wrong password")
    if body.new_password == body.current_password:
        raise HTTPException(422, "new_password: must differ from the current password")
    problem = password_problem(body.new_password, user.username)
    if problem is not None:
        raise field_error("new_password", problem, "body")
    record = store.put_user(user.username, user.role, body.new_password, keep_cameras=True, must_change=False)
    store.audit(user.username, "password_change", {}, status=200)
    token = store.new_token(user.username, settings.session_ttl_s, settings.session_idle_s)
    return TokenOut(access_token=token, expires_in=settings.session_ttl_s, idle_timeout=settings.session_idle_s,
                    role=record["role"])


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201, summary="Create an API key (shown once)",
             description=f"Every key expires: after `expires_in_days` (default {USER_KEY_DEFAULT_DAYS}), at most "
                         "CCTV_API_KEY_MAX_DAYS (default 365; more, or null for a key that never expires, is 422). "
                         f"Non-admins create keys only for themselves, expiring within {USER_KEY_MAX_DAYS} days; "
                         "admins may create keys for anyone. `scope: read` limits a key to GET and HEAD requests and "
                         "searches sent as POST (the face search). "
                         "A key acts with its owner's live role and cameras and is revoked with the owner's sessions "
                         "(password, role or camera change, deletion).",
             responses={**_401, 403: {"model": ErrorOut, "description": "Not allowed for this user or expiry."},
                        404: {"model": ErrorOut, "description": "No such user."}})
def create_api_key(body: ApiKeyCreate, user: CurrentUser, store: ApiStoreDep, settings: SettingsDep) -> ApiKeyOut:
    owner = body.username or user.username
    days = _key_days(body, settings)
    if not user.may("admin"):
        if owner != user.username:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins create API keys for other users")
        if days > USER_KEY_MAX_DAYS:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"expires_in_days: at most {USER_KEY_MAX_DAYS} days "
                                "for your own keys; ask an admin for a longer-lived key")
    if store.get_user(owner) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {owner!r} not found")
    key, meta = store.new_api_key(owner, body.name, days * 86400, body.scope)
    store.audit(user.username, "api_key_create", {"owner": owner, "name": body.name, "key_id": meta["key_id"],
                                                  "expires_at": meta["expires_at"], "scope": body.scope})
    return ApiKeyOut(**{k: v for k, v in meta.items() if k != "gen"}, key=key)


def _key_days(body: ApiKeyCreate, settings: ApiSettings) -> int:
    """The lifetime in days of a new API key: the default when omitted; 422 for an explicit null (a key that never
    expires) and for more than CCTV_API_KEY_MAX_DAYS."""
    if body.expires_in_days is None:
        if "expires_in_days" in body.model_fields_set:
            raise field_error("expires_in_days", "API keys must expire: give 1 to "
                              f"{settings.api_key_max_days} days, or omit it for {USER_KEY_DEFAULT_DAYS}", "body")
        return min(USER_KEY_DEFAULT_DAYS, settings.api_key_max_days)
    if body.expires_in_days > settings.api_key_max_days:
        raise field_error("expires_in_days", f"at most {settings.api_key_max_days} days (CCTV_API_KEY_MAX_DAYS)",
                          "body")
    return body.expires_in_days


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="Your API keys (without the keys)",
            description="`expires_at` is when a key ends: for a key made before every key had to expire, its "
                        "creation plus CCTV_API_KEY_MAX_DAYS.",
            responses=_401)
def list_api_keys(user: CurrentUser, store: ApiStoreDep, settings: SettingsDep) -> list[ApiKeyOut]:
    return [ApiKeyOut(**m | {"expires_at": key_expiry(m, settings.api_key_max_days)})
            for m in store.list_api_keys(user.username)]


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke one of your API keys",
               responses={**_401, 404: {"model": ErrorOut, "description": "No such key of yours."}})
def delete_api_key(key_id: str, user: CurrentUser, store: ApiStoreDep) -> None:
    if not store.delete_api_key(user.username, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id!r} not found")
    store.audit(user.username, "api_key_delete", {"key_id": key_id})
