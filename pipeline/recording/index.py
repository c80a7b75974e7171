"""The recording segment index in Redis.

Key layout:

- ``cctv:rec:<camera_id>`` (sorted set): one member per segment, scored by its real start time (UTC epoch s).
  The member is compact JSON ``{"host": ..., "path": ..., "start": ..., "end": ..., "size": ...}`` with ``path``
  relative to the recordings folder (``<camera>/<YYYY-MM-DD>/<HH>/<camera>_<YYYYmmddTHHMMSS.mmm>Z.mkv``) of
  ``host``, the host that recorded it and holds the file (``CCTV_HOST_NAME``). Members written before hosts were
  recorded have no ``host`` (the segment is on the one host there was) and keep their exact text, so removing
  them still matches. A segment recorded under a camera lease (worker hosts) also has ``token``, the lease's
  fencing token: its index write is fenced like an event (:func:`add_segment`), and readers prefer the footage of
  the higher token where two hosts' segments overlap (:func:`resolve_overlaps`).
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
    the host holding the file (None: recorded before hosts were indexed, i.e. on the single host) and the fencing
    token of the camera lease it was recorded under (None: no lease, single host)."""

    path: str
    start: float
    end: float
    size: int
    host: str | None = None
    token: int | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def member(self) -> str:
        """The sorted-set member encoding this segment."""
        data = asdict(self)
        for name in ("host", "token"):
            if data[name] is None:
                del data[name]  # the exact text of a member written before hosts (tokens) were indexed
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_member(cls, member: bytes | str) -> Segment:
        """Decode a sorted-set member."""
        data = json.loads(member)
        host, token = data.get("host"), data.get("token")
        return cls(path=data["path"], start=float(data["start"]), end=float(data["end"]), size=int(data["size"]),
                   host=str(host) if host is not None else None, token=int(token) if token is not None else None)


_ADD_SEGMENT = """
-- KEYS: index, bytes, host bytes, fence; ARGV: member, score, camera, size, host ('' none), token, capture time
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[3], ARGV[4])
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[5], ARGV[4]) end
return 1
"""


class SegmentFencedError(Exception):
    """Redis refused a segment's index entry: its lease token was superseded before the segment ended."""


def is_fenced(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write for its fencing token (see :mod:`pipeline.cluster.fencing`)."""
    return "FENCED" in str(exc)


def add_segment(client: Any, camera_id: str, segment: Segment) -> None:
    """Index one segment. One with a lease ``token`` is fenced (the check of :mod:`pipeline.cluster.fencing`, with
    the segment's end as capture time): when another lease of the camera was handed out before the segment ended,
    nothing is written and :class:`SegmentFencedError` is raised."""
    if segment.token is not None:
        _add_fenced(client, camera_id, segment)
        return
    pipe = client.pipeline()
    pipe.zadd(index_key(camera_id), {segment.member(): segment.start})
    pipe.hincrby(BYTES_KEY, camera_id, segment.size)
    if segment.host:
        pipe.hincrby(HOST_BYTES_KEY, segment.host, segment.size)
    pipe.execute()


def _add_fenced(client: Any, camera_id: str, segment: Segment) -> None:
    from pipeline.cluster.fencing import fenced_source
    from pipeline.cluster.leases import fence_key

    script = client.register_script(fenced_source(_ADD_SEGMENT))
    try:
        script(keys=[index_key(camera_id), BYTES_KEY, HOST_BYTES_KEY, fence_key(camera_id)],
               args=[segment.member(), repr(segment.start), camera_id, segment.size, segment.host or "",
                     int(segment.token or 0), repr(float(segment.end))])  # fmt: skip
    except Exception as exc:
        if is_fenced(exc):
            raise SegmentFencedError(str(exc)) from exc
        raise


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


OVERLAP_TOLERANCE_S = 0.5
"""Two hosts' segments overlapping by at most this long are not a conflict (the ends of a clean hand-over)."""


def resolve_overlaps(segments: list[Segment], tolerance_s: float = OVERLAP_TOLERANCE_S
                     ) -> tuple[list[Segment], list[tuple[Segment, Segment]]]:  # fmt: skip
    """Readers' defence against two hosts' footage of one time in the index (entries written before segment index
    writes were fenced, or any that slipped through): of two segments of different hosts overlapping by more than
    ``tolerance_s``, the one recorded under the lower lease token gives way (what the fence refuses when it is
    written: :func:`add_segment`); without two tokens to compare, a segment wholly covered by the other host's gives
    way (of two covering each other, the one with the lower token, then the shorter one). Segments of one host are
    never compared (they follow each other). Returns the segments kept (in the order given) and each dropped one
    with the segment it gave way to, so that an export or a playback never interleaves two recordings of the same
    time and a clip's media duration matches its window."""

    def overlap(a: Segment, b: Segment) -> float:
        return min(a.end, b.end) - max(a.start, b.start)

    def covers(a: Segment, b: Segment) -> bool:
        return a.start <= b.start + tolerance_s and a.end >= b.end - tolerance_s

    def rank(seg: Segment) -> tuple[int, float, str, str]:
        return (-1 if seg.token is None else seg.token, seg.duration, seg.host or "", seg.path)

    def gives_way(a: Segment, b: Segment) -> bool:
        if a.host == b.host or overlap(a, b) <= tolerance_s:
            return False
        if a.token is not None and b.token is not None and a.token != b.token:
            return a.token < b.token
        if not covers(b, a):
            return False
        return not covers(a, b) or rank(a) < rank(b)

    ordered = sorted(range(len(segments)), key=lambda i: segments[i].start)
    loser: dict[int, int] = {}
    for pos, i in enumerate(ordered):
        a = segments[i]
        for j in ordered[pos + 1:]:
            b = segments[j]
            if b.start >= a.end - tolerance_s:
                break
            if i not in loser and gives_way(a, b):
                loser[i] = j
            if j not in loser and gives_way(b, a):
                loser[j] = i
    kept = [seg for i, seg in enumerate(segments) if i not in loser]
    return kept, [(segments[i], segments[j]) for i, j in sorted(loser.items(), key=lambda item: segments[item[0]].start)]


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
