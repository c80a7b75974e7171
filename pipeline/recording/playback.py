"""Recorded playback: what a camera recorded in a window, and a fragmented MP4 stream from any instant.

The segment index (:mod:`pipeline.recording.index`) gives each segment's real start and end. :func:`recorded_ranges`
merges touching segments into ranges (a hole longer than :data:`GAP_S` is a gap: the camera was offline or the
recorder stopped). :func:`plan_playback` chooses what to stream from an instant ``t``: the segment holding ``t``
(or, when ``t`` falls in a gap, the next one if it starts within the window), entered at its keyframe at or before
``t`` (read from the segment's packet flags with ffprobe, cached per file: segments never change), followed by the
next segments of the same contiguous range, whole, up to ``max_s`` seconds. :func:`ffmpeg_args` remuxes them by
STREAM COPY (nothing is decoded or re-encoded) with ffmpeg's concat demuxer into fragmented MP4 (``empty_moov``,
a fragment per keyframe at most ``FRAGMENT_US`` long) on stdout, which a browser appends to a Media Source
Extensions buffer. Time 0 of that stream is the real time :attr:`PlaybackPlan.start` (the keyframe's), so the
player shows wall-clock time and seeks exactly to ``t``; the stream ends at a gap or after ``max_s``, and
:attr:`PlaybackPlan.end` is where the player asks for the continuation. Two hosts' segments of the same time are
never played one after the other: the one :func:`~pipeline.recording.index.resolve_overlaps` drops is skipped.
"""

from __future__ import annotations

import bisect
import json
import logging
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.recording.index import Segment, index_key, resolve_overlaps, segments_between
from pipeline.recording.locate import SegmentMissing, is_local, open_segment

logger = logging.getLogger(__name__)

GAP_S = 1.5
"""A hole between two segments longer than this is a gap in the recording."""
FRAGMENT_US = 1_000_000
"""Longest fMP4 fragment (microseconds): a long-GOP camera still streams at least a fragment a second."""
MAX_SEGMENT_S = 900.0
"""Longest segment the index lookups allow for (the recorder writes 60 s segments by default)."""
_KEYFRAME_CACHE_SIZE = 512


class PlaybackError(RuntimeError):
    """Nothing to play: no recording at (or shortly after) the instant asked for."""


@dataclass(frozen=True)
class Range:
    """A stretch of recording without gaps (real UTC epoch seconds)."""

    start: float
    end: float


@dataclass(frozen=True)
class SegmentInfo:
    """What ffprobe says about a segment: keyframe times (seconds from the file's start), frame rate, codec."""

    keyframes: tuple[float, ...]
    frame_rate: float | None
    codec: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class PlaybackPlan:
    """What one playback stream holds.

    Attributes:
        camera_id: the camera.
        files: absolute paths of the segments, in order.
        durations: their indexed durations (the concat demuxer's ``duration`` lines).
        inpoint: where the first file is entered (seconds from its start; a keyframe).
        start: real time of the stream's first frame (the keyframe at or before the instant asked for).
        end: real time where the stream ends (the continuation is asked from here).
        next_start: real start of the next recording after ``end`` (None when none is indexed).
        info: probe of the first segment (frame rate, codec, size).
    """

    camera_id: str
    files: tuple[Path, ...]
    durations: tuple[float, ...]
    inpoint: float
    start: float
    end: float
    next_start: float | None
    info: SegmentInfo


def recorded_ranges(segments: list[Segment], gap_s: float = GAP_S) -> list[Range]:
    """Merge segments (ordered by start) into ranges; a hole longer than ``gap_s`` starts a new range."""
    ranges: list[Range] = []
    for seg in segments:
        if ranges and seg.start - ranges[-1].end <= gap_s:
            last = ranges[-1]
            ranges[-1] = Range(last.start, max(last.end, seg.end))
        else:
            ranges.append(Range(seg.start, seg.end))
    return ranges


def gaps_between(ranges: list[Range]) -> list[Range]:
    """The holes between consecutive ranges."""
    return [Range(a.end, b.start) for a, b in zip(ranges, ranges[1:], strict=False)]


