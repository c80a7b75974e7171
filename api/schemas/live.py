"""Live video: stream state and the video wall layout saved per user."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config import CAMERA_ID_PATTERN

GRIDS = ("1", "2x2", "3x3", "4x4")
MAX_TILES = 16


class LiveInfoOut(BaseModel):
    """State of one camera's live stream as the hub sees it."""

    camera_id: str = Field(description="The camera.")
    name: str = Field(description="Its display name.")
    stream: Literal["main", "sub"] = Field(description="The stream served (sub falls back to main when the camera "
                                                         "has no sub-stream).")
    has_sub_stream: bool = Field(description="Whether the camera has a sub-stream.")
    status: Literal["idle", "connecting", "live", "offline"] = Field(
        description="idle: nobody watches (no upstream); connecting; live; offline (see reason; retried by itself).")
    reason: str = Field(description="Why it is offline, or how it is shown (sub-stream / transcode of H.265).")
    reason_code: str = Field(
        default="", description="The reason as a stable code for translation (as the WebSocket's status message: "
                                "refused, timeout, unauthorized, forbidden, not_found, unreachable, no_video, "
                                "bad_stream, open_failed, transcode_limit, removed, config_changed, ended); \"\" "
                                "when none, and while live (the reason is then the display mode).")
    mode: Literal["remux", "sub-stream", "transcode"] = Field(
        description="remux: the camera's H.264 as it comes (no re-encoding); sub-stream: the H.265 main stream "
                    "replaced by the H.264 sub-stream; transcode: an H.265 camera encoded to H.264 (bounded).")
    codec: str | None = Field(description="RFC 6381 codec string once known, e.g. avc1.64001f.")
    mime: str | None = Field(description="MIME type for MediaSource.addSourceBuffer, once known.")
    width: int | None = Field(description="Picture width once known.")
    height: int | None = Field(description="Picture height once known.")
    viewers: int = Field(description="Viewers of this stream in this API process.")
    preloaded: bool = Field(default=False, description="The upstream runs with no viewer (CCTV_LIVE_PRELOAD): a new "
                                                       "viewer starts at once from the keyframe cache.")
    startup: dict[str, float | None] | None = Field(
        default=None, description="How the last upstream session started, in seconds after it began: spawn_s "
                                  "(ffmpeg started), init_s (init segment: RTSP set up and the first packet in), "
                                  "first_fragment_s (the first keyframe fragment); null before any.")
    last_fragment_age_s: float | None = Field(description="Seconds since the last fragment arrived from the camera.")
    websocket: str = Field(description="Path of the live WebSocket of this camera (see the route description).")


class WallLayoutIn(BaseModel):
    """The video wall of a user: grid and which camera shows in which tile."""

    model_config = ConfigDict(extra="forbid")

    grid: Literal["1", "2x2", "3x3", "4x4"] = Field(description="Tiles: 1, 2x2, 3x3 or 4x4.")
    tiles: list[str | None] = Field(default_factory=list, max_length=MAX_TILES,
                                    description="Camera id per tile, row by row (null: empty tile); at most as many "
                                                "as the grid has tiles.")
    stream: Literal["auto", "main", "sub"] = Field(default="auto", description="auto: the sub-stream in grids of "
                                                   "more than one tile and the main stream when one tile is shown.")

    @model_validator(mode="after")
    def _tiles_fit(self) -> WallLayoutIn:
        size = {"1": 1, "2x2": 4, "3x3": 9, "4x4": 16}[self.grid]
        if len(self.tiles) > size:
            raise ValueError(f"tiles: a {self.grid} grid has {size} tiles, got {len(self.tiles)}")
        for i, cam in enumerate(self.tiles):
            if cam is not None and not re.fullmatch(CAMERA_ID_PATTERN, cam):
                raise ValueError(f"tiles[{i}]: {cam[:70]!r} is not a camera id")
        return self


class WallLayoutOut(BaseModel):
    """A user's saved video wall (the default when none was saved)."""

    grid: Literal["1", "2x2", "3x3", "4x4"] = Field(description="Tiles: 1, 2x2, 3x3 or 4x4.")
    tiles: list[str | None] = Field(description="Camera id per tile, row by row (null: empty tile).")
    stream: Literal["auto", "main", "sub"] = Field(description="Which stream the tiles show.")
    saved: bool = Field(description="False: nothing saved yet (the cameras in order).")
    updated_at: float | None = Field(default=None, description="When it was saved (UTC epoch seconds).")
