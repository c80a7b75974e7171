"""Recorded playback: a camera's timeline (recorded ranges, gaps, events) and a fragmented-MP4 stream from any
instant, remuxed from the recorded segments by stream copy (:mod:`pipeline.recording.playback`).

The stream authenticates like every route (``Authorization: Bearer`` or ``X-API-Key`` headers, never a token in
the URL): a browser reads it with ``fetch()`` and appends it to a Media Source Extensions buffer. Every stream is
audited (who, camera, the time range it covers, the player's session id).

A camera removed from cameras.yaml (decommissioned, renamed) stays reviewable while retention keeps its recordings:
for an admin, or a user whose cameras include its id (:func:`check_camera`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import redis
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ApiStoreDep, Operator, RedisDep, SettingsDep, User
from api.schemas.errors import ErrorOut
from api.schemas.recordings import MarkerOut, RangeOut, TimelineOut
from api.validation import TIME_HELP, field_error, has_recordings, read_instant
from pipeline.recording.index import segments_between
from pipeline.recording.locate import SegmentUnavailable
from pipeline.recording.playback import (
    GAP_S,
    MAX_SEGMENT_S,
    PlaybackError,
    PlaybackPlan,
    concat_script,
    ffmpeg_args,
    gaps_between,
    plan_playback,
    recorded_ranges,
)
from pipeline.store import keys

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/recordings", tags=["recordings"])

MAX_WINDOW_S = 25 * 3600
"""Longest timeline window: a day (25 h so that any local calendar day fits)."""
MAX_STREAM_S = 600
"""Longest stretch one playback request streams; the player asks for the continuation."""
MAX_MARKERS = 2000
"""Most markers of one kind in a timeline answer."""
MAX_STREAMS = 32
"""Playback streams (ffmpeg remuxers) running at once in this API process; more are refused with 429."""
MARKER_SLACK_S = 600
"""Events are stored when their track ends: the stream is read up to this long after the window's end."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
FIRST_CHUNK = 64 * 1024
CHUNK = 256 * 1024
SESSION_ID = r"^[A-Za-z0-9_-]{1,64}$"

PLAYBACK_HEADERS = {
    "X-Playback-Start": "Real time (UTC epoch s) of the stream's first frame: the keyframe at or before `t`, or the "
                        "start of the next recording when `t` falls in a gap. Media time 0 is this instant.",
    "X-Playback-End": "Real time where this stream ends (a gap, or `max_s` reached): ask again with `t` = this.",
    "X-Playback-Next": "Real start of the next recording after this stream, when one is indexed.",
    "X-Playback-Frame-Rate": "Frames per second of the recording (for frame stepping).",
    "X-Playback-Codec": "Codec of the recording (h264, hevc): stream copy, nothing is re-encoded.",
}


def parse_instant(value: str, field: str) -> float:
    """Epoch seconds from epoch text or ISO-8601 (:func:`api.validation.read_instant`, the parser of every route);
    422 naming ``field`` when it is not a time or lies outside 2000-01-01 .. now + 1 day."""
    try:
        when = read_instant(value)
    except ValueError as exc:
        raise field_error(field, str(exc)) from None
    latest = time.time() + 86400
    if not math.isfinite(when) or not EARLIEST <= when <= latest:
        raise field_error(field, f"{value[:40]!r} is outside 2000-01-01 .. now + 1 day ({TIME_HELP})")
    return when


def check_camera(request: Request, client: redis.Redis, user: User, camera_id: str) -> None:
    """404 (the same answer for an unknown camera and for one the caller may not see) unless the camera is

    - configured and one of the caller's cameras, or
    - no longer configured (removed from cameras.yaml, renamed) but with retained recordings
      (:func:`api.validation.has_recordings`: a well-formed id whose index holds segments), for an admin or a
      caller whose cameras include it (no camera limit: every camera)."""
    config = request.app.state.camera_config
    if config is not None and any(c.id == camera_id for c in config.cameras):
        allowed = user.sees(camera_id)
    else:
        allowed = (user.may("admin") or user.sees(camera_id)) and has_recordings(client, camera_id)
    if not allowed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id[:64]!r} not found")


