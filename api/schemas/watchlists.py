"""Watchlist models."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.errors import FieldErrorOut
from api.schemas.text import FreeText, OneLine

Severity = Literal["low", "medium", "high", "critical"]

PLATE_TEXT_MAX = 64
"""Longest plate text accepted as typed: a registration plus a province name (``1กข 1234 พระนครศรีอยุธยา``); the
registration left after normalisation is checked separately (at most 16 characters)."""

PLATE_TEXT_DOC = ("Plate as typed: spaces, hyphens, Thai or full-width digits are normalised away; a province typed "
                  "with it (Thai, Latin or alias; before, after, or between series and number as on a motorcycle "
                  "plate) is split off into `province`.")
PROVINCE_DOC = ("Province the registration belongs to (Thai, Latin or a common alias; stored in Thai). The same "
                "registration exists in every province: an entry with a province matches only reads of that province "
                "(and reads whose province was not read); null = any province. Must agree with a province typed in "
                "`plate`.")
FUZZY_DOC = ("Also alert on near misses: reads whose weighted edit distance to the plate is at most `max_distance` "
             "(a look-alike substitution such as ข/ช or 8/B costs 0.4, any other edit 1). Off by default: an exact "
             "entry never alerts on a near miss.")
MAX_DISTANCE_DOC = "Fuzzy entries: largest distance alerted (0-1.9: at most one arbitrary edit). Ignored when exact."
ENABLED_DOC = ("Whether the entry alerts. A disabled (paused) entry is kept and listed but never matches; entries "
               "stored before this field existed are enabled.")

EXPIRY_SKEW_S = 60.0
"""How far in the past an expiry may be (clock skew between the operator's machine and the server)."""


def _not_past(value: float) -> float:
    """Refuse an expiry already in the past (beyond :data:`EXPIRY_SKEW_S`): the entry would never alert."""
    if value < time.time() - EXPIRY_SKEW_S:
        raise ValueError("is in the past: the entry would never alert (give a future time, or null for no expiry)")
    return value


Expiry = Annotated[float, Field(ge=0, allow_inf_nan=False,
                                description="UTC epoch seconds, in the future; null = never expires."),
                   AfterValidator(_not_past)]
"""A finite expiry time (NaN would never expire, and cannot be written back as JSON), not in the past."""

Cameras = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                    Field(min_length=1, max_length=2000,
                          description="Cameras the entry alerts on; null = every camera (an empty list is refused, "
                                      "as it would silently mean every camera).")]


class WatchlistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["plate", "face"]
    name: OneLine = Field(min_length=1, max_length=200)
    description: FreeText = Field(default="", max_length=2000)


class WatchlistUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: OneLine | None = Field(default=None, min_length=1, max_length=200)
    description: FreeText | None = Field(default=None, max_length=2000)


class WatchlistOut(BaseModel):
    id: str
    kind: Literal["plate", "face"]
    name: str
    description: str
    created_by: str
    created_at: float
    updated_at: float
    entries: int = 0


class PlateEntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: str = Field(min_length=1, max_length=PLATE_TEXT_MAX, description=PLATE_TEXT_DOC)
    province: str | None = Field(default=None, min_length=1, max_length=64, description=PROVINCE_DOC)
    fuzzy: bool = Field(default=False, description=FUZZY_DOC)
    max_distance: float = Field(default=1.0, ge=0, le=1.9, allow_inf_nan=False, description=MAX_DISTANCE_DOC)
    reason: OneLine = Field(default="", max_length=500)
    severity: Severity = "medium"
    expires_at: Expiry | None = None
    cameras: Cameras | None = None
    enabled: bool = Field(default=True, description=ENABLED_DOC)


class FaceEntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: str = Field(min_length=1, max_length=64,
                           description="An enrolled person's id. An id that cannot name a person (a character other "
                                       "than letters, digits, `_` and `-`, or a word of the store's own keys such "
                                       "as `ids`) is answered 404 like an unknown person, as in a path.")
    threshold: float = Field(default=0.45, ge=0, le=1, allow_inf_nan=False)
    reason: OneLine = Field(default="", max_length=500)
    severity: Severity = "medium"
    expires_at: Expiry | None = None
    cameras: Cameras | None = None
    enabled: bool = Field(default=True, description=ENABLED_DOC)


class DuplicateEntryOut(BaseModel):
    """409: the watchlist already has an entry with the same plate and province."""

    detail: str
    entry_id: str = Field(description="Id of the existing entry (edit it instead).")
    code: Literal["already_listed"] = "already_listed"


class EntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    entry_id: str
    plate: str | None = Field(default=None, description="Plate entries: normalised plate text.")
    province: str | None = Field(default=None, description="Plate entries: province (Thai) the entry is tied to; "
                                                            "null = any province.")
    person_id: str | None = Field(default=None, description="Person entries: the enrolled person.")
    fuzzy: bool | None = None
    max_distance: float | None = None
    threshold: float | None = None
    created_by: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    reason: str = ""
    severity: Severity = "medium"
    expires_at: float | None = None
    cameras: list[str] | None = None
    enabled: bool = Field(default=True, description=ENABLED_DOC)

    @field_validator("enabled", mode="before")
    @classmethod
    def _enabled_unless_false(cls, value: object) -> object:
        """An entry stored without the field (or with null) is enabled."""
        return True if value is None else value


NOT_NULLABLE_ENTRY_FIELDS = ("plate", "fuzzy", "max_distance", "reason", "severity", "threshold", "enabled")


class EntryUpdate(BaseModel):
    """Fields to change on a watchlist entry; omitted fields stay as they are.

    ``expires_at: null`` removes the expiry, ``cameras: null`` makes the entry apply to every camera and
    ``province: null`` to every province; the other fields cannot be null. ``plate``, ``province``, ``fuzzy`` and
    ``max_distance`` apply to plate entries, ``threshold`` to person
    entries. ``enabled: false`` pauses the entry (kept, listed, never alerts); ``enabled: true`` resumes it.
    """

    model_config = ConfigDict(extra="forbid")
    plate: str | None = Field(default=None, min_length=1, max_length=PLATE_TEXT_MAX,
                              description="New plate text. " + PLATE_TEXT_DOC)
    province: str | None = Field(default=None, min_length=1, max_length=64,
                                 description=PROVINCE_DOC + " Null unties the entry from its province; a new `plate` "
                                                            "without a province also unties it.")
    fuzzy: bool | None = Field(default=None, description=FUZZY_DOC)
    max_distance: float | None = Field(default=None, ge=0, le=1.9, allow_inf_nan=False, description=MAX_DISTANCE_DOC)
    threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False,
                                    description="Person entries: similarity threshold.")
    reason: OneLine | None = Field(default=None, max_length=500)
    severity: Severity | None = None
    expires_at: Expiry | None = None
    cameras: Cameras | None = None
    enabled: bool | None = Field(default=None, description="False pauses the entry, true resumes it.")

    @field_validator(*NOT_NULLABLE_ENTRY_FIELDS, mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null (omit the field to keep its current value)")
        return value

    @model_validator(mode="after")
    def _something(self) -> EntryUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self

    def changes(self) -> dict:
        """The fields the request sets (explicit nulls of nullable fields included)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class ImportRowErrorOut(BaseModel):
    """One refused row (or cell) of a CSV import."""

    line: int = Field(description="Line of the file (1 = the header; a quoted field over several lines counts "
                                  "each line).")
    column: str | None = Field(default=None, description="Column the problem is in (`plate`, `province`, `reason`, "
                                                          "`severity`, `expires`), or null for the whole row.")
    reason: str


class ImportOut(BaseModel):
    """What a CSV import did (or, with ``dry_run``, would do)."""

    dry_run: bool
    rows: int = Field(description="Data rows read (blank rows not counted).")
    added: int = Field(description="New entries.")
    updated: int = Field(description="Entries already on the list whose reason, severity and expiry were replaced "
                                     "(`on_duplicate=update`).")
    skipped: int = Field(description="Rows whose plate and province are already on the list (`on_duplicate=skip`).")
    invalid: int = Field(description="Rows refused (written only with `invalid=skip`, never otherwise).")
    errors: list[ImportRowErrorOut] = Field(default=[], description="The first row errors, in file order.")
    errors_truncated: bool = Field(default=False, description="More rows were invalid than `errors` lists.")
    sha256: str = Field(description="SHA-256 of the file as uploaded (also in the audit record).")


class ImportRefusedOut(BaseModel):
    """422 of a CSV import: ``detail`` says what is wrong; for invalid rows (all-or-nothing, the default) nothing
    was written and ``result`` holds the counts and the first row errors. Ordinary request validation errors (a bad
    query parameter) have ``errors`` only."""

    detail: str
    errors: list[FieldErrorOut] = Field(default=[], description="The first row errors as `line N: column` fields.")
    result: ImportOut | None = None
