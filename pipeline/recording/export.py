"""Evidence clip export: one playable MP4 of a camera's time window, with a SHA-256 manifest.

The recorded segments overlapping the window (from the Redis index, :mod:`pipeline.recording.index`) are joined
with ffmpeg's concat demuxer and cut by STREAM COPY (the pictures are the camera's own bits, nothing is
re-encoded; segments held by another worker host are fetched from it, :mod:`pipeline.recording.locate`, and a
host that cannot be reached fails the export with :class:`FootageUnavailable` naming it): the clip starts at the keyframe at or before the window start and an MP4 edit list hides the frames
before it, so players and ffprobe show the window itself (within the GOP of the camera; the test cameras use a
1 s GOP). ``accurate=True`` re-encodes (libx264) for a frame-exact cut instead. The clip keeps wall time: every
segment is placed at its real start (:func:`place_segments`), so a gap in the recording (camera offline) stays in the
clip as a hole in the timestamps (a player holds the last picture before it) and a picture's time in the player
plus the MP4's ``creation_time`` (the start of the covered window, UTC) is when it was recorded. Gaps are also listed
in the manifest, and so are an uncovered head (the window starting before the first recorded segment) and tail
(ending after the last one), which are not in the clip: such a clip's manifest says ``"complete": false`` and holds
``requested`` and ``covered`` windows, so nobody takes it for the whole window. Two hosts' segments of the same
time (index entries written before the fencing of segment index writes, or any that slipped through) are never
interleaved: the one of the lower lease token, or one wholly covered by the other host's, is left out
(:func:`~pipeline.recording.index.resolve_overlaps`) and listed in the manifest's ``dropped_segments``.

Files go to ``<recordings>/exports/`` (never deleted by retention): ``<camera>_<start>_<end>_<created>.mp4`` and
``.json`` manifest with camera, window (requested), covered window, gaps, ``complete``, creation time, requester,
segments used, file size and SHA-256 of the MP4.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.fileperms import EXPORT_MANIFEST_MODE
from pipeline.models_manifest import sha256_file
from pipeline.recording.index import Segment, resolve_overlaps, segments_between
from pipeline.recording.locate import SegmentMissing, SegmentUnavailable, open_segment
from pipeline.recording.recorder import probe_duration
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)

EXPORTS_DIRNAME = "exports"
_GAP_TOLERANCE_S = 0.5
MAX_HELD_FILES = 2048
"""Most segment files one export keeps open while it cuts (more are read by path; see :func:`hold_segments`)."""


class ExportError(RuntimeError):
    """The clip cannot be exported (no recording covers the window, bad window, ffmpeg failure)."""


class FootageUnavailable(ExportError):
    """Part of the window is recorded on hosts that cannot be reached now (``hosts``: host -> why)."""

    def __init__(self, camera_id: str, hosts: dict[str, str]) -> None:
        named = "; ".join(f"host {h!r}: {why}" for h, why in sorted(hosts.items()))
        super().__init__(f"footage of camera {camera_id!r} in this window is held by a host that cannot be reached "
                         f"now ({named}); try again when it is back")
        self.camera_id = camera_id
        self.hosts = hosts


def locate_segments(client: Any, recordings_dir: Path, camera_id: str,
                    segments: list[Segment]) -> list[tuple[Segment, Path]]:
    """Each segment with a local file to read (fetched from its host when needed); segments whose file is gone
    are left out (a gap); raises :class:`FootageUnavailable` when a holding host cannot be reached."""
    located: list[tuple[Segment, Path]] = []
    unavailable: dict[str, str] = {}
    for seg in segments:
        try:
            located.append((seg, open_segment(client, recordings_dir, seg)))
        except SegmentMissing:
            continue
        except SegmentUnavailable as exc:
            unavailable.setdefault(exc.host, exc.reason)
    if unavailable:
        raise FootageUnavailable(camera_id, unavailable)
    return located


@dataclass(frozen=True)
class ExportResult:
    """Where the exported clip and its manifest are, with the clip's SHA-256, size and duration."""

    mp4_path: Path
    manifest_path: Path
    sha256: str
    size: int
    duration: float
    covered: tuple[float, float] | None = None
    """The recorded part of the window (real times): start of the first picture, end of the last."""
    complete: bool = True
    """Whether the clip holds the whole requested window (no gap, head or tail uncovered)."""