def safe_segment_path(recordings_dir: Path, camera_id: str, segment: Segment) -> Path | None:
    """The segment's file if it lies inside ``<recordings>/<camera>/`` and exists, else None (a tampered index
    entry pointing elsewhere is never opened)."""
    root = (recordings_dir / camera_id).resolve()
    try:
        path = (recordings_dir / segment.path).resolve()
    except (OSError, ValueError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


_cache: OrderedDict[tuple[str, int, int], SegmentInfo] = OrderedDict()
_cache_lock = threading.Lock()


def probe_segment(path: Path) -> SegmentInfo:
    """Keyframe times, frame rate, codec and size of a segment (its packets, nothing decoded): PyAV in-process,
    ffprobe when PyAV cannot read it. Cached per (path, size, mtime): a finished segment never changes.
    """
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        info = _probe_av(path)
    except Exception as exc:  # noqa: BLE001 - PyAV missing or refusing the file: ffprobe decides
        logger.debug("PyAV could not read %s (%s); using ffprobe", path.name, exc)
        info = _probe_ffprobe(path)
    with _cache_lock:
        _cache[key] = info
        while len(_cache) > _KEYFRAME_CACHE_SIZE:
            _cache.popitem(last=False)
    return info


def _probe_av(path: Path) -> SegmentInfo:
    """The segment's video packets read in-process with PyAV (demux only, nothing decoded; no process start)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        keyframes = sorted(float(packet.pts * base) for packet in container.demux(stream)
                           if packet.is_keyframe and packet.pts is not None)
        rate = float(stream.average_rate) if stream.average_rate else None
        return SegmentInfo(tuple(keyframes), rate if rate and 0 < rate < 1000 else None, stream.codec_context.name,
                           stream.codec_context.width or None, stream.codec_context.height or None)


def _probe_ffprobe(path: Path) -> SegmentInfo:
    """The same facts from ffprobe (packets only, nothing decoded)."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
           "stream=codec_name,avg_frame_rate,r_frame_rate,width,height:packet=pts_time,flags", "-of", "json", str(path)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        data = json.loads(result.stdout or "{}")
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise PlaybackError(f"recording {path.name} cannot be read: {exc}") from None
    keyframes = sorted(float(p["pts_time"]) for p in data.get("packets", [])
                       if "K" in p.get("flags", "") and p.get("pts_time") not in (None, "N/A"))
    stream = (data.get("streams") or [{}])[0]
    return SegmentInfo(tuple(keyframes), _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
                       stream.get("codec_name"), stream.get("width"), stream.get("height"))


def _rate(text: Any) -> float | None:
    try:
        num, _, den = str(text).partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if 0 < value < 1000 else None


def keyframe_at_or_before(keyframes: tuple[float, ...], offset: float) -> float:
    """The last keyframe time <= ``offset`` (the first keyframe when none is earlier; 0 when none is known)."""
    if not keyframes:
        return 0.0
    i = bisect.bisect_right(keyframes, offset + 1e-6)
    return keyframes[max(0, i - 1)]


def next_recording_after(client: Any, camera_id: str, t: float) -> float | None:
    """Start of the first segment starting after ``t`` (None when none is indexed)."""
    raw = client.zrangebyscore(index_key(camera_id), f"({t}", "+inf", start=0, num=1)
    return Segment.from_member(raw[0]).start if raw else None


def plan_playback(client: Any, recordings_dir: Path, camera_id: str, t: float, max_s: float,
                  gap_s: float = GAP_S) -> PlaybackPlan:
    """What to stream from instant ``t`` for at most ``max_s`` seconds (see the module docstring).

    Raises :class:`PlaybackError` when no playable segment holds ``t`` or starts within ``max_s`` after it, and
    :class:`pipeline.recording.locate.SegmentUnavailable` when one is held by a worker host that cannot be reached.
    """
    # two hosts' segments of the same time are never streamed one after the other (see resolve_overlaps)
    candidates, dropped = resolve_overlaps(segments_between(client, camera_id, t, t + max_s, max_segment_s=MAX_SEGMENT_S))
    for seg, winner in dropped:
        logger.info("camera %s: segment %s of host %s overlaps %s of host %s; not played", camera_id, seg.path,
                    seg.host, winner.path, winner.host)  # fmt: skip
    chosen: list[tuple[Segment, Path]] = []
    for seg in candidates:
        path = safe_segment_path(recordings_dir, camera_id, seg)
        if path is None and not is_local(seg):  # held by another worker host: fetched from it (or its cache);
            try:                                # SegmentUnavailable (its host is down) goes to the caller
                path = open_segment(client, recordings_dir, seg)
            except SegmentMissing:
                path = None
        if path is None:
            logger.warning("camera %s: indexed segment %s is missing or outside its folder; skipped", camera_id,
                           seg.path)
            continue
        if chosen and seg.start - chosen[-1][0].end > gap_s:
            break  # a gap: this stream ends here, the player asks again from the next range
        if chosen and seg.start >= t + max_s:
            break
        chosen.append((seg, path))
    if not chosen:
        upcoming = next_recording_after(client, camera_id, t)
        after = f"; the next recording starts at epoch {upcoming:.3f}" if upcoming is not None else ""
        raise PlaybackError(f"no recording of camera {camera_id!r} at epoch {t:.3f} or in the {max_s:g} s after "
                            f"it{after}")
    first, first_path = chosen[0]
    info = probe_segment(first_path)
    inpoint = keyframe_at_or_before(info.keyframes, max(0.0, t - first.start))
    last = chosen[-1][0]
    return PlaybackPlan(
        camera_id=camera_id, files=tuple(p for _, p in chosen), durations=tuple(s.duration for s, _ in chosen),
        inpoint=inpoint, start=first.start + inpoint, end=last.end,
        next_start=next_recording_after(client, camera_id, last.start),
        info=info)


def concat_script(plan: PlaybackPlan) -> str:
    """The ffconcat script of a plan: each file with its duration, the first entered at its keyframe (``file:``
    URLs: the script arrives on a pipe, so a bare path would be taken relative to ``pipe:``)."""
    lines = ["ffconcat version 1.0"]
    for i, (path, duration) in enumerate(zip(plan.files, plan.durations, strict=True)):
        escaped = str(path).replace("'", "'\\''")
        if i == 0 and plan.inpoint > 0:  # the duration line counts from the in point, not the file's start
            lines += [f"file 'file:{escaped}'", f"inpoint {plan.inpoint:.3f}",
                      f"duration {max(0.001, duration - plan.inpoint):.3f}"]
        else:
            lines += [f"file 'file:{escaped}'", f"duration {duration:.3f}"]
    return "\n".join(lines) + "\n"


def ffmpeg_args() -> list[str]:
    """ffmpeg reading a concat script on stdin and writing fragmented MP4 (stream copy) to stdout."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0",
        "-protocol_whitelist", "file,pipe", "-i", "pipe:0", "-map", "0:v:0", "-c", "copy",
        "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", str(FRAGMENT_US),
        "-f", "mp4", "pipe:1",
    ]  # fmt: skip
