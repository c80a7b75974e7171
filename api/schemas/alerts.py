"""Alert models: requests (acknowledge, follow-up note) and responses (alert with its acknowledgement)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.text import FreeText
from pipeline.events import Alert

NOTE_MAX_CHARS = 2000
"""Longest acknowledgement or follow-up note."""

MAX_FOLLOW_UP_NOTES = 50
"""Follow-up notes kept per acknowledged alert (a further note is refused with 409)."""

ALERT_IDS_MAX = 1000
"""Most alert ids one acknowledgement lookup takes (the alerts page keeps at most this many alerts)."""
"""Follow-up notes kept per acknowledged alert (a further note is refused with 409)."""


class AckRequest(BaseModel):
    """Acknowledge an alert, optionally saying what was done."""

    model_config = ConfigDict(extra="forbid")
    note: FreeText = Field(default="", max_length=NOTE_MAX_CHARS,
                           description="Line breaks and tabs allowed; other control characters and bidi overrides "
                                       "are refused (422).")


class NoteRequest(BaseModel):
    """A follow-up note on an acknowledged alert."""

    model_config = ConfigDict(extra="forbid")
    note: FreeText = Field(min_length=1, max_length=NOTE_MAX_CHARS, pattern=r"\S",
                           description="Line breaks and tabs allowed; other control characters and bidi overrides "
                                       "are refused (422).")


class AlertIdsRequest(BaseModel):
    """The alerts whose current state (acknowledgement, watchlist name) is asked for, by alert id."""

    model_config = ConfigDict(extra="forbid")
    alert_ids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        min_length=1, max_length=ALERT_IDS_MAX, description=f"Alert ids (`alert.alert_id`), at most {ALERT_IDS_MAX}.")


class AlertNoteOut(BaseModel):
    """One follow-up note: who wrote it, when, and what."""

    by: str
    at: float
    note: str


class AckOut(BaseModel):
    """The (first and only) acknowledgement of an alert, with the follow-up notes added since."""

    by: str
    note: str
    at: float
    notes: list[AlertNoteOut] = Field(default_factory=list,
                                      description=f"Follow-up notes, oldest first (at most {MAX_FOLLOW_UP_NOTES}).")


class AckConflictOut(BaseModel):
    """409 of an acknowledgement: the alert was already acknowledged; ``ack`` is that acknowledgement."""

    detail: str
    ack: AckOut
    code: Literal["already_acknowledged"] = "already_acknowledged"


class AlertOut(BaseModel):
    id: str = Field(description="Stream id; pass it as ?after= to replay what came later.")
    alert: Alert
    ack: AckOut | None = None
    watchlist_name: str | None = Field(default=None, description="Name of the watchlist that matched (null when "
                                                                 "the watchlist was deleted).")
