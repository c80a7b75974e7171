"""Auth and user models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["operator", "investigator", "admin"]
USERNAME = r"^[A-Za-z0-9_.@-]{1,64}$"
CAMERA_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: Role


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=8, max_length=256)
    role: Role
    cameras: list[str] | None = Field(default=None, max_length=2000, description="Limit to these cameras.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(default=None, min_length=8, max_length=256)
    role: Role | None = None
    cameras: list[str] | None = Field(default=None, max_length=2000)
    all_cameras: bool = Field(default=False, description="Remove the camera limit.")


class UserOut(BaseModel):
    username: str
    role: Role
    cameras: list[str] | None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    username: str | None = Field(default=None, pattern=USERNAME, description="Admins may create keys for others.")


class ApiKeyOut(BaseModel):
    key_id: str
    username: str
    name: str
    created_at: float
    key: str | None = Field(default=None, description="The key itself; shown only once, at creation.")
