"""The OpenAPI document as the API really answers: security schemes and the error responses of every route.

FastAPI documents a route's own responses; this adds what the shared machinery returns everywhere: 401 without
valid credentials (every route but the public ones), 403 for a role or camera the caller lacks, 404 for an unknown
resource, 413 for a body over its limit (:mod:`api.limits`), 422 with the body :func:`api.main._validation_error`
really sends (``{"detail": str, "errors": [...]}``, not FastAPI's default list) and 503 when Redis is down. The
``Authorization`` and ``X-API-Key`` headers are described once as security schemes instead of as parameters of
every operation.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.schemas.errors import ErrorOut, ValidationErrorOut

logger = logging.getLogger(__name__)

PUBLIC_OPERATIONS = frozenset({("post", "/api/auth/login"), ("get", "/api/health")})
_AUTH_HEADERS = frozenset({"authorization", "x-api-key"})
_ERRORS = {
    "401": "Not authenticated: no valid bearer token or API key.",
    "403": "Authenticated, but the role or camera limit does not allow this.",
    "404": "Not found (or not visible to the caller).",
    "503": "The event store (Redis) is unavailable; try again.",
}


def _error(description: str, model: str = "ErrorOut") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}}


def _own_422(response: dict[str, Any] | None) -> bool:
    """Whether a route documents a 422 body of its own (not FastAPI's default ``HTTPValidationError``)."""
    ref = ((response or {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", ""))
    return bool(ref) and not ref.endswith("/HTTPValidationError")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with security schemes and the shared error responses (cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorOut, ValidationErrorOut):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Token from POST /api/auth/login."},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key."},
    }
    schema["security"] = [{"bearer": []}, {"apiKey": []}]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["parameters"] = [p for p in operation.get("parameters", [])
                                       if not (p.get("in") == "header" and p.get("name", "").lower() in _AUTH_HEADERS)]
            if not operation["parameters"]:
                del operation["parameters"]
            responses = operation["responses"]
            if not _own_422(responses.get("422")):  # a route's own 422 body (a CSV import's) is kept
                responses["422"] = _error("The request's fields did not validate.", "ValidationErrorOut")
            responses.setdefault("503", _error(_ERRORS["503"]))
            if "requestBody" in operation:  # the body guard answers every body route, public ones included
                responses.setdefault("413", _error("The body is larger than the limit of this request."))
                if "multipart/form-data" in operation["requestBody"].get("content", {}):
                    responses.setdefault("415", _error("An upload is not a JPEG, PNG, WebP or BMP image."))
            if (method, path) in PUBLIC_OPERATIONS:
                operation["security"] = []
                continue
            for code in ("401", "403", "404"):
                responses.setdefault(code, _error(_ERRORS[code]))
    app.openapi_schema = schema
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`build_openapi` as the app's ``/openapi.json``."""
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
