"""Recent events of one camera (the camera page)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class _EventOut(BaseModel):
    event_id: str
    stream_id: str = Field(description="Stream id of the stored version; pass it as ?before= to page further back.")
    version: int
    camera_id: str
    track_id: int
    started_at: float
    ended_at: float
    frame_time: float = Field(description="Capture time of the frame the crop comes from (UTC epoch s).")
    crop_url: str | None = None
    snapshot_url: str | None = None


class CameraPlateEventOut(_EventOut):
    kind: Literal["plate"] = "plate"
    plate_text: str
    province: str | None = None
    province_latin: str | None = None
    confidence: float
    vehicle_class: str
    agreeing_frames: int
    total_frames: int


class CameraFaceEventOut(_EventOut):
    kind: Literal["face"] = "face"
    quality: float
    det_score: float


CameraEventOut = Annotated[CameraPlateEventOut | CameraFaceEventOut, Field(discriminator="kind")]


class CameraEventsOut(BaseModel):
    camera_id: str
    kind: Literal["plate", "face"]
    items: list[CameraEventOut] = Field(description="Newest stored first (an updated event counts as new).")
    next_before: str | None = Field(description="Ask again with ?before= this to see older events; null when the "
                                    "oldest stored event was reached.")
    scanned: int = Field(description="Stream entries read for this answer (every camera's events; for a caller "
                                     "limited to some cameras, only the events of those cameras).")
    scan_cap: int = Field(description="Most entries one request reads (the stream has no per-camera index).")
    capped: bool = Field(description="True when the scan stopped at scan_cap before `limit` events of this camera "
                         "were found: older ones may still exist (continue with next_before).")
