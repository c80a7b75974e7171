"""Watchlist models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    reason: str = ""
    severity: Severity = "medium"
    expires_at: float | None = None
    cameras: list[str] | None = None