# ---- timeline ------------------------------------------------------------------------------------------------
def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_camera(kind: str, fields: dict) -> str:
    """The camera of a raw event or alert stream entry ("" when unreadable)."""
    try:
        if kind == "alert":
            return str(json.loads(fields.get(b"alert", b"{}")).get("camera_id", ""))
        return fields.get(b"camera_id", b"").decode()
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""


def _scan_markers(client: redis.Redis, kind: str, stream: str, camera_id: str, start: float, end: float,
                  cap: int, user: User) -> tuple[list[MarkerOut], int, bool]:
    """Markers of one kind: entries of ``stream`` stored in ``[start, end + slack]`` (stream ids are store times),
    reading at most ``cap`` entries and keeping at most :data:`MAX_MARKERS`; (markers, scanned, capped), where
    ``scanned`` counts the entries read on cameras the user sees (all of them without a camera limit: never how busy
    the others were)."""
    wanted = camera_id.encode()
    lo, hi = f"{int(start * 1000)}-0", f"{int((end + MARKER_SLACK_S) * 1000)}"
    found: list[MarkerOut] = []
    scanned = visible = 0
    while scanned < cap:
        count = min(500, cap - scanned)
        batch = client.xrange(stream, min=lo, max=hi, count=count)
        for _, fields in batch:
            scanned += 1
            if user.cameras is not None and not user.sees(_entry_camera(kind, fields)):
                continue
            visible += 1
            marker = _marker(kind, fields, wanted, start, end)
            if marker is not None:
                found.append(marker)
                if len(found) >= MAX_MARKERS:
                    return found, visible, True
        if len(batch) < count:
            return found, visible, False
        lo = f"({_sid(batch[-1][0])}"
    return found, visible, True


def _markers(client: redis.Redis, camera_id: str, start: float, end: float, user: User,
             cap: int) -> tuple[list[MarkerOut], int, bool]:
    kinds = [("plate", keys.PLATE_STREAM), ("alert", keys.ALERT_STREAM)]
    if user.may("investigator"):
        kinds.append(("face", keys.FACE_STREAM))
    out: list[MarkerOut] = []
    scanned, capped = 0, False
    for kind, stream in kinds:
        found, n, hit = _scan_markers(client, kind, stream, camera_id, start, end, cap, user)
        out += found
        scanned += n
        capped = capped or hit
    out.sort(key=lambda m: m.time)
    return out, scanned, capped


def _marker(kind: str, fields: dict, wanted: bytes, start: float, end: float) -> MarkerOut | None:
    try:
        if kind == "alert":
            alert = json.loads(fields.get(b"alert", b"{}"))
            if alert.get("camera_id", "").encode() != wanted:
                return None
            when = float(alert["created_at"])
            marker = MarkerOut(kind="alert", time=when, event_id=str(alert.get("event_id", "")),
                               label=str(alert.get("label", ""))[:200], alert_id=str(alert.get("alert_id", "")),
                               severity=str(alert.get("severity", "")) or None)
        else:
            if fields.get(b"camera_id") != wanted:
                return None
            when = float(fields[b"frame_time"])
            label = fields.get(b"plate_text", b"").decode()[:200] if kind == "plate" else ""
            marker = MarkerOut(kind=kind, time=when, event_id=fields[b"event_id"].decode(), label=label)
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None  # a record this version cannot read must not hide the others
    return marker if start <= when <= end else None


@router.get("/{camera_id}/timeline", response_model=TimelineOut,
            summary="Recorded ranges, gaps and event markers of one camera in a window (at most a day)",
            description="The camera's recording segments overlapping `[start, end]`, merged into ranges; a hole "
                        f"longer than {GAP_S} s between segments is a gap. Markers: plate reads and alerts of this "
                        "camera (operator), face events (investigator), found by a bounded scan of the event streams "
                        "by store time (`markers_capped` says when it stopped early).",
            responses={404: {"model": ErrorOut, "description": "Unknown camera (neither configured nor with "
                                                               "retained recordings), or not one of yours."},
                       422: {"description": "A time is malformed or out of range, `end` is not after `start`, or "
                                            "the window is longer than 25 hours."}})