def exports_dir(recordings_dir: Path | None = None) -> Path:
    """The evidence folder ``<recordings>/exports``."""
    return (recordings_dir or get_settings().recordings_dir) / EXPORTS_DIRNAME


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def plan_cut(segments: list[Segment], start: float, end: float) -> tuple[float, float, list[tuple[float, float]]]:
    """Offset and duration of the window in the concatenation of ``segments``, and the gaps (real times): between
    segments, and an uncovered head (the window starting before the first segment) or tail (ending after the
    last), each longer than :data:`_GAP_TOLERANCE_S`."""
    offset = 0.0
    position = 0.0
    duration = 0.0
    gaps: list[tuple[float, float]] = []
    previous_end: float | None = None
    for seg in segments:
        if previous_end is None and seg.start - start > _GAP_TOLERANCE_S:
            gaps.append((start, min(seg.start, end)))  # uncovered head
        elif previous_end is not None and seg.start - previous_end > _GAP_TOLERANCE_S:
            gaps.append((max(previous_end, start), min(seg.start, end)))
        if seg.start <= start < seg.end:
            offset = position + (start - seg.start)
        elif seg.start > start and duration == 0.0:
            offset = position  # window starts in a gap or before the first segment
        duration += max(0.0, min(seg.end, end) - max(seg.start, start))
        position += seg.duration
        previous_end = seg.end
    if previous_end is not None and end - previous_end > _GAP_TOLERANCE_S:
        gaps.append((max(previous_end, start), end))  # uncovered tail
    return offset, duration, [(a, b) for a, b in gaps if b > a]


def place_segments(segments: list[Segment]) -> list[float]:
    """Where each segment starts on the clip's time line (seconds from the first segment's start): at its real start
    (a gap stays a gap), never before the end of the segment before it (segments indexed as overlapping a little
    are laid end to end)."""
    places: list[float] = []
    previous: Segment | None = None
    for seg in segments:
        real = seg.start - segments[0].start
        places.append(real if previous is None else max(real, places[-1] + previous.duration))
        previous = seg
    return places


def wall_time_cut(segments: list[Segment], places: list[float], start: float, end: float) -> tuple[float, float]:
    """Offset and length on the time line of :func:`place_segments` of the covered part of ``[start, end]``: from the
    first recorded picture at or after ``start`` to the last one before ``end``, gaps between included."""
    first, last = max(start, segments[0].start), min(end, segments[-1].end)
    offset = next((place + max(0.0, first - seg.start) for seg, place in zip(segments, places, strict=True)
                   if seg.end > first), places[-1])
    stop = max((place + min(seg.duration, last - seg.start) for seg, place in zip(segments, places, strict=True)
                if seg.start < last), default=offset)
    return offset, max(0.0, stop - offset)


def export_clip(
    client: Any,
    camera_id: str,
    start: float,
    end: float,
    requester: str,
    out_dir: Path | None = None,
    progress: Callable[[float], None] | None = None,
    recordings_dir: Path | None = None,
    accurate: bool = False,
) -> ExportResult:
    """Cut ``[start, end]`` (UTC epoch seconds) of ``camera_id`` into one MP4 plus a JSON manifest.

    ``progress`` is called with a fraction 0..1. Raises :class:`ExportError` when the window is invalid or no
    recording covers any of it.
    """
    if not requester.strip():
        raise ExportError("requester is required (it is written in the evidence manifest)")
    if not end > start:
        raise ExportError(f"empty window: end {_iso(end)} is not after start {_iso(start)}")
    if end - start > 6 * 3600:
        raise ExportError("window longer than 6 hours; export it in parts")
    recordings_dir = recordings_dir or get_settings().recordings_dir
    segments, dropped = resolve_overlaps(segments_between(client, camera_id, start, end))
    for seg, winner in dropped:
        logger.warning("camera %s: segment %s of host %s (token %s) overlaps %s of host %s (token %s); left out of "
                       "the export", camera_id, seg.path, seg.host, seg.token, winner.path, winner.host,
                       winner.token)  # fmt: skip
    located = locate_segments(client, recordings_dir, camera_id, segments)
    with contextlib.ExitStack() as stack:
        held = hold_segments(stack, camera_id, located)
        return _export(held, camera_id, start, end, requester, out_dir or exports_dir(recordings_dir), progress,
                       accurate, dropped=dropped)


