"""Continuous recording by stream copy (no re-encoding), in short Matroska segments.

The capture session (:mod:`pipeline.ingest.capture`) adds :func:`segment_output_args` to its ffmpeg command, so
recording shares the RTSP connection with analysis decode when the camera has no sub-stream (one connection,
one demux). ffmpeg's segment muxer writes ``<recordings>/<camera>/.incoming/<camera>_<UTC time>.mkv`` and prints
``name,start,end`` (stream seconds) to a pipe when it closes a segment. :class:`SegmentFinalizer` turns that
into real UTC times, moves the file to ``<recordings>/<camera>/<YYYY-MM-DD>/<HH>/`` and indexes it in Redis.

Real times: ffmpeg reports a segment's end the moment the first packet of the next segment arrives, so
``anchor = arrival_time - end`` is the wall-clock time of stream time 0 plus a positive delay; the smallest
anchor seen in a session is the best estimate, and ``start = anchor + start_stream``. Matroska is used because
a segment cut short by a crash stays playable; :func:`recover_incoming` indexes such leftovers at the next start.

On a worker host the finalizer is given the capture's lease (:class:`~pipeline.ingest.framebus.LeaseFlag`): each
segment carries its fencing token and Redis refuses its index entry when another worker took the camera before the
segment ended (:func:`~pipeline.recording.index.add_segment`); such a segment's file is deleted (its time is the
new holder's footage).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.recording.index import (
    SEGMENT_SUFFIX,
    Segment,
    SegmentFencedError,
    add_segment,
    index_key,
    plain_segment_path,
)

logger = logging.getLogger(__name__)

CLUSTER_MS = 1000
"""Longest Matroska cluster (ms): what a hard kill of ffmpeg can lose of the segment it is writing."""

INCOMING = ".incoming"
UNINDEXED_JOURNAL = ".unindexed.jsonl"
PROBE_NAME = ".write-probe"
PROBE_BYTES = 256 * 1024
"""What :func:`probe_writable` writes: room for a moment of video, so a disk that is just full fails the probe."""

# ffmpeg's stderr lines about the segment (recording) output: its own messages and the write errors that end it
_SEGMENT_LINE = re.compile(r"\[segment @|av_interleaved_write_frame\(\)|Error writing trailer of|/\.incoming/")
_WRITE_ERRORS = (
    ("No space left on device", "disk full"),
    ("Disk quota exceeded", "disk quota exceeded"),
    ("File too large", "file size limit reached"),
    ("Read-only file system", "read-only file system"),
    ("Permission denied", "permission denied"),
    ("Not a directory", "recordings folder gone"),
    ("No such file or directory", "recordings folder gone"),
    ("Input/output error", "disk I/O error"),
)
_ERRNO_LABELS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file size limit reached",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "permission denied", errno.ENOTDIR: "recordings folder gone",
                 errno.ENOENT: "recordings folder gone", errno.EIO: "disk I/O error"}  # fmt: skip


def incoming_dir(recordings_dir: Path, camera_id: str) -> Path:
    """Folder where ffmpeg writes the segments of a camera before they are final."""
    return recordings_dir / camera_id / INCOMING


def segment_output_args(recordings_dir: Path, camera_id: str, segment_seconds: int, list_fd: int) -> list[str]:
    """ffmpeg output options recording the first video stream by stream copy into segments."""
    folder = incoming_dir(recordings_dir, camera_id)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_time", str(segment_seconds),
        "-segment_format", "matroska", "-reset_timestamps", "1", "-strftime", "1",
        # a cluster at least every second, written through at once: a hard kill (SIGKILL, power cut) of ffmpeg
        # loses at most the last second of the segment being written, not the whole segment still in buffers
        "-segment_format_options", f"cluster_time_limit={CLUSTER_MS}:flush_packets=1",
        "-segment_list", f"pipe:{list_fd}", "-segment_list_type", "csv",
        str(folder / f"{camera_id}_%Y%m%dT%H%M%SZ{SEGMENT_SUFFIX}"),
    ]  # fmt: skip


def recording_write_error(line: str) -> str | None:
    """The reason a recording failed when ``line`` (ffmpeg stderr) reports a failing segment write, else ``None``.

    Only lines about the segment output count (a broken analysis pipe is no recording failure); the reason names the
    cause (``disk full (No space left on device)``), never a path.
    """
    if not _SEGMENT_LINE.search(line):
        return None
    for text, label in _WRITE_ERRORS:
        if text in line:
            return f"{label} ({text})"
    if "Failed to open segment" in line:
        return "cannot create a segment file"
    return None


def os_error_reason(exc: OSError) -> str:
    """A path-free reason for a failed file operation (``disk full (No space left on device)``)."""
    text = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    label = _ERRNO_LABELS.get(exc.errno or 0)
    return f"{label} ({text})" if label else text


def probe_writable(folder: Path, size: int = PROBE_BYTES) -> str | None:
    """Whether a segment could be written in ``folder`` now: ``None`` if ``size`` bytes could be written (and synced)
    there, else the reason (:func:`os_error_reason`). The probe file is removed either way."""
    probe = folder / PROBE_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as out:
            out.write(b"\0" * size)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        return os_error_reason(exc)
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError as exc:
            logger.debug("cannot remove %s: %s", PROBE_NAME, exc)
    return None


def final_path(recordings_dir: Path, camera_id: str, start: float) -> Path:
    """Where a segment starting at ``start`` lives: ``<camera>/<UTC date>/<hour>/<camera>_<time>Z.mkv``."""
    when = datetime.fromtimestamp(start, UTC)
    name = f"{camera_id}_{when:%Y%m%dT%H%M%S}.{when.microsecond // 1000:03d}Z{SEGMENT_SUFFIX}"
    return recordings_dir / camera_id / f"{when:%Y-%m-%d}" / f"{when:%H}" / name


class SegmentFinalizer:
    """Moves finished segments into place and indexes them; keeps them pending while Redis is unreachable."""

    def __init__(self, client: Any, recordings_dir: Path, camera_id: str, host: str | None = None,
                 lease: Any = None) -> None:  # fmt: skip
        from pipeline.settings import get_settings

        self.client = client
        self.host = host or get_settings().host_name  # recorded in the index: the host holding the files
        self.recordings_dir = recordings_dir
        self.camera_id = camera_id
        self.lease = lease  # a LeaseFlag (its .token fences the index writes), or None: no lease (single host)
        self.fenced = 0  # segments whose index entry Redis refused (lease superseded)
        self.anchor: float | None = None
        self.pending: list[Segment] = []
        self._recovered: set[str] = set()  # pending members from the journal: indexed only if not indexed yet
        self.last_end: float | None = None
        self.count = 0
        self._lock = threading.Lock()  # the capture thread and the worker's health thread both flush

    def new_session(self) -> None:
        """A new ffmpeg process started: its stream time starts again at 0."""
        self.anchor = None

    def on_list_line(self, line: str, arrival: float | None = None) -> Segment | None:
        """Handle one ``name,start,end`` line of the segment list; return the indexed segment."""
        arrival = time.time() if arrival is None else arrival
        try:
            name, start_s, end_s = line.strip().rsplit(",", 2)
            start_stream, end_stream = float(start_s), float(end_s)
        except ValueError:
            logger.warning("camera %s: unexpected segment list line %r", self.camera_id, line[:200])
            return None
        estimate = arrival - end_stream
        self.anchor = estimate if self.anchor is None else min(self.anchor, estimate)
        source = incoming_dir(self.recordings_dir, self.camera_id) / Path(name).name
        return self._finalize(source, self.anchor + start_stream, self.anchor + end_stream)

    def _finalize(self, source: Path, start: float, end: float) -> Segment | None:
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            logger.warning("camera %s: segment %s vanished before indexing", self.camera_id, source.name)
            return None
        if size == 0 or end - start <= 0:
            source.unlink(missing_ok=True)
            return None
        target = final_path(self.recordings_dir, self.camera_id, start)
        target.parent.mkdir(parents=True, exist_ok=True)
        token = int(self.lease.token) if self.lease is not None and self.lease.token else None
        # the end is rounded up to the millisecond, never down: it is the capture time of the segment's fenced index
        # write, and a segment ending a fraction of a millisecond after a hand-over must not pass for an earlier one
        end = round(math.ceil(round(end * 1000, 6)) / 1000, 3)
        segment = Segment(str(target.relative_to(self.recordings_dir)), round(start, 3), end, size,
                          host=self.host, token=token)
        with self._lock:
            self._journal(segment)  # before the move: a crash before the index is written cannot orphan the file
            os.replace(source, target)
            self.pending.append(segment)
        self.flush()
        self.last_end = end
        self.count += 1
        return segment

    def flush(self) -> None:
        """Index pending segments (retried later if Redis is down); safe to call from several threads."""
        with self._lock:
            while self.pending:
                segment = self.pending[0]
                try:
                    if segment.member() not in self._recovered or \
                            self.client.zscore(index_key(self.camera_id), segment.member()) is None:
                        add_segment(self.client, self.camera_id, segment)
                except SegmentFencedError as exc:
                    self._drop_fenced(segment, exc)
                except Exception as exc:  # noqa: BLE001 - Redis down: keep the segment pending, never lose it
                    logger.warning("camera %s: cannot index segment yet (%s); will retry", self.camera_id, exc)
                    return
                self.pending.pop(0)
                self._recovered.discard(segment.member())
            self._clear_journal()

    def _drop_fenced(self, segment: Segment, exc: Exception) -> None:
        """Redis refused the segment (another worker took the camera before it ended): its file goes."""
        self.fenced += 1
        logger.warning("camera %s: segment %s (%.3f-%.3f) not indexed, the lease was handed over before it ended "
                       "(%s); file removed", self.camera_id, segment.path, segment.start, segment.end, exc)  # fmt: skip
        try:
            (self.recordings_dir / segment.path).unlink(missing_ok=True)
        except OSError as err:
            logger.warning("camera %s: cannot remove the refused segment: %s", self.camera_id, os_error_reason(err))

    @property
    def journal_path(self) -> Path:
        """``<camera>/.unindexed.jsonl``: segments moved into place whose index entry may not be written yet (the
        pending list lives in memory; this file outlives a crash of the worker, Redis down or not)."""
        return self.recordings_dir / self.camera_id / UNINDEXED_JOURNAL

    def _journal(self, segment: Segment) -> None:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        with self.journal_path.open("a", encoding="utf-8") as out:
            out.write(segment.member() + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _clear_journal(self) -> None:
        try:
            if self.journal_path.stat().st_size:
                os.truncate(self.journal_path, 0)
        except FileNotFoundError:
            pass

    def recover_unindexed(self) -> int:
        """Queue for indexing the segments a previous life of this camera's recorder moved into place but may not
        have indexed when it stopped (crashed, or killed while Redis was down), read from :attr:`journal_path`;
        entries whose file is gone are dropped, those already indexed are not indexed twice (checked when
        flushed). Returns how many were queued."""
        try:
            lines = self.journal_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return 0
        found: list[Segment] = []
        for line in lines:
            try:
                segment = Segment.from_member(line)
            except (ValueError, KeyError, TypeError):
                logger.warning("camera %s: unreadable line in %s skipped", self.camera_id, UNINDEXED_JOURNAL)
                continue
            if plain_segment_path(segment.path) and segment.path.startswith(f"{self.camera_id}/") \
                    and (self.recordings_dir / segment.path).is_file():
                found.append(segment)
        with self._lock:
            known = {s.member() for s in self.pending}
            found = [s for s in dict.fromkeys(found) if s.member() not in known]
            self.pending[:0] = found
            self._recovered.update(s.member() for s in found)
        if found:
            logger.info("camera %s: %d segment(s) of the last run checked against the index", self.camera_id,
                        len(found))
        self.flush()
        return len(found)

    def recover_incoming(self) -> int:
        """Index segments left in ``.incoming`` by a crashed ffmpeg (end = file mtime, length from ffprobe)."""
        folder = incoming_dir(self.recordings_dir, self.camera_id)
        recovered = 0
        for path in sorted(folder.glob(f"*{SEGMENT_SUFFIX}")):
            duration = probe_duration(path)
            if duration is None or duration <= 0:
                logger.warning("camera %s: unreadable leftover segment %s removed", self.camera_id, path.name)
                path.unlink(missing_ok=True)
                continue
            end = path.stat().st_mtime
            if self._finalize(path, end - duration, end) is not None:
                recovered += 1
        return recovered


def probe_duration(path: Path) -> float | None:
    """Duration of a media file in seconds via ffprobe (None if unreadable).

    A Matroska segment cut short by a killed ffmpeg has no duration in its header; its length is then the time of
    its last video packet.
    """
    cmd = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        return float(json.loads(result.stdout)["format"]["duration"])
    except (subprocess.TimeoutExpired, KeyError, ValueError, json.JSONDecodeError):
        pass
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,duration_time",
           "-of", "csv=p=0", str(path)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return None
    last = 0.0
    for line in result.stdout.splitlines():
        pts, _, duration = line.partition(",")
        try:
            last = max(last, float(pts) + (float(duration) if duration.strip() not in ("", "N/A") else 0.0))
        except ValueError:
            continue
    return last or None
