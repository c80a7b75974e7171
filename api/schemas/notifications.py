"""Alert webhook models: delivery state of each webhook and the answer of a test event."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DeadLetterOut(BaseModel):
    """An alert given up on."""

    stream_id: str = Field(description="Id of the entry in the alerts stream.")
    alert_id: str | None = Field(default=None, description="The alert (null when the entry was unreadable or gone).")
    error: str = Field(description="Why it was given up on.")
    attempts: int = Field(description="Delivery attempts made.")
    at: float = Field(description="When (UTC epoch s).")


class WebhookStateOut(BaseModel):
    """One webhook of cameras.yaml's ``notifications.webhooks`` and its delivery state."""

    name: str
    url: str = Field(description="The URL with its query string and fragment masked (`***`).")
    enabled: bool
    secret_set: bool = Field(description="Whether the environment variable of its signing secret is set (nothing "
                                         "is delivered without it).")
    delivered: int = Field(description="Alerts delivered.")
    dead_letters: int = Field(description="Alerts given up on (counted since the start).")
    dead_letters_kept: int = Field(description="Dead letters still kept (the newest 1000).")
    pending: int = Field(description="Alerts read but not yet delivered nor given up on (being retried included).")
    retrying: int = Field(description="Alerts waiting for their next attempt.")
    last_success_at: float | None = Field(default=None, description="Last delivery (UTC epoch s).")
    last_error: str | None = Field(default=None, description="Last failure (no secret, no query string).")
    last_error_at: float | None = None
    recent_dead_letters: list[DeadLetterOut] = Field(description="The newest dead letters, newest first (at most "
                                                                 "10).")


class WebhookTestOut(BaseModel):
    """The outcome of a test event, sent once without retry."""

    name: str
    delivered: bool
    outcome: Literal["ok", "retry", "fail"] = Field(description="ok: 2xx; retry: a failure that would be retried "
                                                                "for an alert; fail: one that would not.")
    status: int | None = Field(default=None, description="HTTP status of the answer (null: none came).")
    error: str = Field(default="", description="What failed.")
