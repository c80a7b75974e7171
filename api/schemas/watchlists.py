"""Watchlist models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Severity = Literal["low", "medium", "high", "critical"]


class WatchlistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["plate", "face"]
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class WatchlistUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


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
    plate: str = Field(min_length=1, max_length=16)
    fuzzy: bool = False
    max_distance: float = Field(default=1.0, ge=0, le=1.9)
    reason: str = Field(default="", max_length=500)
    severity: Severity = "medium"
    expires_at: float | None = Field(default=None, description="UTC epoch seconds; None = never.")
    cameras: list[str] | None = Field(default=None, max_length=2000)


class FaceEntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: str = Field(min_length=1, max_length=64)
    threshold: float = Field(default=0.45, ge=0, le=1)
    reason: str = Field(default="", max_length=500)
    severity: Severity = "medium"
    expires_at: float | None = None
    cameras: list[str] | None = Field(default=None, max_length=2000)


class EntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    entry_id: str
    plate: str | None = Field(default=None, description="Plate entries: normalised plate text.")
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


NOT_NULLABLE_ENTRY_FIELDS = ("plate", "fuzzy", "max_distance", "reason", "severity", "threshold")


class EntryUpdate(BaseModel):
    """Fields to change on a watchlist entry; omitted fields stay as they are.

    ``expires_at: null`` removes the expiry and ``cameras: null`` makes the entry apply to every camera; the other
    fields cannot be null. ``plate``, ``fuzzy`` and ``max_distance`` apply to plate entries, ``threshold`` to person
    entries.
    """

    model_config = ConfigDict(extra="forbid")
    plate: str | None = Field(default=None, min_length=1, max_length=16, description="New plate text (normalised).")
    fuzzy: bool | None = None
    max_distance: float | None = Field(default=None, ge=0, le=1.9)
    threshold: float | None = Field(default=None, ge=0, le=1, description="Person entries: similarity threshold.")
    reason: str | None = Field(default=None, max_length=500)
    severity: Severity | None = None
    expires_at: float | None = Field(default=None, ge=0, description="UTC epoch seconds; null = never expires.")
    cameras: list[str] | None = Field(default=None, max_length=2000, description="null = every camera.")

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
