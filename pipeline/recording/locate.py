"""Reaching a recorded segment wherever it is: on this host, on shared storage, or on the worker host that holds it.

:func:`open_segment` returns a local path to read: the file itself when it is here (this host recorded it, or the
recordings folder is shared storage), else a copy fetched from the holding host's internal segment server
(:mod:`pipeline.recording.serve`, ``Authorization: Bearer <CCTV_INTERNAL_TOKEN>``) into a cache under
``<recordings>/.remote/<host>/`` (segments never change once indexed; the cache keeps about
:data:`CACHE_MAX_BYTES`, least recently used out first, but never a copy used in the last :data:`CACHE_KEEP_S`, so
a long export never loses the segments it fetched before it cuts them). A holding host that cannot be reached raises
:class:`SegmentUnavailable` naming the host, so callers (exports, playback) report the footage as unavailable
rather than failing; a segment the holding host no longer has (retention removed it) raises
:class:`SegmentMissing`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.recording.index import Segment, host_url, plain_segment_path
from pipeline.recording.serve import HEALTH_ROUTE, SEGMENT_ROUTE, resolve_segment
from pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

REMOTE_CACHE = ".remote"
CACHE_MAX_BYTES = 2 * 1024**3
CACHE_KEEP_S = 3600.0
FETCH_TIMEOUT_S = 10.0
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
"""What a host name in the index may be (``CCTV_HOST_NAME``'s own pattern): it names a folder of the cache."""


class SegmentUnavailable(RuntimeError):
    """The host holding a segment cannot be reached (down, cut off, or no segment server)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"recording held by host {host!r} is unavailable: {reason}")
        self.host = host
        self.reason = reason


class SegmentMissing(FileNotFoundError):
    """Neither this host nor the holding host has the segment's file any more."""


def plain_host(host: str | None) -> bool:
    """True for a host name that is one plain folder name of the cache (never ``..``, a path, or a NUL)."""
    return host is not None and _HOST_NAME.fullmatch(host) is not None and host not in (".", "..")


def is_local(segment: Segment, settings: Settings | None = None) -> bool:
    """True when this host recorded the segment (or it predates host indexing: the one host there was)."""
    settings = settings or get_settings()
    return segment.host is None or segment.host == settings.host_name


def _request(url: str, token: str, method: str = "GET") -> urllib.request.Request:
    return urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})


def _base_url(client: Any, segment: Segment, settings: Settings) -> tuple[str, str]:
    host = segment.host or settings.host_name
    if not settings.internal_token:
        raise SegmentUnavailable(host, "CCTV_INTERNAL_TOKEN is not set on this host, so it cannot fetch from others")
    url = host_url(client, host)
    if not url:
        raise SegmentUnavailable(host, "that host never registered a segment server (CCTV_INTERNAL_TOKEN unset "
                                       "there?)")
    return host, url.rstrip("/")


def open_segment(client: Any, recordings_dir: Path, segment: Segment, settings: Settings | None = None,
                 timeout_s: float = FETCH_TIMEOUT_S) -> Path:
    """A local file with the segment's bytes (see the module docstring); raises :class:`SegmentUnavailable` or
    :class:`SegmentMissing`."""
    settings = settings or get_settings()
    recordings_dir = Path(recordings_dir)
    here = resolve_segment(recordings_dir, segment.path)
    if here is not None:
        return here
    if is_local(segment, settings):
        raise SegmentMissing(f"segment {segment.path} is not on this host any more")
    if not plain_segment_path(segment.path):  # a crafted index entry: never fetched, never written outside the cache
        raise SegmentMissing(f"segment path {segment.path!r} is not a plain relative path")
    if not plain_host(segment.host):  # likewise: the host names the cache folder the copy is written to
        raise SegmentMissing(f"segment host {str(segment.host)[:140]!r} is not a plain host name")
    cached = cached_copy(recordings_dir, segment)
    if cached is not None:
        os.utime(cached)  # used now: the last to leave the cache
        return cached
    host, base = _base_url(client, segment, settings)
    target = recordings_dir / REMOTE_CACHE / host / segment.path
    url = f"{base}{SEGMENT_ROUTE}{quote(segment.path)}"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")  # threads fetch in parallel
    try:
        with urllib.request.urlopen(_request(url, settings.internal_token or ""), timeout=timeout_s) as response, \
                part.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        if exc.code == 404:
            raise SegmentMissing(f"host {host!r} does not have segment {segment.path}") from None
        raise SegmentUnavailable(host, f"its segment server answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise SegmentUnavailable(host, f"cannot reach {base} ({reason})") from None
    os.replace(part, target)
    _trim_cache(recordings_dir / REMOTE_CACHE, keep=target)
    logger.info("fetched segment %s (%d bytes) from host %s", segment.path, target.stat().st_size, host)
    return target


def cached_copy(recordings_dir: Path, segment: Segment) -> Path | None:
    """The complete copy of a remote segment fetched earlier, if there is one."""
    if not plain_host(segment.host) or not plain_segment_path(segment.path):
        return None
    path = resolve_segment(Path(recordings_dir) / REMOTE_CACHE / segment.host, segment.path)
    return path if path is not None and path.stat().st_size == segment.size else None


def host_reachable(client: Any, host: str, settings: Settings | None = None, timeout_s: float = 3.0) -> str | None:
    """None when ``host``'s segment server answers its health check, else why not (for a quick refusal)."""
    settings = settings or get_settings()
    try:
        _, base = _base_url(client, Segment("", 0, 0, 0, host=host), settings)
        with urllib.request.urlopen(_request(f"{base}{HEALTH_ROUTE}", settings.internal_token or ""),
                                    timeout=timeout_s) as response:
            response.read()
        return None
    except SegmentUnavailable as exc:
        return exc.reason
    except urllib.error.HTTPError as exc:
        return f"its segment server answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return f"cannot reach it ({getattr(exc, 'reason', exc)})"


def unreachable_hosts(client: Any, recordings_dir: Path, segments: list[Segment],
                      settings: Settings | None = None) -> dict[str, str]:
    """Hosts holding some of ``segments`` (not here) whose segment server does not answer: host -> why."""
    settings = settings or get_settings()
    hosts = {s.host for s in segments if s.host and not is_local(s, settings)
             and resolve_segment(Path(recordings_dir), s.path) is None and cached_copy(recordings_dir, s) is None}
    out = {}
    for host in sorted(hosts):
        reason = host_reachable(client, host, settings)
        if reason is not None:
            out[host] = reason
    return out


def _trim_cache(root: Path, keep: Path, max_bytes: int = CACHE_MAX_BYTES, keep_s: float = CACHE_KEEP_S) -> None:
    """Remove the least recently used cached segments while the cache holds more than ``max_bytes``; copies used
    within ``keep_s`` stay (an export in progress needs them)."""
    files = []
    for path in root.rglob("*.mkv"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # another thread trimmed it
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    recent = time.time() - keep_s
    for mtime, size, path in sorted(files):
        if total <= max_bytes or mtime >= recent:
            return
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size
