"""The recording segment index in Redis.

Key layout:

- ``cctv:rec:<camera_id>`` (sorted set): one member per segment, scored by its real start time (UTC epoch s).
  The member is compact JSON ``{"host": ..., "path": ..., "start": ..., "end": ..., "size": ...}`` with ``path``
  relative to the recordings folder (``<camera>/<YYYY-MM-DD>/<HH>/<camera>_<YYYYmmddTHHMMSS.mmm>Z.mkv``) of
  ``host``, the host that recorded it and holds the file (``CCTV_HOST_NAME``). Members written before hosts were
  recorded have no ``host`` (the segment is on the one host there was) and keep their exact text, so removing
  them still matches.
- ``cctv:rec:host-bytes`` (hash): host -> total bytes of the indexed segments it holds (each host's retention
  applies the disk quota to its own disk).
- ``cctv:segment-servers`` (hash): host -> base URL of its internal segment server (:mod:`pipeline.recording.serve`).
- ``cctv:rec:bytes`` (hash): camera id -> total bytes of its indexed segments (for the disk quota).

Segments are added by the capture workers when ffmpeg closes them and removed by retention together with
their files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)

BYTES_KEY = "cctv:rec:bytes"
HOSTS_KEY = "cctv:segment-servers"
HOST_BYTES_KEY = "cctv:rec:host-bytes"


def index_key(camera_id: str) -> str:
    """Redis key of a camera's segment index."""
    return f"cctv:rec:{camera_id}"


SEGMENT_SUFFIX = ".mkv"
"""Recorded segments are Matroska files."""


def plain_segment_path(relpath: str) -> bool:
    """True for a plain relative ``<camera>/.../<file>.mkv``: no NUL, backslash, leading ``/``, empty, ``.``,
    ``..`` or hidden (``.incoming``) part."""
    if (not relpath or "\x00" in relpath or "\\" in relpath or relpath.startswith("/")
            or not relpath.endswith(SEGMENT_SUFFIX)):
        return False
    parts = relpath.split("/")
    return len(parts) >= 2 and not any(part in ("", ".", "..") or part.startswith(".") for part in parts)


@dataclass(frozen=True)
class Segment:
    """One recorded segment: ``path`` relative to the recordings folder, real start/end times, size in bytes, and
    the host holding the file (None: recorded before hosts were indexed, i.e. on the single host)."""

    path: str
    start: float
    end: float
    size: int
    host: str | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def member(self) -> str:
        """The sorted-set member encoding this segment."""
        data = asdict(self)
        if self.host is None:
            del data["host"]  # the exact text of a member written before hosts were indexed
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_member(cls, member: bytes | str) -> Segment:
        """Decode a sorted-set member."""
        data = json.loads(member)
        host = data.get("host")
        return cls(path=data["path"], start=float(data["start"]), end=float(data["end"]), size=int(data["size"]),
                   host=str(host) if host is not None else None)


def add_segment(client: Any, camera_id: str, segment: Segment) -> None:
    """Index one segment."""
    pipe = client.pipeline()
    pipe.zadd(index_key(camera_id), {segment.member(): segment.start})
    pipe.hincrby(BYTES_KEY, camera_id, segment.size)
    if segment.host:
        pipe.hincrby(HOST_BYTES_KEY, segment.host, segment.size)
    pipe.execute()


def remove_segment(client: Any, camera_id: str, segment: Segment) -> None:
    """Remove one segment from the index (after its file was deleted)."""
    pipe = client.pipeline()
    pipe.zrem(index_key(camera_id), segment.member())
    pipe.hincrby(BYTES_KEY, camera_id, -segment.size)
    if segment.host:
        pipe.hincrby(HOST_BYTES_KEY, segment.host, -segment.size)
    pipe.execute()


def segments_between(client: Any, camera_id: str, start: float, end: float, max_segment_s: float = 120.0) -> list[Segment]:
    """Segments of a camera overlapping ``[start, end]``, ordered by start time."""
    raw = client.zrangebyscore(index_key(camera_id), start - max_segment_s, end)
    segments = [Segment.from_member(m) for m in raw]
    return sorted((s for s in segments if s.end > start and s.start < end), key=lambda s: s.start)


def oldest_segments(client: Any, camera_id: str, count: int = 100, before: float | None = None,
                    offset: int = 0) -> list[Segment]:
    """The ``count`` oldest segments of a camera (starting before ``before`` if given), skipping ``offset``."""
    if before is None:
        raw = client.zrange(index_key(camera_id), offset, offset + count - 1)
    else:
        raw = client.zrangebyscore(index_key(camera_id), "-inf", f"({before}", start=offset, num=count)
    return [Segment.from_member(m) for m in raw]


def register_host(client: Any, host: str, url: str) -> None:
    """Record where ``host``'s internal segment server is (its base URL)."""
    client.hset(HOSTS_KEY, host, url)


def host_url(client: Any, host: str) -> str | None:
    """The base URL of ``host``'s internal segment server, or None when it never registered one."""
    raw = client.hget(HOSTS_KEY, host)
    return raw.decode() if isinstance(raw, bytes) else raw


def indexed_bytes(client: Any) -> dict[str, int]:
    """Total indexed bytes per camera."""
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in client.hgetall(BYTES_KEY).items()}


def bytes_held_by(client: Any, host: str) -> int:
    """Indexed bytes on ``host``'s disk: every indexed byte but those other hosts hold (segments indexed before
    hosts were recorded count as this host's: there was one host)."""
    per_host = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in client.hgetall(HOST_BYTES_KEY).items()}
    return sum(indexed_bytes(client).values()) - sum(v for h, v in per_host.items() if h != host)


def indexed_cameras(client: Any) -> list[str]:
    """Cameras that have an index (even if their camera was removed from the config)."""
    keys = [k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match="cctv:rec:*", count=500)]
    return sorted(k.split(":", 2)[2] for k in keys if k != BYTES_KEY)
