"""Credentials referenced from the environment (``${VAR}``) and their redaction from anything printed.

A camera URL in cameras.yaml may read ``rtsp://admin:${CAM3_PASSWORD}@10.0.0.3/stream1``. The variable is
expanded only when the URL is opened, by :func:`expand_url`: a variable inside the URL's user-info (user name or
password) holds the credential **as it is** and is percent-encoded into the URL (RFC 3986), so any character works
(``@ # / : % ! ?``, spaces, Thai); literal text of the user-info is URL syntax and kept as typed, so a password
written already percent-encoded (``Adm%21n%402024``) still works. ffmpeg decodes the user-info before it
authenticates (Basic and Digest). ffmpeg's RTSP client keeps at most :data:`RTSP_USERINFO_MAX` bytes of it; where
the percent-encoded form is longer, non-ASCII letters go in as UTF-8 (the IRI form, 3 bytes a Thai letter instead
of 9), which ffmpeg reads the same way.

Redaction works two ways, and everything that is logged, stored in Redis or returned by the API goes through it:

- by **value**: every secret is registered (:func:`register_secrets`, done for each URL by :func:`url_secrets`)
  in the forms it can be printed in (as is, percent-encoded, JSON- and repr-escaped) and removed from any text
  by :func:`redact_text`, whatever characters it holds;
- by **pattern**: the user-info of any URL in free text (``scheme://...@``, up to the *last* ``@`` of the word) is
  replaced, so credentials nobody registered (a literal in a log line of a library) are hidden too.

:func:`install_log_redaction` applies :func:`redact_text` to every log record of the process (message, arguments
and exception text) as the record is created, before any handler sees it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# scheme:// then a run without spaces or quotes ending at its LAST '@' (greedy): "user:p@ss@host" hides "p@ss" too
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s'\"<>]*)@")
_PCT_TRIPLET = re.compile(r"%[0-9A-Fa-f]{2}")
_PCT_UPPER = re.compile(r"%[0-9A-F]{2}")
# what RFC 3986 allows unencoded in a user-info: unreserved, sub-delims, ':' and %XX triplets
_USERINFO_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:%]*")
MASK = "***"
RTSP_USERINFO_MAX = 127  # ffmpeg's RTSP client copies the user-info into a 128-byte buffer (RTSPState.auth)

_registered: set[str] = set()
_registered_sorted: tuple[str, ...] = ()
_lock = threading.Lock()


class MissingSecretError(KeyError):
    """A ``${VAR}`` referenced in the configuration is not set in the environment."""


# --------------------------------------------------------------------------------------------------------------
# expansion
# --------------------------------------------------------------------------------------------------------------
def referenced_variables(text: str) -> list[str]:
    """Return the names of the ``${VAR}`` references in ``text``."""
    return _VAR.findall(text)


def expand_env(text: str, environ: Mapping[str, str] | None = None, encode: Callable[[str], str] | None = None) -> str:
    """Replace every ``${VAR}`` by its value from the environment (passed through ``encode`` if given); raise
    :class:`MissingSecretError` if one is not set."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingSecretError(f"environment variable {name} is not set")
        return encode(env[name]) if encode else env[name]

    return _VAR.sub(substitute, text)


def encode_userinfo(value: str, iri: bool = False) -> str:
    """Percent-encode a user name or password for a URL's user-info: everything but ``A-Z a-z 0-9 - . _ ~``.
    ``iri``: non-ASCII letters stay as they are (RFC 3987), only ASCII is encoded."""
    if not iri:
        return quote(value, safe="")
    return "".join(char if ord(char) > 127 else quote(char, safe="") for char in value)


@dataclass(frozen=True)
class UrlUserinfo:
    """A URL (or URL template) cut around its user-info as a URL parser reads it (RFC 3986).

    The authority ends at the first ``/``, ``?`` or ``#`` after ``scheme://``; the user-info is what precedes its
    last ``@``. ``user`` and ``password`` are the raw text (templates keep their ``${VAR}``); ``password`` is
    ``None`` without a ``:``.
    """

    prefix: str  # "rtsp://"
    user: str
    password: str | None
    rest: str  # host[:port]/path?query#fragment

    @classmethod
    def split(cls, url: str) -> UrlUserinfo | None:
        """Cut ``url``; ``None`` when it has no ``scheme://`` or no user-info."""
        scheme, sep, after = url.partition("://")
        if not sep or not scheme:
            return None
        end = len(after)
        for char in "/?#":
            pos = after.find(char)
            if pos != -1:
                end = min(end, pos)
        at = after.rfind("@", 0, end)
        if at == -1:
            return None
        user, colon, password = after[:at].partition(":")
        return cls(f"{scheme}://", user, password if colon else None, after[at + 1 :])


