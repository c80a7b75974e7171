"""Error bodies as the API sends them (documented in OpenAPI so that clients and Schemathesis can check them).

Some refusals carry a stable machine ``code`` next to ``detail`` (the English text for people, unchanged), so that a
client (the control-room page) can say them in its own language without parsing the text (:data:`ERROR_CODES`).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

ERROR_CODES = {
    "case_closed": "409: the case is closed; nothing is added to or removed from it.",
    "already_acknowledged": "409: the alert was acknowledged already (the acknowledgement that stands is `ack`).",
    "already_listed": "409: the plate or person is already on this watchlist (`entry_id` names the entry).",
    "store_unavailable": "503: the event store (Redis) is unavailable; try again.",
}
"""Every ``code`` an error body may carry, and what it means."""

CODE_DESCRIPTION = ("A stable machine code of the error, for clients that show errors in their own words; absent "
                    "when the status code says all. Known codes: "
                    + "; ".join(f"`{code}` ({meaning})" for code, meaning in ERROR_CODES.items()))


class CodedHTTPException(HTTPException):
    """An ``HTTPException`` whose body also carries ``code`` (one of :data:`ERROR_CODES`)."""

    def __init__(self, status_code: int, detail: Any, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, detail, headers)
        self.code = code


class ErrorOut(BaseModel):
    """Every refused or failed request: ``{"detail": "<what is wrong>"}``, some with a machine ``code``."""

    detail: str
    code: str | None = Field(default=None, description=CODE_DESCRIPTION)


class FieldErrorOut(BaseModel):
    """One invalid field of a request."""

    field: str
    message: str
    type: str | None = None


class ValidationErrorOut(BaseModel):
    """422: the request's fields did not validate; ``detail`` joins the field messages."""

    detail: str
    errors: list[FieldErrorOut] = []
