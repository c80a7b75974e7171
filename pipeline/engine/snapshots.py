"""Snapshot and crop JPEG files of events, with their own retention.

Layout: ``<recordings_dir>/snapshots/<camera_id>/<UTC date YYYY-MM-DD>/<event_id>_<kind>.jpg``; events store the
path relative to ``recordings_dir``. An updated event (better read) overwrites its files atomically, so paths stay
stable across versions. :func:`cleanup_snapshots` deletes date folders older than the retention.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from pipeline.store.holds import Held

logger = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SnapshotWriter:
    """Writes event JPEGs under ``recordings_dir/snapshots``; counts failed writes per camera (:meth:`health`)."""

    def __init__(self, recordings_dir: str | Path, jpeg_quality: int = 90) -> None:
        self.recordings_dir = Path(recordings_dir)
        self.jpeg_quality = jpeg_quality
        self.failures: dict[str, int] = {}
        self.last_error: dict[str, tuple[str, float]] = {}  # camera id -> (message without absolute path, time)

    @property
    def total_failures(self) -> int:
        """Failed writes over every camera since start."""
        return sum(self.failures.values())

    def health(self, camera_id: str) -> dict[str, object]:
        """Health fields of a camera's event snapshots: ``event_snapshot_errors`` (failed writes),
        ``event_snapshot_error`` (the last: relative path and cause) and ``event_snapshot_error_time``."""
        message, when = self.last_error.get(camera_id, ("", 0.0))
        return {"event_snapshot_errors": self.failures.get(camera_id, 0), "event_snapshot_error": message,
                "event_snapshot_error_time": f"{when:.3f}"}  # fmt: skip

    def _failed(self, camera_id: str, message: str) -> None:
        self.failures[camera_id] = self.failures.get(camera_id, 0) + 1
        self.last_error[camera_id] = (message[:300], time.time())

    def save(self, camera_id: str, capture_time: float, event_id: str, kind: str, image: np.ndarray) -> str | None:
        """Encode ``image`` (BGR) as JPEG; return its path relative to the recordings dir, or None on failure."""
        if image is None or image.size == 0:
            return None
        date = datetime.fromtimestamp(capture_time, tz=UTC).strftime("%Y-%m-%d")
        relative = Path(SNAPSHOT_DIR) / _SAFE.sub("_", camera_id) / date / f"{_SAFE.sub('_', event_id)}_{kind}.jpg"
        target = self.recordings_dir / relative
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            logger.error("could not encode %s snapshot of event %s", kind, event_id)
            self._failed(camera_id, f"could not encode the {kind} snapshot of event {event_id}")
            return None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".jpg.tmp")
            tmp.write_bytes(encoded.tobytes())
            os.replace(tmp, target)
        except OSError as exc:
            logger.error("could not write snapshot %s: %s", target, exc)
            cause = os.strerror(exc.errno) if exc.errno else type(exc).__name__
            self._failed(camera_id, f"cannot write {relative.as_posix()}: {cause}")
            return None
        return relative.as_posix()


def cleanup_snapshots(recordings_dir: str | Path, retention_days: int, now: float | None = None,
                      held: Held | None = None) -> int:
    """Delete snapshot date folders older than ``retention_days`` (by their UTC date); return folders removed.

    Files under legal hold (``held``, :mod:`pipeline.store.holds`) stay: a folder holding one loses only its other
    files."""
    root = Path(recordings_dir) / SNAPSHOT_DIR
    if not root.is_dir():
        return 0
    today = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC).date()
    oldest_kept = today - timedelta(days=retention_days)
    held_dirs = held.dirs() if held is not None else frozenset()
    removed = kept = 0
    for camera_dir in root.iterdir():
        if not camera_dir.is_dir():
            continue
        for date_dir in camera_dir.iterdir():
            if not (date_dir.is_dir() and _DATE_DIR.match(date_dir.name)):
                continue
            try:
                day = datetime.strptime(date_dir.name, "%Y-%m-%d").date()
            except ValueError:
                continue
            if day >= oldest_kept:
                continue
            relative = date_dir.relative_to(recordings_dir).as_posix()
            if held is not None and relative in held_dirs:
                for path in date_dir.rglob("*"):
                    if path.is_file() and not held.path(path.relative_to(recordings_dir).as_posix()):
                        path.unlink(missing_ok=True)
                    elif path.is_file():
                        kept += 1
                continue
            shutil.rmtree(date_dir, ignore_errors=True)
            removed += 1
        if not any(camera_dir.iterdir()):
            camera_dir.rmdir()
    if removed or kept:
        logger.info("snapshot retention: removed %d day folders older than %s, kept %d files under legal hold",
                    removed, oldest_kept, kept)
    return removed