def expand_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL to open: ``${VAR}`` expanded, percent-encoded inside the user-info (user and password separately).

    Outside the user-info (host, path, query) values are inserted as they are, as before. For RTSP, a user-info
    longer than :data:`RTSP_USERINFO_MAX` bytes percent-encoded is written in the IRI form (see module docstring).
    """
    parts = UrlUserinfo.split(url)
    if parts is None:
        return expand_env(url, environ)
    userinfo = expand_userinfo(parts, environ)
    if parts.prefix in ("rtsp://", "rtsps://") and len(userinfo.encode()) > RTSP_USERINFO_MAX:
        userinfo = expand_userinfo(parts, environ, iri=True)
    return f"{parts.prefix}{userinfo}@{expand_env(parts.rest, environ)}"


def expand_userinfo(parts: UrlUserinfo, environ: Mapping[str, str] | None = None, iri: bool = False) -> str:
    """The user-info of ``parts`` with its variables expanded by :func:`encode_userinfo` (literal text as typed)."""

    def encode(value: str) -> str:
        return encode_userinfo(value, iri)

    userinfo = expand_env(parts.user, environ, encode)
    if parts.password is not None:
        userinfo += ":" + expand_env(parts.password, environ, encode)
    return userinfo


def rtsp_userinfo_too_long(url: str, environ: Mapping[str, str] | None = None) -> int | None:
    """The byte length of an RTSP URL's expanded user-info when ffmpeg would cut it (> :data:`RTSP_USERINFO_MAX`),
    else ``None`` (also when a variable is unset)."""
    parts = UrlUserinfo.split(url)
    if parts is None or parts.prefix not in ("rtsp://", "rtsps://"):
        return None
    try:
        size = len(expand_userinfo(parts, environ, iri=True).encode())
    except MissingSecretError:
        return None
    return size if size > RTSP_USERINFO_MAX else None


def url_secrets(url: str, environ: Mapping[str, str] | None = None, register: bool = True) -> list[str]:
    """The secret values of a URL template: every ``${VAR}`` value that is set, and a password written literally
    (as typed and decoded). Registered for redaction (:func:`register_secrets`) unless ``register`` is false."""
    env = os.environ if environ is None else environ
    values = [env[name] for name in referenced_variables(url) if env.get(name)]
    parts = UrlUserinfo.split(url)
    if parts is not None and parts.password and not referenced_variables(parts.password):
        values += [parts.password, unquote(parts.password)]
    # a literal password holding '/', '?' or '#' unencoded: a parser cuts it short, so take it to the last '@' too
    after = url.partition("://")[2]
    typed = after[: after.rfind("@")].partition(":")[2] if "@" in after else ""
    if typed and not referenced_variables(typed):
        values += [typed, unquote(typed)]
    values = list(dict.fromkeys(v for v in values if v))
    if register:
        register_secrets(values)
    return values


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without the variables that hold a registered secret (for child processes such
    as ffmpeg, which get their URL another way and need none of them)."""
    env = os.environ if environ is None else environ
    with _lock:
        return {name: value for name, value in env.items() if not value or value not in _registered}


def looks_percent_encoded(value: str) -> bool:
    """Whether ``value`` reads like an already percent-encoded text (``%XX`` triplets, nothing else unsafe)."""
    return bool(_PCT_TRIPLET.search(value)) and _USERINFO_CHARS.fullmatch(value) is not None


