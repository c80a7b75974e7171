"""Plate search models."""

from __future__ import annotations

from pydantic import BaseModel


class PlateHitOut(BaseModel):
    event_id: str | None
    stream_id: str
    plate: str
    distance: float
    frame_time: float
    camera_id: str
    confidence: float
    vehicle_class: str
    province: str | None
    province_latin: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    snapshot_url: str | None = None
    crop_url: str | None = None


class PlateSearchOut(BaseModel):
    query: str
    mode: str
    total: int | None
    plates_matched: int
    offset: int
    limit: int
    truncated: bool
    notes: list[str]
    hits: list[PlateHitOut]
