"""Auth and user models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

Role = Literal["operator", "investigator", "admin"]
USERNAME = r"^[A-Za-z0-9_.@-]{1,64}$"
CAMERA_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PASSWORD_MIN = 12
"""Shortest password anyone may set: the user themselves, an admin for them, or the create-user command."""
PASSWORD_MIN_DISTINCT = 5
"""Fewest different characters a new password may hold (``aaaaaaaaaaaa`` and ``abababababab`` are refused)."""
PASSWORD_NAME_MIN = 3
"""User names at least this long may not appear in their password (case-insensitive); shorter ones would refuse
half of all passwords for no gain."""
COMMON_PASSWORDS = frozenset({
    "password1234", "password12345", "password123!", "passw0rd1234", "p@ssw0rd1234", "p@ssword1234",
    "123456789012", "1234567890123", "12345678901234", "123456123456", "012345678901", "098765432109",
    "qwertyuiop12", "qwertyuiop123", "qwerty123456", "1qaz2wsx3edc", "1q2w3e4r5t6y", "q1w2e3r4t5y6",
    "asdfghjkl123", "zxcvbnm12345", "qwertyuiopas", "abcdefghijkl", "abc123456789", "abcd12345678",
    "iloveyou1234", "letmein12345", "welcome12345", "welcome@1234", "admin1234567", "administrator",
    "changeme1234", "trustno11234", "football1234", "baseball1234", "sunshine1234", "princess1234",
    "monkey123456", "dragon123456", "superman1234", "qwerty1234567", "password0000", "passwordpassword",
    "correcthorsebatterystaple", "correct horse battery staple",
})
"""The most common passwords of at least :data:`PASSWORD_MIN` characters (compared in lower case)."""
PASSWORD_RULES = (f"At least {PASSWORD_MIN} characters and {PASSWORD_MIN_DISTINCT} different ones, not all spaces, "
                  "not one of the most common passwords, and not containing the user name (case-insensitive).")


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` may not be set (for ``username`` when given), or None when it may."""
    if not password.strip():
        return "must not be all whitespace"
    if len(set(password)) < PASSWORD_MIN_DISTINCT:
        return f"must hold at least {PASSWORD_MIN_DISTINCT} different characters"
    if password.lower() in COMMON_PASSWORDS:
        return "is one of the most common passwords; choose another"
    if username and len(username) >= PASSWORD_NAME_MIN and username.lower() in password.lower():
        return "must not contain the user name"
    return None


def _strong(password: str) -> str:
    """Field check of a new password (the user-name rule is checked by the route, which knows the name)."""
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password


NewPassword = Annotated[str, Field(min_length=PASSWORD_MIN, max_length=256), AfterValidator(_strong)]
"""A password being set: :data:`PASSWORD_RULES`."""


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
    new_password: NewPassword = Field(description=PASSWORD_RULES)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: NewPassword = Field(description=f"{PASSWORD_RULES} A one-time password: the user must change it "
                                              "at first login.")
    role: Role
    cameras: list[str] | None = Field(default=None, max_length=2000, description="Limit to these cameras.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: NewPassword | None = Field(default=None, description=f"{PASSWORD_RULES} Another user must change "
                                                                    "it at their next login.")
    role: Role | None = None
    cameras: list[str] | None = Field(default=None, max_length=2000)
    all_cameras: bool = Field(default=False, description="Remove the camera limit.")
    disabled: bool | None = Field(default=None, description="true: the user cannot sign in and every token and API "
                                                            "key of theirs ends at once; false: they may sign in "
                                                            "again with their password. Not for yourself.")


class UserOut(BaseModel):
    username: str
    role: Role
    cameras: list[str] | None
    must_change_password: bool = False
    disabled: bool = Field(description="Always present: true for a disabled user, who cannot sign in (see PATCH "
                                       "/api/users/{username}), false otherwise.")


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