def url_warnings(url: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """What ``check-config`` says about the credentials of a URL template; never echoes a secret.

    Unset variables; a password written in clear; a user-info that URL parsers (ffmpeg's included) would cut
    differently from what its author meant (``/ ? #`` or a second ``@`` unencoded, a ``%`` that is not a
    ``%XX`` triplet, spaces or non-ASCII letters); a variable that looks already percent-encoded (it is encoded
    again); a user-name variable holding ``:``.
    """
    env = os.environ if environ is None else environ
    out = [f"environment variable {name} is referenced but not set"
           for name in dict.fromkeys(referenced_variables(url)) if name not in env]  # fmt: skip
    scheme, sep, after = url.partition("://")
    if not sep:
        return out
    end = min([pos for pos in (after.find(c) for c in "/?#") if pos != -1], default=len(after))
    if "@" in after[end:]:
        out.append(f"the URL holds an '@' after a '{after[end]}': if that is a password holding '/', '?' or '#', "
                   "URL parsers (ffmpeg too) end the host at that character and read a wrong host; write them "
                   "percent-encoded (%2F %3F %23) or put the password in an environment variable")  # fmt: skip
    parts = UrlUserinfo.split(url)
    if parts is None:
        return out
    if after[:end].count("@") > 1:
        out.append("the user-info holds an unencoded '@': write it %40 (parsers differ on which '@' ends it)")
    literal = _VAR.sub("", parts.user + ":" + (parts.password or ""))
    if "%" in literal and _PCT_TRIPLET.sub("", literal).count("%"):
        out.append("a '%' in the user-info is not followed by two hex digits: write a '%' of the password as %25")
    if _USERINFO_CHARS.fullmatch(literal.replace("@", "")) is None:
        out.append("the user-info holds characters a URL cannot carry unencoded (spaces, quotes, non-ASCII "
                   "letters or one of <>[]\\^`{|}): write them percent-encoded or use an environment variable")
    if parts.password and not referenced_variables(parts.password):
        out.append("password written in clear in the file; put it in an environment variable "
                   "(url: rtsp://user:${CAM_PASSWORD}@host/...)")
    for name in dict.fromkeys(referenced_variables(parts.user) + referenced_variables(parts.password or "")):
        if looks_percent_encoded(env.get(name, "")):
            out.append(f"{name} looks percent-encoded (%XX); a variable holds the credential itself and is encoded "
                       "for the URL when the stream is opened, so it would be encoded twice")
    too_long = rtsp_userinfo_too_long(url, env)
    if too_long:
        out.append(f"the user name and password take {too_long} bytes in the URL, more than the {RTSP_USERINFO_MAX} "
                   "that ffmpeg's RTSP client keeps: the camera will refuse the login; use a shorter password")
    for name in referenced_variables(parts.user):
        if ":" in env.get(name, ""):
            out.append(f"{name} is used as the user name and holds ':', which no camera login (Basic or Digest) "
                       "can carry in a user name")
    return out


# --------------------------------------------------------------------------------------------------------------
# redaction
# --------------------------------------------------------------------------------------------------------------
def secret_forms(value: str) -> set[str]:
    """The ways ``value`` can appear in printed text: as is, percent-encoded (upper and lower hex, IRI form, ``+``
    for space, sub-delimiters kept), JSON-escaped and ``repr``-escaped."""
    encoded = encode_userinfo(value)
    forms = {value, encoded, encode_userinfo(value, iri=True), _PCT_UPPER.sub(lambda m: m.group(0).lower(), encoded),
             quote_plus(value, safe=""), quote(value, safe="!$&'()*+,;=:"), json.dumps(value)[1:-1],
             repr(value)[1:-1]}  # fmt: skip
    return {f for f in forms if f}


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values of this process; :func:`redact_text` removes them (in all :func:`secret_forms`)."""
    global _registered_sorted
    with _lock:
        before = len(_registered)
        for value in values:
            if value:
                _registered.update(secret_forms(value))
        if len(_registered) != before:
            _registered_sorted = tuple(sorted(_registered, key=len, reverse=True))


def clear_registered_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _registered_sorted
    with _lock:
        _registered.clear()
        _registered_sorted = ()


def redact_url(url: str) -> str:
    """Return ``url`` with its password (literal or ``${VAR}``) replaced by ``***``; a literal user name stays.

    The user-info runs to the **last** ``@`` of the URL, so a password holding ``@``, ``#``, ``/`` or ``?``
    written unencoded is hidden whole (a URL parser would stop earlier). Registered secrets are removed too.
    """
    scheme, sep, after = url.partition("://")
    at = after.rfind("@")
    if not sep or at == -1:
        return redact_text(url)
    userinfo = after[:at]
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return redact_text(f"{scheme}://{shown}@{after[at + 1 :]}")


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove known secret values (``secrets`` and every registered one, in all their forms), then the user-info
    of every URL in ``text`` (a literal user name stays: ``rtsp://admin:***@host``)."""
    if not text:
        return text
    extra: set[str] = set()
    for secret in secrets or ():
        if secret:
            extra.update(secret_forms(secret))
    for value in sorted(extra, key=len, reverse=True) if extra else ():
        text = text.replace(value, MASK)
    for value in _registered_sorted:
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}:{MASK}@" if colon else f"{match.group('scheme')}{MASK}@"


# --------------------------------------------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------------------------------------------
def install_log_redaction() -> None:
    """Make every log record of this process pass through :func:`redact_text` when it is created (idempotent).

    A record factory rather than a handler filter: it also covers handlers added later (pytest's, uvicorn's).
    A record is rewritten only when redaction changes something, so formatters that read ``record.args``
    (uvicorn's access log) keep working.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts_secrets", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the handler's to report, not ours
        return
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact_text(text)
        if clean != text:
            record.exc_text = clean