def hold_segments(stack: contextlib.ExitStack, camera_id: str,
                  located: list[tuple[Segment, Path]]) -> list[tuple[Segment, Path, int | None]]:
    """Open each located segment file now and keep it open (closed by ``stack``), so that retention (or the remote
    cache's trimming) deleting it while the clip is cut cannot take its bytes away: ffmpeg reads the open file
    (``/dev/fd/N``, Linux), not the path. A file already gone is left out, so the cut and the manifest treat it as
    a gap, like a segment gone before the lookup. Beyond :data:`MAX_HELD_FILES` (or when the process's file limit
    is near) files are read by path; a file deleted then fails the cut (``-xerror``) rather than shortening it."""
    try:
        import resource

        budget = min(MAX_HELD_FILES, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2 - 64)
    except (ImportError, OSError, ValueError):
        budget = 0
    if not Path("/dev/fd").is_dir():
        budget = 0
    held: list[tuple[Segment, Path, int | None]] = []
    opened = 0
    for seg, path in located:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)) if opened < budget else None
        except FileNotFoundError:
            logger.warning("camera %s: segment %s was deleted before the export read it; left out (a gap)",
                           camera_id, seg.path)
            continue
        except OSError:
            fd = None  # ffmpeg tries the path and says what is wrong with it
        if fd is not None:
            stack.callback(os.close, fd)
            opened += 1
        held.append((seg, path, fd))
    return held


def _export(held: list[tuple[Segment, Path, int | None]], camera_id: str, start: float, end: float, requester: str,
            out_dir: Path, progress: Callable[[float], None] | None, accurate: bool,
            dropped: list[tuple[Segment, Segment]] | None = None) -> ExportResult:  # fmt: skip
    """Cut the held segments and write the manifest (see :func:`export_clip`; ``dropped``: segments left out for
    overlapping another host's, each with the one it gave way to)."""
    segments = [seg for seg, _, _ in held]
    if not segments:
        raise ExportError(f"no recording of camera {camera_id!r} covers {_iso(start)} .. {_iso(end)}")
    gaps = plan_cut(segments, start, end)[2]
    places = place_segments(segments)
    offset, duration = wall_time_cut(segments, places, start, end)
    covered = (max(start, segments[0].start), min(end, segments[-1].end))
    out_dir.mkdir(parents=True, exist_ok=True)
    created = time.time()
    mp4_path, manifest_path = _claim_names(out_dir, f"{camera_id}_{_stamp(start)}_{_stamp(end)}_{_stamp(created)}")
    try:
        _run_cut(held, places, offset, duration, mp4_path, progress, accurate, recorded_at=covered[0])
    except BaseException:
        manifest_path.unlink(missing_ok=True)  # the claim (empty): no manifest without its clip
        raise
    actual = probe_duration(mp4_path) or 0.0
    digest, size = sha256_file(mp4_path), mp4_path.stat().st_size
    manifest = {
        "camera_id": camera_id,
        "window": {"start": _iso(start), "end": _iso(end), "start_epoch": start, "end_epoch": end},
        "requested": {"start": _iso(start), "end": _iso(end)},
        "covered": {"start": _iso(covered[0]), "end": _iso(covered[1]), "start_epoch": covered[0],
                    "end_epoch": covered[1]},
        "gaps": [{"start": _iso(a), "end": _iso(b)} for a, b in gaps],
        "complete": not gaps,
        "creation_time": _iso(covered[0]),
        "created": _iso(created),
        "requester": requester,
        "file": mp4_path.name,
        "size_bytes": size,
        "sha256": digest,
        "duration_s": round(actual, 3),
        "cut": "re-encoded (libx264)" if accurate else "stream copy (original bits), MP4 edit list at window start",
        "timeline": "wall time: a picture at clip time t was recorded at creation_time + t; gaps are held as the "
                    "last picture before them",
        "segments": [s.path for s in segments],
        "dropped_segments": [_dropped_entry(seg, winner) for seg, winner in dropped or []],
    }
    tmp = manifest_path.with_suffix(".json.part")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    os.chmod(tmp, EXPORT_MANIFEST_MODE)  # neither widened nor narrowed by the umask
    os.replace(tmp, manifest_path)
    if progress is not None:
        progress(1.0)
    logger.info("exported %s (%.1fs, %d bytes, sha256 %s, complete %s) for %s", mp4_path.name, actual, size, digest,
                not gaps, requester)
    return ExportResult(mp4_path, manifest_path, digest, size, actual, covered, not gaps)


