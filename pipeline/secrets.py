"""Credentials referenced from the environment (``${VAR}``) and their redaction from anything printed.

A camera URL in cameras.yaml may read ``rtsp://admin:${CAM3_PASSWORD}@10.0.0.3/stream1``. The variable is
expanded only when the URL is opened; everything that is logged, stored in Redis or returned by the API
goes through :func:`redact_url` or :func:`redact_text` first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


class MissingSecretError(KeyError):
    """A ``${VAR}`` referenced in the configuration is not set in the environment."""


def referenced_variables(text: str) -> list[str]:
    """Return the names of the ``${VAR}`` references in ``text``."""
    return _VAR.findall(text)


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` by its value from the environment; raise if one is missing."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingSecretError(f"environment variable {name} is not set")
        return env[name]

    return _VAR.sub(substitute, text)


def redact_url(url: str) -> str:
    """Return ``url`` with any password (literal or ``${VAR}``) replaced by ``***``; the user name stays."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}" if parts.password is not None else f"***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Redact credentials in URLs found in free text (ffmpeg stderr, exceptions) and any known secret values."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    for secret in secrets or []:
        if secret:
            text = text.replace(secret, "***")
    return text
