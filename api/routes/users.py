"""User administration (admin only). A password an admin sets for someone else is a one-time password: its user
must set their own at the next login (every route but the password change answers 403 until then)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from api.deps import Admin, ApiStoreDep
from api.ids import Username
from api.routes.cameras import check_camera_ids
from api.schemas.auth import UserCreate, UserOut, UserUpdate, password_problem
from api.schemas.errors import ErrorOut
from api.store import ApiStore
from api.validation import field_error

router = APIRouter(prefix="/api/users", tags=["users"])


def _out(record: dict) -> UserOut:
    return UserOut(username=record["username"], role=record["role"], cameras=record.get("cameras"),
                   must_change_password=bool(record.get("must_change")), disabled=bool(record.get("disabled")))


def _check_password(password: str | None, username: str) -> None:
    """422 on ``password`` when it contains the user name (the field's own rules are checked by its schema)."""
    problem = None if password is None else password_problem(password, username)
    if problem is not None:
        raise field_error("password", problem, "body")


def _check_disable(body: UserUpdate, admin_name: str, username: str) -> None:
    """409 when an admin would disable themself (nobody could be left to enable them)."""
    if body.disabled and username == admin_name:
        raise HTTPException(status.HTTP_409_CONFLICT, "disabled: you cannot disable yourself")


def _apply_disabled(store: ApiStore, record: dict, disabled: bool | None) -> dict:
    """Disable or enable the user when ``disabled`` changes it; the record as it is now."""
    if disabled is None or disabled == record["disabled"]:
        return record
    store.set_disabled(record["username"], disabled)
    return store.get_user(record["username"]) or record


@router.get("", response_model=list[UserOut], summary="List users")
def list_users(_: Admin, store: ApiStoreDep) -> list[UserOut]:
    return [_out(u) for u in store.list_users()]


@router.post("", response_model=UserOut, status_code=201, summary="Create a user",
             description="The password is a one-time password: the user must set their own at first login.",
             responses={409: {"model": ErrorOut, "description": "The user exists already (user names are "
                                                                 "compared ignoring case)."}})
def create_user(body: UserCreate, request: Request, admin: Admin, store: ApiStoreDep) -> UserOut:
    existing = store.find_user_casefold(body.username)
    if existing is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {existing!r} already exists"
                            + ("" if existing == body.username else " (user names are compared ignoring case)"))
    _check_password(body.password, body.username)
    check_camera_ids(request, body.cameras, "cameras")
    record = store.put_user(body.username, body.role, body.password, body.cameras, must_change=True)
    store.audit(admin.username, "user_create", {"username": body.username, "role": body.role,
                                                "cameras": body.cameras})
    return _out(record)


@router.get("/{username}", response_model=UserOut, summary="One user")
def get_user(_: Admin, username: Username, store: ApiStoreDep) -> UserOut:
    record = store.get_user(username)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {username!r} not found")
    return _out(record)


@router.patch("/{username}", response_model=UserOut,
              summary="Change a user's role, password or cameras, or disable them",
              responses={409: {"model": ErrorOut, "description": "That would leave no admin, or you would "
                                                                 "disable yourself."}},
              description="`cameras` limits the user to those cameras (ids from cameras.yaml; [] = none), "
                          "`all_cameras: true` removes the limit; omitted fields stay as they are. A new password, role or "
                          "camera limit revokes every token and API key of the user (they sign in again). A "
                          "password set for another user must be changed by them at their next login. The last "
                          "admin cannot be demoted. `disabled: true` stops the user signing in and ends every "
                          "token and API key of theirs at once (their record stays); `disabled: false` lets them "
                          "sign in again with their password. Admins cannot disable themselves.")
def update_user(body: UserUpdate, request: Request, admin: Admin, username: Username, store: ApiStoreDep) -> UserOut:
    record = store.get_user(username)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {username!r} not found")
    if body.all_cameras and body.cameras is not None:
        raise HTTPException(422, "cameras: give either cameras or all_cameras: true, not both")
    check_camera_ids(request, body.cameras, "cameras")
    _check_password(body.password, username)
    _check_disable(body, admin.username, username)
    role = body.role or record["role"]
    if record["role"] == "admin" and role != "admin" and _admins(store) == [username]:
        raise HTTPException(status.HTTP_409_CONFLICT, f"role: {username!r} is the last admin; make another admin first")
    cameras = None if body.all_cameras else (body.cameras if body.cameras is not None else record.get("cameras"))
    # an admin-set password is known to the admin: its user must replace it (not when admins set their own)
    must_change = True if body.password is not None and username != admin.username else None
    record = store.put_user(username, role, body.password, cameras, must_change=must_change)
    record = _apply_disabled(store, record, body.disabled)
    store.audit(admin.username, "user_update", {"username": username, "role": record["role"],
                                                "cameras": record.get("cameras"),
                                                "password_changed": body.password is not None,
                                                "disabled": record["disabled"]})
    return _out(record)


def _admins(store) -> list[str]:
    return [u["username"] for u in store.list_users() if u["role"] == "admin"]


@router.delete("/{username}", status_code=204, summary="Delete a user (their tokens and API keys end at once)",
               responses={409: {"model": ErrorOut, "description": "You cannot delete yourself."}})
def delete_user(admin: Admin, username: Username, store: ApiStoreDep) -> None:
    if username == admin.username:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot delete yourself")
    if not store.delete_user(username):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {username!r} not found")
    store.audit(admin.username, "user_delete", {"username": username})
