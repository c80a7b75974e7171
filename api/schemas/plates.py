"""Plate search models."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
    total: int | None = Field(description="Exact number of matching sightings when `complete`, else null.")
    plates_matched: int = Field(description="Distinct plates with a read that matches the query and the filters "
                                "(time window, cameras, class, province, confidence): exact when `complete`, else "
                                "a lower bound. For a caller limited to some cameras: the plates with such a read on "
                                "those cameras (reads on other cameras are never counted). A plate history says 1 "
                                "when the plate was read on a camera you see, whatever the window.")
    complete: bool = Field(default=True, description="False when the page was answered from the newest matches "
                           "without reading every match (broad partial queries).")
    has_more: bool = Field(default=False, description="More hits may follow this page (ask with a larger offset).")
    offset: int
    limit: int
    truncated: bool
    notes: list[str]
    hits: list[PlateHitOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` (same query and filters) for the "
                                    "next page, stable while new reads arrive; null on the last page and for "
                                    "order=distance.")
    did_you_mean: str | None = Field(default=None, description="When the query has Latin letters and found nothing, "
                                     "the Thai plate query it reads as on the Thai Kedmanee keyboard layout "
                                     "(`1d-1234`: `1กข1234`, typed with the English layout still on) if that query "
                                     "has hits with the same filters; else null. The query itself is never "
                                     "rewritten (Latin letters may be a foreign plate).")
