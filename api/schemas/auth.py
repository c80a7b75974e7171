"""Auth and user models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

Role = Literal["operator", "investigator", "admin"]
USERNAME = r"^[A-Za-z0-9_.@-]{1,64}$"
CAMERA_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PASSWORD_MIN = 12
"""Shortest password anyone may set: the user themselves, an admin for them, or the create-user command."""


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=1, max_length=256)


# Every API key expires: by default after USER_KEY_DEFAULT_DAYS, at most after the setting CCTV_API_KEY_MAX_DAYS
# (default 365, never above ADMIN_KEY_MAX_DAYS). Non-admins mint keys only for themselves and only for at most
# USER_KEY_MAX_DAYS; admins may mint keys for anyone, up to the setting.
USER_KEY_MAX_DAYS = 90
USER_KEY_DEFAULT_DAYS = 30
ADMIN_KEY_MAX_DAYS = 3650
ApiKeyScope = Literal["full", "read"]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: Role
    idle_timeout: int = Field(description="Seconds without a request after which the token ends, before "
                                          "expires_in if unused.")
    must_change_password: bool = Field(default=False, description="True for the first-run admin and for a password "
                                       "an admin set: every route but POST /api/auth/password, /me and /logout "
                                       "answers 403 until the user sets their own.")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=256, description=f"At least {PASSWORD_MIN} "
                              "characters.")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=PASSWORD_MIN, max_length=256, description=f"At least {PASSWORD_MIN} characters; "
                          "a one-time password: the user must change it at first login.")
    role: Role
    cameras: list[str] | None = Field(default=None, max_length=2000, description="Limit to these cameras.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(default=None, min_length=PASSWORD_MIN, max_length=256,
                                 description=f"At least {PASSWORD_MIN} characters; another user must change it at "
                                             "their next login.")
    role: Role | None = None
    cameras: list[str] | None = Field(default=None, max_length=2000)
    all_cameras: bool = Field(default=False, description="Remove the camera limit.")


class UserOut(BaseModel):
    username: str
    role: Role
    cameras: list[str] | None
    must_change_password: bool = False


def _no_default(schema: dict[str, Any]) -> None:
    """Drop a ``default: null`` the JSON schema of a non-nullable field would show (it is omitted, not null)."""
    schema.pop("default", None)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    username: str | None = Field(default=None, pattern=USERNAME, description="Admins may create keys for others.")
    # omitted: the default lifetime; an explicit null (a key that never expires) is refused with 422 by the route
    expires_in_days: Annotated[int, Field(ge=1, le=ADMIN_KEY_MAX_DAYS)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default,
        description=f"Lifetime in days (default {USER_KEY_DEFAULT_DAYS}); every key expires. At most "
                    f"CCTV_API_KEY_MAX_DAYS (default 365); non-admins: at most {USER_KEY_MAX_DAYS}.")
    scope: ApiKeyScope = Field(default="full", description="full: whatever the owner may do; read: only GET and "
                                                           "HEAD requests and searches sent as POST (the face "
                                                           "search); 403 otherwise.")


class ApiKeyOut(BaseModel):
    key_id: str
    username: str
    name: str
    created_at: float
    expires_at: float | None = Field(default=None, description="UTC epoch seconds when the key ends; for a key "
                                                                "made before every key had to expire, its creation plus "
                                                                "CCTV_API_KEY_MAX_DAYS (null: its creation time is "
                                                                "unknown and it is refused).")
    scope: ApiKeyScope = "full"
    key: str | None = Field(default=None, description="The key itself; shown only once, at creation.")
