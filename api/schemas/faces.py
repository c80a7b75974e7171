"""Face search and person models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaceHitOut(BaseModel):
    event_id: str
    similarity: float
    camera_id: str
    frame_time: float
    quality: float | None = None
    crop_url: str | None = None
    snapshot_url: str | None = None


class FaceSearchOut(BaseModel):
    threshold: float
    total: int
    hits: list[FaceHitOut]


class PersonOut(BaseModel):
    id: str
    name: str
    notes: str = ""
    photos: int = Field(description="Number of enrolled face embeddings.")
    created_at: float | None = None
    updated_at: float | None = None


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=2000)
