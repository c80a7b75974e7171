"""Security headers on every HTTP response: the page's Content-Security-Policy (also as a header, so that it holds
``frame-ancestors``, which a ``<meta>`` policy cannot), clickjacking refusal, no MIME sniffing, no referrer.

The control-room page runs with a bearer token in ``sessionStorage``; a page that another site may frame (or a
response a browser may sniff into HTML) is a way to make an operator click or run what they did not mean to.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
            "style-src 'self'; script-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'")
"""The policy of the web page and its static files (the same as the ``<meta>`` in index.html, plus
``frame-ancestors``)."""
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
"""The policy of API answers (JSON, pictures, video): nothing in them may run or be framed, even if opened directly."""
DOCS_CSP = "frame-ancestors 'none'"
"""The interactive API docs load Swagger UI / ReDoc from a CDN with inline script: only framing is refused."""
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")

COMMON_HEADERS: dict[str, str] = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def csp_for(path: str) -> str:
    """The Content-Security-Policy of a response to ``path``."""
    if path.startswith(DOCS_PATHS):
        return DOCS_CSP
    if path.startswith("/api/"):
        return API_CSP
    return PAGE_CSP


API_CACHE = "no-store"
"""API answers hold personal data (plates, faces, sightings, audit): no browser or proxy keeps a copy on disk (a
shared control-room workstation, a proxy's cache). A route that sets its own ``Cache-Control`` keeps it."""


def security_headers(path: str) -> dict[str, str]:
    """Every security header of a response to ``path`` (lower-case names)."""
    headers = {**COMMON_HEADERS, "content-security-policy": csp_for(path)}
    if path.startswith("/api/"):
        headers["cache-control"] = API_CACHE
    return headers


class SecurityHeaders:
    """ASGI middleware: adds :func:`security_headers` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
