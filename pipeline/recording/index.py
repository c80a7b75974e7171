"""The recording segment index in Redis.

Key layout:

- ``cctv:rec:<camera_id>`` (sorted set): one member per segment, scored by its real start time (UTC epoch s).
  The member is compact JSON ``{"path": ..., "start": ..., "end": ..., "size": ...}`` with ``path`` relative to
  the recordings folder (``<camera>/<YYYY-MM-DD>/<HH>/<camera>_<YYYYmmddTHHMMSS.mmm>Z.mkv``).
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


def index_key(camera_id: str) -> str:
    """Redis key of a camera's segment index."""
    return f"cctv:rec:{camera_id}"


@dataclass(frozen=True)
class Segment:
    """One recorded segment: ``path`` relative to the recordings folder, real start/end times, size in bytes."""

    path: str
    start: float
    end: float
    size: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def member(self) -> str:
        """The sorted-set member encoding this segment."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_member(cls, member: bytes | str) -> Segment:
        """Decode a sorted-set member."""
        data = json.loads(member)
        return cls(path=data["path"], start=float(data["start"]), end=float(data["end"]), size=int(data["size"]))


def add_segment(client: Any, camera_id: str, segment: Segment) -> None:
    """Index one segment."""
    pipe = client.pipeline()
    pipe.zadd(index_key(camera_id), {segment.member(): segment.start})
    pipe.hincrby(BYTES_KEY, camera_id, segment.size)
    pipe.execute()


def remove_segment(client: Any, camera_id: str, segment: Segment) -> None:
    """Remove one segment from the index (after its file was deleted)."""
    pipe = client.pipeline()
    pipe.zrem(index_key(camera_id), segment.member())
    pipe.hincrby(BYTES_KEY, camera_id, -segment.size)
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


def indexed_bytes(client: Any) -> dict[str, int]:
    """Total indexed bytes per camera."""
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in client.hgetall(BYTES_KEY).items()}


def indexed_cameras(client: Any) -> list[str]:
    """Cameras that have an index (even if their camera was removed from the config)."""
    keys = [k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match="cctv:rec:*", count=500)]
    return sorted(k.split(":", 2)[2] for k in keys if k != BYTES_KEY)