def timeline(
    camera_id: str, request: Request, user: Operator, client: RedisDep, settings: SettingsDep, store: ApiStoreDep,
    start: Annotated[str, Query(max_length=40, description=f"Window start. {TIME_HELP}")],
    end: Annotated[str, Query(max_length=40, description=f"Window end. {TIME_HELP}")],
) -> TimelineOut:
    check_camera(request, client, user, camera_id)
    lo, hi = parse_instant(start, "start"), parse_instant(end, "end")
    if hi <= lo:
        raise field_error("end", f"must be after start ({hi:.3f} <= {lo:.3f})")
    if hi - lo > MAX_WINDOW_S:
        raise field_error("end", f"the window is {hi - lo:.0f} s; at most {MAX_WINDOW_S} s (25 h) at a time")
    segments = segments_between(client, camera_id, lo, hi, max_segment_s=MAX_SEGMENT_S)
    ranges = recorded_ranges(segments)
    clipped = [RangeOut(start=max(r.start, lo), end=min(r.end, hi)) for r in ranges]
    gaps = [RangeOut(start=g.start, end=g.end) for g in gaps_between(ranges)]
    markers, scanned, capped = _markers(client, camera_id, lo, hi, user, settings.camera_events_scan)
    store.audit(user.username, "playback_timeline", {"camera_id": camera_id, "start": lo, "end": hi},
                results=len(segments))
    return TimelineOut(camera_id=camera_id, start=lo, end=hi, ranges=clipped, gaps=gaps, gap_s=GAP_S,
                       segments=len(segments), recorded_s=round(sum(r.end - r.start for r in clipped), 3),
                       markers=markers, markers_scanned=scanned, markers_capped=capped)


# ---- stream --------------------------------------------------------------------------------------------------
def _running(request: Request) -> dict[str, int]:
    state = request.app.state
    if not hasattr(state, "playback_streams"):
        state.playback_streams = {"n": 0}
    return state.playback_streams


async def _remux(plan: PlaybackPlan) -> tuple[asyncio.subprocess.Process, bytes]:
    """Start ffmpeg on the plan and read its first bytes (the init segment); PlaybackError if it fails. ffmpeg is
    stopped if this is cancelled or fails (the player went away before the first bytes)."""
    proc = await asyncio.create_subprocess_exec(*ffmpeg_args(), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(concat_script(plan).encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.drain()
        proc.stdin.close()
        first = await proc.stdout.read(FIRST_CHUNK)
        if not first:
            err = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
            await proc.wait()
            raise PlaybackError(f"the recording of camera {plan.camera_id!r} could not be read: {err[-200:]}")
    except BaseException:
        _kill(proc)
        raise
    return proc, first


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Stop ffmpeg now if it still runs (the event loop reaps it)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Stop ffmpeg and wait (at most 10 s) for it to exit."""
    _kill(proc)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), 10)


async def _body(proc: asyncio.subprocess.Process, first: bytes, counter: dict[str, int]) -> AsyncIterator[bytes]:
    """The stream's bytes; ffmpeg is stopped when the player goes away (cancellation) or the stream ends."""
    assert proc.stdout is not None
    try:
        yield first
        while chunk := await proc.stdout.read(CHUNK):
            yield chunk
    finally:
        counter["n"] -= 1
        await _stop(proc)


async def _start_stream(client: redis.Redis, recordings_dir: Path, camera_id: str, instant: float,
                        max_s: float) -> tuple[PlaybackPlan, asyncio.subprocess.Process, bytes]:
    """Plan the playback and start its ffmpeg; the route's errors (404, 503) as HTTPException."""
    try:
        plan = await run_in_threadpool(plan_playback, client, recordings_dir, camera_id, instant, max_s)
    except PlaybackError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except SegmentUnavailable as exc:  # recorded on a worker host that is down: unavailable, not an error
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "30"}) from None
    try:
        proc, first = await _remux(plan)
    except PlaybackError as exc:
        logger.warning("playback of %s at %.3f failed: %s", camera_id, instant, exc)
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return plan, proc, first


