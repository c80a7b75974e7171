"""Event records shared by the analytics engine (writer) and the control-room API (reader).

These are the only shapes that cross the Redis boundary. ``pipeline.store`` serialises them into Redis
Streams and search indexes; nothing else writes events.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


def new_event_id() -> str:
    """Return a new globally unique, time-sortable event id (ms timestamp + random suffix)."""
    return f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:12]}"


class PlateCandidate(BaseModel):
    """One candidate reading of a plate with its score in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Normalised registration text, e.g. 1กข1234 or 70-1234.")
    score: float = Field(ge=0.0, le=1.0, description="Voted confidence of this candidate.")


class PlateEvent(BaseModel):
    """One vehicle track with its voted plate read."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(default_factory=new_event_id, description="Unique id; stable across updates.")
    version: int = Field(default=1, ge=1, description="Bumped each time a better read updates the event.")
    camera_id: str = Field(description="Camera id from cameras.yaml.")
    track_id: int = Field(ge=0, description="Per-camera tracker id.")
    started_at: float = Field(ge=0, description="UTC epoch seconds of the track's first frame.")
    ended_at: float = Field(ge=0, description="UTC epoch seconds of the track's last frame.")
    frame_time: float = Field(ge=0, description="Capture time of the frame the best plate read came from.")
    plate_text: str = Field(description="Voted registration text (normalised), empty if unreadable.")
    province: str | None = Field(default=None, description="Province in Thai, one of the 77.")
    province_latin: str | None = Field(default=None, description="Province in Latin transliteration.")
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence of the voted read.")
    candidates: list[PlateCandidate] = Field(default_factory=list, description="Top alternative reads.")
    agreeing_frames: int = Field(default=1, ge=0, description="Frames whose read agreed with the vote.")
    total_frames: int = Field(default=1, ge=0, description="Frames with a plate read in this track.")
    vehicle_class: str = Field(default="car", description="car, motorcycle, bus or truck; vehicle when the plate was seen without a detected vehicle.")
    vehicle_box: list[float] = Field(default_factory=list, description="x1,y1,x2,y2 of the vehicle.")
    plate_box: list[float] = Field(default_factory=list, description="x1,y1,x2,y2 of the plate in the frame.")
    snapshot_path: str | None = Field(default=None, description="Full-frame JPEG, relative to recordings dir.")
    crop_path: str | None = Field(default=None, description="Plate crop JPEG, relative to recordings dir.")


class FaceEvent(BaseModel):
    """One person track with its best face and embedding."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(default_factory=new_event_id, description="Unique id; stable across updates.")
    version: int = Field(default=1, ge=1, description="Bumped each time a better face updates the event.")
    camera_id: str = Field(description="Camera id from cameras.yaml.")
    track_id: int = Field(ge=0, description="Per-camera tracker id.")
    started_at: float = Field(ge=0, description="UTC epoch seconds of the track's first frame.")
    ended_at: float = Field(ge=0, description="UTC epoch seconds of the track's last frame.")
    frame_time: float = Field(ge=0, description="Capture time of the frame the best face came from.")
    embedding: list[float] = Field(description="L2-normalised face embedding (size read from the model).")
    quality: float = Field(ge=0.0, le=1.0, description="Face quality score (size, sharpness, pose).")
    det_score: float = Field(ge=0.0, le=1.0, description="Face detector score.")
    face_box: list[float] = Field(default_factory=list, description="x1,y1,x2,y2 of the face in the frame.")
    snapshot_path: str | None = Field(default=None, description="Full-frame JPEG, relative to recordings dir.")
    crop_path: str | None = Field(default=None, description="Face crop JPEG, relative to recordings dir.")

    def embedding_array(self) -> np.ndarray:
        """Return the embedding as a float32 vector."""
        return np.asarray(self.embedding, dtype=np.float32)


class Alert(BaseModel):
    """A watchlist hit raised by the engine at event time."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str = Field(default_factory=new_event_id, description="Unique alert id.")
    kind: Literal["plate", "face"] = Field(description="What matched.")
    watchlist_id: str = Field(description="Id of the watchlist that matched.")
    entry_id: str = Field(description="Id of the watchlist entry (plate entry or person).")
    event_id: str = Field(description="The plate or face event that matched.")
    camera_id: str = Field(description="Camera of the event.")
    created_at: float = Field(default_factory=time.time, description="UTC epoch seconds.")
    frame_time: float | None = Field(default=None, ge=0,
                                     description="Capture time of the event's frame that matched (UTC epoch s; "
                                                 "null on alerts raised before it was recorded): where playback "
                                                 "and the timeline marker put the alert.")
    reason: str = Field(default="", description="Why the entry is on the list.")
    severity: Literal["low", "medium", "high", "critical"] = Field(default="medium", description="Severity.")
    label: str = Field(default="", description="Plate text or person name that matched.")
    score: float = Field(default=1.0, description="Similarity (faces) or 1 - normalised distance (plates).")
    crop_path: str | None = Field(default=None, description="Crop of the event, relative to recordings dir.")
    province: str | None = Field(default=None,
                                 description="Plates: the province read on the plate (null when it was not read).")
    entry_province: str | None = Field(default=None,
                                       description="Plates: the province the matched entry is tied to (null: any).")
    province_unconfirmed: bool = Field(default=False, description="Plates: the entry is tied to a province but the "
                                       "read has none (a cut or dirty province line): check the plate by eye.")