def _dropped_entry(seg: Segment, winner: Segment) -> dict[str, Any]:
    """The manifest's record of a segment left out for overlapping another host's (``winner``)."""
    why = ("lower lease token" if seg.token is not None and winner.token is not None and seg.token < winner.token
           else "wholly covered by another host's segment")  # fmt: skip
    return {"path": seg.path, "host": seg.host, "token": seg.token, "start": _iso(seg.start), "end": _iso(seg.end),
            "reason": f"overlaps {winner.path} (host {winner.host}, token {winner.token}): {why}"}


def _claim_names(out_dir: Path, base: str) -> tuple[Path, Path]:
    """The clip's and manifest's paths for ``base``, claimed by creating the manifest's name exclusively (an empty
    file until the manifest replaces it): two exports of the same window in the same second (the CLI, into one
    folder) get ``base``, ``base-2``, ... instead of overwriting each other's clip and manifest."""
    for k in range(1, 1000):
        name = base if k == 1 else f"{base}-{k}"
        try:
            os.close(os.open(out_dir / f"{name}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, EXPORT_MANIFEST_MODE))
        except FileExistsError:
            continue
        return out_dir / f"{name}.mp4", out_dir / f"{name}.json"
    raise ExportError(f"{out_dir} already holds 999 exports named {base}")


def _run_cut(
    held: list[tuple[Segment, Path, int | None]], places: list[float], offset: float, duration: float, target: Path,
    progress: Callable[[float], None] | None, accurate: bool, recorded_at: float | None = None,
) -> None:  # fmt: skip
    """Cut ``duration`` s from ``offset`` of the held segments laid out at ``places`` (:func:`place_segments`) into
    ``target``; ``recorded_at`` (real time of the clip's first picture) is written as the MP4's ``creation_time``."""
    stamp = ["-metadata", f"creation_time={_iso(recorded_at)}"] if recorded_at is not None else []
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        listing = Path(tmp) / "segments.ffconcat"
        listing.write_text(_concat_listing(held, places))
        part = target.with_suffix(".part.mp4")
        codec = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"] if accurate else ["-c", "copy"]
        # -xerror: a segment that cannot be opened fails a stream-copy cut (ffmpeg would otherwise end the clip there
        # and exit 0, and the manifest would list footage the clip does not hold); not when re-encoding, where it
        # would also fail on a damaged frame the decoder conceals
        exit_on_error = [] if accurate else ["-xerror"]
        cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *exit_on_error, "-y", "-f", "concat", "-safe", "0",
            "-ss", f"{offset:.3f}", "-i", str(listing), "-t", f"{duration:.3f}", "-map", "0:v:0", *codec, *stamp,
            "-movflags", "+faststart", "-progress", "pipe:1", "-nostats", str(part),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                pass_fds=tuple(fd for _, _, fd in held if fd is not None))
        assert proc.stdout is not None
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            if progress is not None and key == "out_time_us" and value.isdigit() and duration > 0:
                progress(min(0.99, int(value) / 1e6 / duration))
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.wait() != 0 or not part.exists():
            part.unlink(missing_ok=True)
            said = _server_paths_hidden(stderr.strip(), held, Path(tmp), part)
            raise ExportError(f"ffmpeg could not cut the clip: {said[-300:]}")
        os.replace(part, target)


def _concat_listing(held: list[tuple[Segment, Path, int | None]], places: list[float]) -> str:
    """The ffconcat listing of the held segments. Each file's ``duration`` reaches to the next one's place, so that
    the concat demuxer starts every segment at its place on the wall-time line: a gap in the recording becomes a
    hole in the clip's timestamps. Not filled with a generated "no recording" still: checked with ffmpeg 5.1 and
    Chromium, an MP4 with such a hole (stored as the last picture before the gap lasting the whole gap) plays from
    its keyframe at 0, seeks into the gap (showing that held picture) and past it to the right wall time, and
    ffprobe gives every packet its wall-time offset; and the clip stays the camera's own bits, with no filler that
    would have to be encoded to the camera's exact stream parameters to be joined by stream copy."""
    lines = ["ffconcat version 1.0"]
    for k, (seg, path, fd) in enumerate(held):
        source = f"/dev/fd/{fd}" if fd is not None else str(path.resolve())
        escaped = source.replace("'", "'\\''")
        # rounded places, not rounded lengths: thousands of segments must not add up their rounding errors
        length = round(places[k + 1], 3) - round(places[k], 3) if k + 1 < len(held) else seg.duration
        lines += [f"file '{escaped}'", f"duration {length:.3f}"]
    return "\n".join(lines) + "\n"


def _server_paths_hidden(text: str, held: list[tuple[Segment, Path, int | None]], tmp: Path, part: Path) -> str:
    """ffmpeg's message with the server's absolute paths replaced by what the reader may see: a segment's path
    relative to the recordings folder, the clip's file name (the message reaches the API's client)."""
    swaps = {str(path.resolve()): seg.path for seg, path, _ in held} | {str(part): part.name, str(tmp): "<tmp>"}
    for absolute in sorted(swaps, key=len, reverse=True):
        text = text.replace(absolute, swaps[absolute])
    return text


MAX_EPOCH_S = 253_402_300_800.0  # 10000-01-01T00:00:00Z


def parse_time(text: str) -> float:
    """Epoch seconds from ``1700000000.5`` or ISO-8601 (``2024-11-20T10:00:00Z``; naive = UTC), between 1970 and
    9999."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= seconds < MAX_EPOCH_S:  # nan and inf fail this too
            raise ExportError(f"not a time: {text!r} (epoch seconds must lie between 1970 and 9999)")
        return seconds
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"not a time: {text!r} (use ISO-8601 UTC like 2024-11-20T10:00:00Z or epoch seconds)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def export_clip_cli(args: argparse.Namespace) -> int:
    """``python -m pipeline export-clip CAMERA START END --requester NAME [--out DIR]``; exit code 0/1."""
    import redis

    from pipeline.store.connection import redis_client

    settings = get_settings()
    try:
        start, end = parse_time(args.start), parse_time(args.end)
        client = redis_client(settings.redis_url, socket_connect_timeout=5)
        result = export_clip(
            client, args.camera, start, end, args.requester, out_dir=Path(args.out) if args.out else None,
            recordings_dir=settings.recordings_dir,
        )  # fmt: skip
    except ExportError as exc:
        sys.stderr.write(f"export-clip: {exc}\n")
        return 1
    except redis.RedisError as exc:
        sys.stderr.write(f"export-clip: cannot reach Redis: {exc}\n")
        return 1
    sys.stdout.write(f"clip      {result.mp4_path}\nmanifest  {result.manifest_path}\n")
    sys.stdout.write(f"duration  {result.duration:.2f}s\nsize      {result.size}\nsha256    {result.sha256}\n")
    return 0
