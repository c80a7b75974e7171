"""Auth and user models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["operator", "investigator", "admin"]
USERNAME = r"^[A-Za-z0-9_.@-]{1,64}$"
CAMERA_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PASSWORD_MIN = 12
"""Shortest password anyone may set: the user themselves, an admin for them, or the create-user command."""


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=1, max_length=256)


# Non-admins mint keys only for themselves and only with an expiry of at most this many days (default 30);
# admins may mint keys for anyone, without expiry or up to ten years.
USER_KEY_MAX_DAYS = 90
USER_KEY_DEFAULT_DAYS = 30
ADMIN_KEY_MAX_DAYS = 3650


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: Role
    must_change_password: bool = Field(default=False, description="True for the first-run admin: every route but "
                                       "POST /api/auth/password, /me and /logout answers 403 until it is changed.")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=256, description=f"At least {PASSWORD_MIN} "
                              "characters.")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=PASSWORD_MIN, max_length=256, description=f"At least {PASSWORD_MIN} characters.")
    role: Role
    cameras: list[str] | None = Field(default=None, max_length=2000, description="Limit to these cameras.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(default=None, min_length=PASSWORD_MIN, max_length=256,
                                 description=f"At least {PASSWORD_MIN} characters.")
    role: Role | None = None
    cameras: list[str] | None = Field(default=None, max_length=2000)
    all_cameras: bool = Field(default=False, description="Remove the camera limit.")


class UserOut(BaseModel):
    username: str
    role: Role
    cameras: list[str] | None
    must_change_password: bool = False


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    username: str | None = Field(default=None, pattern=USERNAME, description="Admins may create keys for others.")
    expires_in_days: int | None = Field(
        default=None, ge=1, le=ADMIN_KEY_MAX_DAYS,
        description=f"Lifetime in days. Non-admins: at most {USER_KEY_MAX_DAYS} (default {USER_KEY_DEFAULT_DAYS}); "
                    "admins: omit for a key that does not expire.")


class ApiKeyOut(BaseModel):
    key_id: str
    username: str
    name: str
    created_at: float
    expires_at: float | None = Field(default=None, description="UTC epoch seconds; null = does not expire.")
    key: str | None = Field(default=None, description="The key itself; shown only once, at creation.")
