"""Recorded playback: a camera's day timeline (recorded ranges, gaps, event markers)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RangeOut(BaseModel):
    """A stretch of time (UTC epoch seconds)."""

    model_config = ConfigDict(extra="forbid")
    start: float = Field(description="Start (UTC epoch s).")
    end: float = Field(description="End (UTC epoch s).")


class MarkerOut(BaseModel):
    """An event on the timeline: a plate read, a face, or an alert raised on this camera."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["plate", "face", "alert"] = Field(description="What happened.")
    time: float = Field(description="When (UTC epoch s): the event's frame time, or the alert's creation time.")
    event_id: str = Field(description="The plate or face event (for an alert: the event that matched).")
    label: str = Field(default="", max_length=200, description="Plate text, or the alert's label; empty for faces.")
    alert_id: str | None = Field(default=None, description="The alert id (alerts only).")
    severity: str | None = Field(default=None, description="The alert's severity (alerts only).")


class TimelineOut(BaseModel):
    """What a camera recorded in a window, with its gaps and the events that happened on it."""

    model_config = ConfigDict(extra="forbid")
    camera_id: str
    start: float = Field(description="Window start (UTC epoch s).")
    end: float = Field(description="Window end (UTC epoch s).")
    ranges: list[RangeOut] = Field(description="Recorded ranges, merged from the segments, clipped to the window.")
    gaps: list[RangeOut] = Field(description="Holes longer than `gap_s` between recorded ranges.")
    gap_s: float = Field(description="Shortest hole between two segments counted as a gap (seconds).")
    segments: int = Field(ge=0, description="Segments overlapping the window.")
    recorded_s: float = Field(ge=0, description="Seconds of the window that are recorded.")
    markers: list[MarkerOut] = Field(description="Plate reads and alerts (operator), face events (investigator) "
                                                 "of this camera in the window, oldest first.")
    markers_scanned: int = Field(ge=0, description="Stream entries read to find the markers (for a caller limited "
                                 "to some cameras, only the entries of those cameras).")
    markers_capped: bool = Field(description="True when the scan limit (CCTV_CAMERA_EVENTS_SCAN per stream) or the "
                                             "marker limit stopped before the window's end: more events may exist.")
