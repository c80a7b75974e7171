"""Error bodies as the API sends them (documented in OpenAPI so that clients and Schemathesis can check them)."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """Every refused or failed request: ``{"detail": "<what is wrong>"}``."""

    detail: str


class FieldErrorOut(BaseModel):
    """One invalid field of a request."""

    field: str
    message: str
    type: str | None = None


class ValidationErrorOut(BaseModel):
    """422: the request's fields did not validate; ``detail`` joins the field messages."""

    detail: str
    errors: list[FieldErrorOut] = []
