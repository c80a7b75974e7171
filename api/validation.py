"""Field errors raised by route code, answered like FastAPI's own validation errors.

A check that FastAPI cannot express as a parameter constraint (one field against another, such as a time window)
raises :class:`fastapi.exceptions.RequestValidationError` through :func:`field_error`, so the client gets the same
422 body as for any other invalid field (``{"detail": "end: ...", "errors": [{"field": "end", ...}]}``, see
:func:`api.main._validation_error`) and the OpenAPI document's 422 response stays true.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi.exceptions import RequestValidationError

logger = logging.getLogger(__name__)

Location = Literal["query", "form", "body", "path"]


def field_error(field: str, message: str, location: Location = "query") -> RequestValidationError:
    """The 422 error of one invalid request field (raise it)."""
    return RequestValidationError([{"loc": (location, field), "msg": message, "type": "value_error",
                                    "input": None}])


def check_window(start: float | None, end: float | None, location: Location = "query") -> None:
    """422 on ``end`` when a time window is inverted (``end`` before ``start``); call it before any other work."""
    if start is not None and end is not None and end < start:
        raise field_error("end", "must not be before start", location)
