"""Detection schedule: the stage after motion gating that decides whether a moving frame still needs the detector.

Motion gating (:mod:`pipeline.engine.gating`) wakes the detector whenever enough pixels change, so a camera
watching a queue of cars runs the detector on every frame although every car's plate is already read. With the
``adaptive`` schedule a camera's moving frame skips the detector (its tracks are carried forward by the Kalman
tracker, as on static frames) when all of these hold:

- the camera already has tracks, and every one of them is *settled* (a vehicle whose voted plate can no longer
  change, see :meth:`pipeline.engine.aggregate.Aggregator.plate_settled`); a camera that also looks for faces is
  never skipped while it tracks a person or a face;
- the motion lies inside the tracks' predicted boxes (grown by :data:`TRACK_MARGIN`): changed pixels outside them
  above ``motion_threshold`` are something new, and a new object is always detected at once;
- the detector ran on the camera less than ``settled_detect_interval_s`` ago (tracks are still refreshed, so a
  car that leaves ends its track and one hidden behind it is found).

An empty scene with new motion is therefore always detected, and an unresolved track is detected on every frame
as before; only settled scenes are thinned. ``every_frame`` keeps the old behaviour (every gated frame detected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.engine.tracking import Tracker

TRACK_MARGIN = 0.25  # predicted boxes grow by this share of their size on each side before masking motion
SCHEDULES = ("every_frame", "adaptive")


@dataclass
class ScheduleDecision:
    """Outcome of scheduling one moving frame."""

    run_detector: bool
    reason: str  # "every_frame", "no_tracks", "unsettled", "faces", "new_motion", "interval" or "settled"


class DetectionSchedule:
    """Per-camera detector schedule (see the module docstring)."""

    def __init__(self, mode: str, settled_interval_s: float, motion_threshold: float) -> None:
        if mode not in SCHEDULES:
            raise ValueError(f"unknown detection schedule {mode!r}; expected one of {SCHEDULES}")
        self.mode = mode
        self.settled_interval_s = settled_interval_s
        self.motion_threshold = motion_threshold
        self._last_detect: dict[str, float] = {}

    def decide(self, camera_id: str, t: float, changed: np.ndarray | None, frame_hw: tuple[int, int],
               vehicle_trackers: tuple[Tracker, ...], face_trackers: tuple[Tracker, ...],
               settled: Callable[[int], bool]) -> ScheduleDecision:
        """Whether the moving frame of ``camera_id`` at ``t`` needs the detector.

        ``changed`` is the gate's changed-pixel mask (thumbnail size), ``vehicle_trackers`` the trackers whose
        tracks carry plate votes (``settled(track_id)`` says whether one is settled), ``face_trackers`` those of
        persons and faces (any live track there keeps the detector running)."""
        decision = self._decide(camera_id, t, changed, frame_hw, vehicle_trackers, face_trackers, settled)
        if decision.run_detector:
            self._last_detect[camera_id] = t
        return decision

    def _decide(self, camera_id: str, t: float, changed: np.ndarray | None, frame_hw: tuple[int, int],
                vehicle_trackers: tuple[Tracker, ...], face_trackers: tuple[Tracker, ...],
                settled: Callable[[int], bool]) -> ScheduleDecision:
        if self.mode == "every_frame":
            return ScheduleDecision(True, "every_frame")
        if any(tr.tracks for tr in face_trackers):
            return ScheduleDecision(True, "faces")
        track_ids = [tid for tr in vehicle_trackers for tid in tr.tracks]
        if not track_ids:
            return ScheduleDecision(True, "no_tracks")
        if not all(settled(tid) for tid in track_ids):
            return ScheduleDecision(True, "unsettled")
        last = self._last_detect.get(camera_id)
        if last is None or t - last >= self.settled_interval_s:
            return ScheduleDecision(True, "interval")
        boxes = np.concatenate([tr.predicted_boxes(t) for tr in vehicle_trackers])
        if changed is not None and motion_outside(changed, boxes, frame_hw) > self.motion_threshold:
            return ScheduleDecision(True, "new_motion")
        return ScheduleDecision(False, "settled")

    def forget(self, camera_id: str) -> None:
        """Drop a camera's schedule state (camera removed)."""
        self._last_detect.pop(camera_id, None)


def motion_outside(changed: np.ndarray, boxes: np.ndarray, frame_hw: tuple[int, int]) -> float:
    """Share of the thumbnail's pixels that changed outside ``boxes`` (frame xyxy, grown by :data:`TRACK_MARGIN`)."""
    mask = changed.copy()
    th, tw = mask.shape[:2]
    sy, sx = th / max(frame_hw[0], 1), tw / max(frame_hw[1], 1)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        mx, my = (x2 - x1) * TRACK_MARGIN, (y2 - y1) * TRACK_MARGIN
        c0, c1 = int(np.floor(max(x1 - mx, 0) * sx)), int(np.ceil(min(x2 + mx, frame_hw[1]) * sx))
        r0, r1 = int(np.floor(max(y1 - my, 0) * sy)), int(np.ceil(min(y2 + my, frame_hw[0]) * sy))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = False
    return float(np.count_nonzero(mask)) / max(mask.size, 1)
