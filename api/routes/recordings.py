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
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import redis
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

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
"""Playback streams (ffmpeg remuxers) running at once in this API process; more are refused with 429 (and more
than ``CCTV_PLAYBACK_STREAMS_PER_USER`` of one user)."""
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
            when = float(alert.get("frame_time") or alert["created_at"])  # the event's frame; older: raised
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
class PlaybackSlots:
    """Playback streams running in this API process, in all and per user (the 429 limits)."""

    def __init__(self) -> None:
        self.total = 0
        self.per_user: dict[str, int] = {}

    def acquire(self, username: str, per_user: int, total: int) -> str | None:
        """Take a slot for ``username``; None when taken, else why not (the 429's detail). Synchronous: concurrent
        requests cannot all pass the check."""
        if self.total >= total:
            return f"{total} playback streams are running; retry in 5 s"
        if self.per_user.get(username, 0) >= per_user:
            return (f"you already have {per_user} playback streams running (CCTV_PLAYBACK_STREAMS_PER_USER); "
                    "close a player or retry in 5 s")
        self.total += 1
        self.per_user[username] = self.per_user.get(username, 0) + 1
        return None

    def release(self, username: str) -> None:
        """Give back one slot of ``username``."""
        self.total = max(0, self.total - 1)
        left = self.per_user.get(username, 0) - 1
        if left > 0:
            self.per_user[username] = left
        else:
            self.per_user.pop(username, None)


def _slots(app: object) -> PlaybackSlots:
    """The app's playback slots (made on first use)."""
    state = app.state  # type: ignore[attr-defined]
    if not isinstance(getattr(state, "playback_streams", None), PlaybackSlots):
        state.playback_streams = PlaybackSlots()
    return state.playback_streams


class PlaybackLease:
    """One stream's slot and its ffmpeg: given back once, by whichever path ends the stream first (the response
    finishing, failing or cancelled before its first byte, a stalled reader, a failed start or audit, or the
    response being dropped unsent)."""

    def __init__(self, slots: PlaybackSlots, username: str) -> None:
        self.slots = slots
        self.username = username
        self.proc: asyncio.subprocess.Process | None = None
        self.released = False

    def release(self) -> None:
        """Stop ffmpeg and give the slot back; idempotent. The process's pipes are drained and it is waited for in
        the background (their transport stays open until its output is read to the end)."""
        if self.released:
            return
        self.released = True
        self.slots.release(self.username)
        if self.proc is not None:
            _kill(self.proc)
            with contextlib.suppress(RuntimeError):  # no running loop (a dropped response collected late)
                task = asyncio.get_running_loop().create_task(_reap(self.proc))
                _REAPING.add(task)
                task.add_done_callback(_REAPING.discard)


class PlaybackStalled(Exception):
    """The player read nothing for the stall limit: the stream is ended to give its slot back."""


class PlaybackResponse(StreamingResponse):
    """The stream's response: owns its :class:`PlaybackLease` and releases it however the response ends, also when
    Starlette cancels it before the body is first iterated (the client went away early), which a ``finally`` in
    the body generator never sees. A send that cannot complete within ``stall_s`` (the client stopped reading)
    ends the stream."""

    def __init__(self, lease: PlaybackLease, first: bytes, stall_s: float, headers: dict[str, str]) -> None:
        assert lease.proc is not None
        super().__init__(_body(lease.proc, first), media_type="video/mp4", headers=headers)
        self.lease = lease
        self.stall_s = stall_s
        weakref.finalize(self, lease.release)  # a response dropped without being sent still gives back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, self._guarded(send))
        except PlaybackStalled:
            logger.warning("playback stream of %s for %s ended: the player read nothing for %.1f s",
                           scope.get("path", "?"), self.lease.username, self.stall_s)
        finally:
            self.lease.release()

    def _guarded(self, send: Send) -> Send:
        """``send`` bounded by the stall limit."""
        async def guarded(message: Message) -> None:
            try:
                async with asyncio.timeout(self.stall_s):
                    await send(message)
            except TimeoutError:
                raise PlaybackStalled from None
        return guarded


async def _remux(plan: PlaybackPlan, lease: PlaybackLease) -> bytes:
    """Start ffmpeg on the plan (owned by ``lease`` from its start) and read its first bytes (the init segment);
    PlaybackError if it fails. ffmpeg is stopped if this is cancelled or fails."""
    proc = await asyncio.create_subprocess_exec(*ffmpeg_args(), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lease.proc = proc
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
    return first


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Stop ffmpeg now if it still runs (the event loop reaps it)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


_REAPING: set[asyncio.Task] = set()
"""Background waits for stopped ffmpeg processes (held here so that they are not collected while they run)."""


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Read a stopped ffmpeg's pipes to their end and wait for it (at most 10 s), so nothing of it is left open."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    while await pipe.read(CHUNK):
                        pass
            await proc.wait()


async def _body(proc: asyncio.subprocess.Process, first: bytes) -> AsyncIterator[bytes]:
    """The stream's bytes (ffmpeg and the slot are given back by the :class:`PlaybackResponse`)."""
    assert proc.stdout is not None
    try:
        yield first
        while chunk := await proc.stdout.read(CHUNK):
            yield chunk
    finally:
        _kill(proc)


async def _start_stream(client: redis.Redis, recordings_dir: Path, camera_id: str, instant: float, max_s: float,
                        lease: PlaybackLease) -> tuple[PlaybackPlan, bytes]:
    """Plan the playback and start its ffmpeg (owned by ``lease``); the route's errors (404, 503) as
    HTTPException."""
    try:
        plan = await run_in_threadpool(plan_playback, client, recordings_dir, camera_id, instant, max_s)
    except PlaybackError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except SegmentUnavailable as exc:  # recorded on a worker host that is down: unavailable, not an error
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "30"}) from None
    try:
        first = await _remux(plan, lease)
    except PlaybackError as exc:
        logger.warning("playback of %s at %.3f failed: %s", camera_id, instant, exc)
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return plan, first


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
                       429: {"model": ErrorOut, "description": f"{MAX_STREAMS} playback streams are running, or "
                                                               "the caller already runs "
                                                               "CCTV_PLAYBACK_STREAMS_PER_USER; retry.",
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
    slots = _slots(request.app)
    refused = slots.acquire(user.username, settings.playback_streams_per_user, MAX_STREAMS)
    if refused is not None:
        return JSONResponse({"detail": refused}, status_code=429, headers={"Retry-After": "5"})
    lease = PlaybackLease(slots, user.username)  # taken before any await; given back on every path below
    try:
        plan, first = await _start_stream(client, settings.recordings_dir, camera_id, instant, max_s, lease)
        # no stream without its audit record
        await run_in_threadpool(store.audit, user.username, "playback",
                                {"camera_id": camera_id, "t": instant, "from": plan.start, "to": plan.end,
                                 "session": session})
    except BaseException:
        lease.release()
        raise
    headers = {"X-Playback-Start": f"{plan.start:.3f}", "X-Playback-End": f"{plan.end:.3f}",
               "Cache-Control": "no-store", "X-Playback-Codec": plan.info.codec or "unknown"}
    if plan.next_start is not None:
        headers["X-Playback-Next"] = f"{plan.next_start:.3f}"
    if plan.info.frame_rate:
        headers["X-Playback-Frame-Rate"] = f"{plan.info.frame_rate:.3f}"
    return PlaybackResponse(lease, first, settings.playback_stall_s, headers)
