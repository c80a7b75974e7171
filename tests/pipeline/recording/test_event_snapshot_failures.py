"""Event snapshots (plate/face JPEGs) that cannot be written are counted per camera for the health, with the cause
and the camera's own relative path only. Real files, real OpenCV encoding."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipeline.engine.snapshots import SnapshotWriter


def test_failed_event_snapshot_writes_are_counted_without_absolute_paths(tmp_path: Path) -> None:
    """A camera whose snapshot folder is a file fails every write; another camera is unaffected."""
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "cam1").write_text("not a folder")
    writer = SnapshotWriter(tmp_path)
    image = np.full((48, 64, 3), 128, np.uint8)
    now = time.time()
    assert writer.save("cam1", now, "ev1", "frame", image) is None
    assert writer.save("cam1", now, "ev2", "plate", image) is None
    assert writer.save("cam2", now, "ev3", "frame", image) is not None
    failed = writer.health("cam1")
    assert failed["event_snapshot_errors"] == 2
    assert failed["event_snapshot_error"].startswith("cannot write snapshots/cam1/"), failed
    assert "ev2_plate.jpg" in failed["event_snapshot_error"] and str(tmp_path) not in failed["event_snapshot_error"]
    assert float(failed["event_snapshot_error_time"]) >= now - 1
    assert writer.health("cam2")["event_snapshot_errors"] == 0