@router.get("/{camera_id}/stream", summary="Play a recording from an instant: fragmented MP4 (stream copy)",
            description="Fragmented MP4 (`empty_moov`, a fragment per keyframe) remuxed by ffmpeg from the recorded "
                        "segments, nothing re-encoded: from the keyframe at or before `t` to the next gap or `max_s` "
                        "seconds later (whole segments), for a Media Source Extensions player (`fetch()` with the "
                        "`Authorization` header; no token in the URL). The `X-Playback-*` headers give the real time "
                        "of media time 0 (seek to `t - X-Playback-Start`), where the stream ends and where the next "
                        "recording starts. When `t` falls in a gap, the stream starts at the next recording if it "
                        "begins within `max_s`. Every stream is audited (who, camera, time range, session).",
            response_class=StreamingResponse,
            responses={200: {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The stream.",
                             "headers": {k: {"description": v, "schema": {"type": "string"}}
                                         for k, v in PLAYBACK_HEADERS.items()}},
                       404: {"model": ErrorOut, "description": "Unknown camera (neither configured nor with "
                                                               "retained recordings) or not one of yours; or no recording "
                                                               "at `t` nor within `max_s` after it (the detail says "
                                                               "when the next recording starts)."},
                       422: {"description": "`t` is malformed or out of range, or `max_s` is out of bounds."},
                       429: {"model": ErrorOut, "description": f"{MAX_STREAMS} playback streams are running; retry.",
                             "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                       503: {"model": ErrorOut, "description": "The recording at `t` is held by a worker host that "
                                                               "cannot be reached now (named in `detail`).",
                             "headers": {"Retry-After": {"schema": {"type": "integer"}}}}})
async def stream(
    camera_id: str, request: Request, user: Operator, client: RedisDep, settings: SettingsDep, store: ApiStoreDep,
    t: Annotated[str, Query(max_length=40, description=f"Play from this instant. {TIME_HELP}")],
    max_s: Annotated[float, Query(ge=1, le=MAX_STREAM_S, description="Longest stretch streamed (seconds).")] = 120,
    session: Annotated[str | None, Query(pattern=SESSION_ID, description="The player's session id (recorded in the "
                                                                          "audit trail to group its requests).")] = None,
):
    check_camera(request, client, user, camera_id)
    instant = parse_instant(t, "t")
    counter = _running(request)
    if counter["n"] >= MAX_STREAMS:
        return JSONResponse({"detail": f"{MAX_STREAMS} playback streams are running; retry in 5 s"},
                            status_code=429, headers={"Retry-After": "5"})
    counter["n"] += 1  # taken before any await: concurrent requests cannot all pass the check above
    try:
        plan, proc, first = await _start_stream(client, settings.recordings_dir, camera_id, instant, max_s)
    except BaseException:
        counter["n"] -= 1
        raise
    try:
        await run_in_threadpool(store.audit, user.username, "playback",
                                {"camera_id": camera_id, "t": instant, "from": plan.start, "to": plan.end,
                                 "session": session})
    except BaseException:  # no stream without its audit record; ffmpeg and the slot are given back
        counter["n"] -= 1
        _kill(proc)
        raise
    headers = {"X-Playback-Start": f"{plan.start:.3f}", "X-Playback-End": f"{plan.end:.3f}",
               "Cache-Control": "no-store", "X-Playback-Codec": plan.info.codec or "unknown"}
    if plan.next_start is not None:
        headers["X-Playback-Next"] = f"{plan.next_start:.3f}"
    if plan.info.frame_rate:
        headers["X-Playback-Frame-Rate"] = f"{plan.info.frame_rate:.3f}"
    return StreamingResponse(_body(proc, first, counter), media_type="video/mp4", headers=headers)
