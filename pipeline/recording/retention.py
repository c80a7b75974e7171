"""Recording retention: by age per camera (``recording.retention_days``), by the disk quota
(``ingest.recordings_quota_gb``, oldest segments first across cameras) and by the free space of the recordings
filesystem (``ingest.recordings_min_free_gb``: the disk as it really is, whatever fills it; oldest segments first
across cameras until that much is free again). The same loop keeps the event store's search indexes in step with
its streams once an hour (:func:`prune_events`).

Only indexed segments (and, for age, leftover date folders of cameras) are deleted; anything under
``<recordings>/exports`` (evidence) is never touched. Each index entry is removed with its file, after the file.
Segments, events, snapshots and crops under legal hold (attached to an open case, :mod:`pipeline.store.holds`) are
kept by every pass until the case is closed. The segment being written is never deleted: it is indexed only once
it is complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.recording.export import EXPORTS_DIRNAME
from pipeline.recording.index import Segment, bytes_held_by, indexed_bytes, oldest_segments, remove_segment
from pipeline.settings import get_settings
from pipeline.store import holds
from pipeline.store.connection import redis_client

logger = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    """What one retention pass deleted."""

    deleted_by_age: int = 0
    deleted_by_quota: int = 0
    bytes_freed: int = 0
    kept_on_hold: int = 0
    deleted_for_free_space: int = 0
    free_space_deleted: list[str] = field(default_factory=list)  # paths deleted for free space, oldest first


def _is_protected(recordings_dir: Path, path: Path) -> bool:
    exports = (recordings_dir / EXPORTS_DIRNAME).resolve()
    resolved = path.resolve()
    return resolved == exports or exports in resolved.parents


def segment_file(recordings_dir: Path, camera_id: str, segment: Segment) -> Path | None:
    """The file an index entry of ``camera_id`` names, or None unless it is a plain relative path inside
    ``<recordings>/<camera>/`` whose folders (symlinks followed) stay there: a tampered or corrupted entry
    (``..``, an absolute path, another camera's or the exports folder, a symlinked folder) names no segment."""
    parts = segment.path.split("/")
    if (len(parts) < 2 or parts[0] != camera_id or "\x00" in segment.path or "\\" in segment.path
            or any(part in ("", ".", "..") for part in parts)):
        return None
    root = (recordings_dir / camera_id).resolve()
    path = recordings_dir / segment.path
    if not Path(os.path.realpath(path.parent)).is_relative_to(root) or _is_protected(recordings_dir, path.parent):
        return None
    return path


def _delete(client: Any, recordings_dir: Path, camera_id: str, segment: Segment) -> int | None:
    """Delete a segment's file, then its index entry; the bytes freed. An entry naming no segment file of the
    camera (:func:`segment_file`) leaves every file alone: only the entry is dropped (else each pass would meet it
    again), and None is returned."""
    path = segment_file(recordings_dir, camera_id, segment)
    if path is None:
        logger.error("camera %s: index entry %r names no segment file of the camera; entry dropped, no file deleted",
                     camera_id, segment.path[:300])
        remove_segment(client, camera_id, segment)
        return None
    path.unlink(missing_ok=True)
    remove_segment(client, camera_id, segment)
    for folder in (path.parent, path.parent.parent):  # hour, then date folder, when empty
        try:
            folder.rmdir()
        except OSError:
            break
    return segment.size


def free_bytes_of(path: Path) -> int:
    """Bytes an unprivileged process may still write on the filesystem holding ``path``."""
    return shutil.disk_usage(path).free


def apply_retention(
    client: Any,
    config: Config,
    recordings_dir: Path,
    now: float | None = None,
    quota_bytes: int | None = None,
    host: str | None = None,
    min_free_bytes: int | None = None,
    free_bytes: Callable[[Path], int] = free_bytes_of,
) -> RetentionReport:
    """One retention pass: age limits per camera, then the quota, then the minimum free space of the recordings
    filesystem (``min_free_bytes``, default ``ingest.recordings_min_free_gb``, measured by ``free_bytes``), each
    deleting the oldest segments first across cameras.

    Only segments this host holds (``host``, default ``CCTV_HOST_NAME``; index entries without a host count as
    this host's) are deleted, and the quota is this host's disk: other hosts' segments are theirs to delete.

    Segments under legal hold (their camera's recording overlaps a window an open case holds,
    :mod:`pipeline.store.holds`) are never deleted, by age, by quota or for free space; when only held segments
    are left over the quota or the disk is still short of free space, the pass says so in the log and stops."""
    now = time.time() if now is None else now
    host = host or get_settings().host_name
    report = RetentionReport()
    held = holds.held(client)  # read once per pass; if Redis cannot say, nothing is deleted (the caller logs)
    for camera in config.cameras:
        cutoff = now - camera.recording.retention_days * 86400
        skip = 0
        while True:
            batch = [s for s in oldest_segments(client, camera.id, 200, before=cutoff, offset=skip)
                     if s.end <= cutoff]
            if not batch:
                break
            for segment in batch:
                if segment.host not in (None, host):  # on another host's disk: its retention deletes it
                    skip += 1
                    continue
                if held.segment(camera.id, segment.start, segment.end):
                    skip += 1
                    report.kept_on_hold += 1
                    continue
                freed = _delete(client, recordings_dir, camera.id, segment)
                if freed is not None:
                    report.bytes_freed += freed
                    report.deleted_by_age += 1
        if not held.camera_wholly(camera.id):
            _remove_old_date_folders(recordings_dir / camera.id, cutoff, recordings_dir, _held_dates(held, camera.id))
    quota = int(config.ingest.recordings_quota_gb * 1e9) if quota_bytes is None else quota_bytes
    total = bytes_held_by(client, host)
    while total > quota:
        candidates = [(seg, cam) for cam in indexed_bytes(client) if (seg := _oldest_unheld(client, cam, held, host))]
        if not candidates:
            logger.warning("retention: %.1f MB over the quota, but every remaining segment is under legal hold",
                           (total - quota) / 1e6)
            break
        segment, camera_id = min(candidates, key=lambda c: c[0].start)
        freed = _delete(client, recordings_dir, camera_id, segment)
        total -= segment.size  # the entry left the index either way
        if freed is not None:
            report.bytes_freed += freed
            report.deleted_by_quota += 1
    min_free = int(config.ingest.recordings_min_free_gb * 1e9) if min_free_bytes is None else min_free_bytes
    _keep_free_space(client, recordings_dir, held, host, min_free, free_bytes, report)
    if report.deleted_by_age or report.deleted_by_quota or report.deleted_for_free_space:
        logger.info(
            "retention: %d segments past their age, %d over quota, %d for free space, %.1f MB freed, "
            "%d kept under legal hold",
            report.deleted_by_age, report.deleted_by_quota, report.deleted_for_free_space, report.bytes_freed / 1e6,
            report.kept_on_hold,
        )  # fmt: skip
    return report


def _measure_free(recordings_dir: Path, free_bytes: Callable[[Path], int]) -> int | None:
    """Free bytes of the recordings filesystem, or None (logged) when it cannot be measured (no folder yet: nothing
    recorded to delete, quietly)."""
    if not recordings_dir.is_dir():
        return None
    try:
        return int(free_bytes(recordings_dir))
    except OSError as exc:
        logger.warning("retention: free space of the recordings folder not measured: %s", exc)
        return None


def _keep_free_space(client: Any, recordings_dir: Path, held: holds.Held, host: str, min_free: int,
                     free_bytes: Callable[[Path], int], report: RetentionReport) -> None:
    """Delete this host's oldest unheld segments (across cameras) while the recordings filesystem has less than
    ``min_free`` bytes free, measuring it again after each deletion; logs what it deleted and why."""
    if min_free <= 0 or (free := _measure_free(recordings_dir, free_bytes)) is None or free >= min_free:
        return
    logger.warning("retention: %.1f MB free on the recordings filesystem, below the minimum of %.1f MB "
                   "(ingest.recordings_min_free_gb): deleting the oldest segments not under legal hold",
                   free / 1e6, min_free / 1e6)  # fmt: skip
    start = len(report.free_space_deleted)
    while free < min_free:
        candidates = [(seg, cam) for cam in indexed_bytes(client) if (seg := _oldest_unheld(client, cam, held, host))]
        if not candidates:
            logger.warning("retention: still %.1f MB short of the minimum free space, but every remaining segment of "
                           "this host is under legal hold (or none is left)", (min_free - free) / 1e6)
            break
        segment, camera_id = min(candidates, key=lambda c: c[0].start)
        freed = _delete(client, recordings_dir, camera_id, segment)
        if freed is not None:
            report.bytes_freed += freed
            report.deleted_for_free_space += 1
            report.free_space_deleted.append(segment.path)
            logger.info("retention: deleted %s (%.1f MB, recorded %s) for free space", segment.path, freed / 1e6,
                        datetime.fromtimestamp(segment.start, UTC).isoformat(timespec="seconds"))
        if (measured := _measure_free(recordings_dir, free_bytes)) is None:
            break
        free = measured
    deleted = report.free_space_deleted[start:]
    if deleted:
        logger.warning("retention: %d segments deleted for free space (oldest %s, newest %s); %.1f MB free now",
                       len(deleted), deleted[0], deleted[-1], free / 1e6)


def _oldest_unheld(client: Any, camera_id: str, held: holds.Held, host: str, scan: int = 200) -> Segment | None:
    """The oldest segment of a camera on ``host`` that no case holds (looks at most ``scan`` segments at a time)."""
    offset = 0
    while True:
        batch = oldest_segments(client, camera_id, scan, offset=offset)
        if not batch:
            return None
        for segment in batch:
            if segment.host in (None, host) and not held.segment(camera_id, segment.start, segment.end):
                return segment
        offset += len(batch)


def _held_dates(held: holds.Held, camera_id: str) -> set[str]:
    """UTC date folder names (YYYY-MM-DD) a held window of this camera touches."""
    dates: set[str] = set()
    for cam, start, end in held.windows:
        if cam != camera_id:
            continue
        day = datetime.fromtimestamp(start, UTC).date()
        while day <= datetime.fromtimestamp(end, UTC).date():
            dates.add(day.isoformat())
            day += timedelta(days=1)
    return dates


def _remove_old_date_folders(camera_dir: Path, cutoff: float, recordings_dir: Path,
                             keep: set[str] | frozenset[str] = frozenset()) -> None:
    """Delete ``<camera>/<YYYY-MM-DD>`` folders entirely older than the cutoff (files no index knows about),
    except the dates in ``keep`` (they hold recording under legal hold)."""
    if not camera_dir.is_dir() or _is_protected(recordings_dir, camera_dir):
        return
    for folder in camera_dir.iterdir():
        if folder.name in keep:
            continue
        try:
            day = datetime.strptime(folder.name, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
        if day + 86400 <= cutoff and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


EVENT_PRUNE_INTERVAL_S = 3600.0


def prune_events(client: Any, config: Config, now: float | None = None) -> dict[str, int]:
    """Drop index entries of events (and alerts) the streams' caps trimmed, and every event older than
    ``engine.events_retention_days`` (when set). Returns the counts removed."""
    from pipeline.store.events import EventStore

    store = EventStore(client, config.engine.events_maxlen)
    stats = store.prune_trimmed()
    days = config.engine.events_retention_days
    if days:
        aged = store.prune_before((time.time() if now is None else now) - days * 86400.0)
        stats = {key: count + aged[key] for key, count in stats.items()}
    stats["alerts_unindexed"] = store.prune_trimmed_alerts()
    if any(stats.values()):
        logger.info("event retention: %s", stats)
    return stats


def run_retention_loop(config: Config, redis_url: str, recordings_dir: str | Path, stop_event: Any,
                       period_s: float = 60.0) -> None:  # fmt: skip
    """Process entry used by the supervisor: a retention pass every ``period_s`` until ``stop_event``."""
    import signal

    import redis

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = redis_client(redis_url, socket_timeout=10)
    next_event_prune = time.monotonic()
    while not stop_event.is_set():
        try:
            apply_retention(client, config, Path(recordings_dir))
            if time.monotonic() >= next_event_prune:
                prune_events(client, config)
                next_event_prune = time.monotonic() + EVENT_PRUNE_INTERVAL_S
        except (redis.RedisError, OSError) as exc:
            logger.warning("retention pass failed: %s", exc)
        stop_event.wait(period_s)
