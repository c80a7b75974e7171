"""Alert models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.events import Alert


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class AckOut(BaseModel):
    by: str
    note: str
    at: float


class AlertOut(BaseModel):
    id: str = Field(description="Stream id; pass it as ?after= to replay what came later.")
    alert: Alert
    ack: AckOut | None = None
