"""Camera, export, case and audit models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.text import FreeText, OneLine
from api.validation import TIME_HELP, Instant
from pipeline.recording.export import MAX_EPOCH_S  # 10000-01-01T00:00:00Z: no later time fits a clip's name


class CameraOut(BaseModel):
    id: str
    name: str
    enabled: bool
    analytics: dict[str, Any]
    health: dict[str, Any] | None = None
    snapshot_url: str | None = None
    worker: str | None = Field(default=None, description="Multi-host deployments: the worker holding the camera's "
                                                         "lease (from the health); null on one machine or when unknown.")
    host: str | None = Field(default=None, description="Multi-host deployments: that worker's host name.")


class CameraCountsOut(BaseModel):
    """How many enabled cameras are in each state (counts only: the health route needs no sign-in)."""

    total: int = Field(ge=0, description="Enabled cameras of cameras.yaml (the cameras that reported health when "
                                         "the configuration is not loaded).")
    online: int = Field(ge=0, description="Reporting `online` in a fresh health report.")
    offline: int = Field(ge=0, description="Fresh report, but not online (connecting, reconnecting, offline, "
                                           "stopped).")
    stale: int = Field(ge=0, description="Last health report older than 15 s: the capture worker is gone or hung.")
    unknown: int = Field(ge=0, description="No health report at all (no capture worker has started the camera).")
    recording_failed: int = Field(ge=0, description="Recorded cameras (recording enabled) whose fresh health report "
                                                    "says recording failed: segments cannot be written (a full "
                                                    "disk), analysis may go on. Counted besides their state above "
                                                    "(a camera online but not recording is in both).")


class HealthOut(BaseModel):
    """Service health, for load balancers and monitoring."""

    status: Literal["ok", "degraded", "down"] = Field(
        description="ok: Redis answers, every enabled camera is online and every recorded one records; degraded "
                    "(still HTTP 200): Redis answers but a camera is not online (offline, stale or unknown) or its "
                    "recording failed (recording_failed), or a worker host's clock is off (clock_skewed_hosts); down (HTTP "
                    "503): Redis is unreachable.")
    redis: bool = Field(description="Whether Redis answered a ping.")
    cameras: CameraCountsOut | None = Field(default=None, description="Camera counts; null when Redis is down.")
    clock_skewed_hosts: int = Field(
        default=0, ge=0, description="How many worker hosts have a clock off the Redis server's (any makes the "
                                     "status degraded: their recordings would be misplaced on the timeline); a count "
                                     "only, as for cameras: `python -m pipeline cluster status` names them.")
    webhook_dead_letters: int = Field(
        default=0, ge=0, description="Alerts the webhooks of notifications.webhooks gave up on (dead letters, "
                                     "counted since the start; GET /api/notifications says which). Not a reason "
                                     "for degraded.")


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: str = Field(min_length=1, max_length=64)
    start: Instant = Field(description=f"Start of the clip. {TIME_HELP}")
    end: Instant = Field(description=f"End of the clip (after `start`, at most 3600 s later). {TIME_HELP}")

    @model_validator(mode="after")
    def _window(self) -> ExportCreate:
        if max(self.start, self.end) >= MAX_EPOCH_S:  # a clip's name and manifest could not write such a time
            raise ValueError("epoch seconds must lie before the year 10000")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > 3600:
            raise ValueError("a clip is at most 3600 seconds")
        return self


class ExportOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    camera_id: str
    start: float
    end: float
    requester: str
    created_at: float
    sha256: str | None = None
    error: str | None = None
    download_url: str | None = None
    queue_position: int | None = Field(default=None, description="Place in the export queue while `queued`.")
    manifest_sha256: str | None = Field(default=None, description="SHA-256 of the clip's manifest file as written "
                                        "(none for exports made before manifests were hashed).")
    complete: bool | None = Field(default=None, description="Whether the finished clip covers the whole window; "
                                  "false: part of it is not recorded (a gap, or the recording starting after "
                                  "`start` or ending before `end`; listed in the manifest's `gaps`): a partial "
                                  "clip. None while not done, and for exports made before this was recorded.")
    covered_start: float | None = Field(default=None, description="Start of the recorded part of the window.")
    covered_end: float | None = Field(default=None, description="End of the recorded part of the window.")


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: OneLine = Field(min_length=1, max_length=200, pattern=r"\S",
                          description="No control characters or bidi overrides (422).")
    description: FreeText = Field(default="", max_length=5000, description="Line breaks and tabs allowed; other "
                                  "control characters and bidi overrides are refused (422).")


class CaseItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["clip", "plate", "face"]
    ref: str = Field(min_length=1, max_length=64, description="Export job id (clip) or event id.")


class CaseOut(BaseModel):
    id: str
    name: str
    description: str
    created_by: str
    created_at: float
    items: list[dict[str, Any]]
    status: Literal["open", "closed"] = Field(default="open", description="Open cases hold their items from "
                                              "retention; closing lifts the hold.")
    closed_at: float | None = None


class AuditOut(BaseModel):
    id: str
    user: str = Field(description="User name, or '-' for a request without valid credentials.")
    action: str = Field(description="What was done; 'refused'/'failed' for answers >= 400 that no route recorded, "
                                    "'query' for a query a route did not record itself, 'store_unavailable' for a "
                                    "request refused (503) while Redis was down (recorded once it was back).")
    at: float
    ip: str | None = Field(default=None, description="Client address.")
    params: dict[str, Any]
    results: int | None
    status: int | None = Field(default=None, description="HTTP status of the answer, where recorded.")
