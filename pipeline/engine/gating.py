"""Motion gating: a cheap per-camera frame-difference check that decides whether a frame needs the detector.

Each frame is reduced to a small blurred grey image (about 0.1 ms); the fraction of pixels that changed by more
than ``pixel_delta`` grey levels against the last *analysed* frame is compared with ``motion_threshold``. Comparing
against the last analysed frame (not the previous frame) means slow changes still accumulate and wake the
detector. The detector also runs at least every ``keepalive_s`` seconds per camera, and always on a camera's first
frame, so tracks of objects that stopped moving are refreshed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GATE_WIDTH = 96


@dataclass
class GateDecision:
    """Outcome of gating one frame."""

    run_detector: bool
    changed_fraction: float
    reason: str  # "first", "motion", "keepalive" or "static"
    changed: np.ndarray | None = None  # the changed pixels of the gate thumbnail (motion decisions only)


class MotionGate:
    """Frame-difference gate of one camera."""

    def __init__(self, motion_threshold: float, keepalive_s: float, pixel_delta: int = 18) -> None:
        self.motion_threshold = motion_threshold
        self.keepalive_s = keepalive_s
        self.pixel_delta = pixel_delta
        self._reference: np.ndarray | None = None
        self._last_run: float | None = None

    @staticmethod
    def thumbnail(frame: np.ndarray) -> np.ndarray:
        """Downscaled, blurred grey version of a BGR (or grey) frame used for differencing."""
        height, width = frame.shape[:2]
        size = (GATE_WIDTH, max(1, round(height * GATE_WIDTH / max(width, 1))))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(small, (3, 3), 0)

    def check(self, frame: np.ndarray, capture_time: float) -> GateDecision:
        """Decide whether ``frame`` (captured at ``capture_time``) goes to the detector."""
        thumb = self.thumbnail(frame)
        if self._reference is None or self._reference.shape != thumb.shape or self._last_run is None:
            return self._accept(thumb, capture_time, 1.0, "first")
        diff = cv2.absdiff(thumb, self._reference)
        mask = diff > self.pixel_delta
        changed = float(np.count_nonzero(mask)) / diff.size
        if changed > self.motion_threshold:
            decision = self._accept(thumb, capture_time, changed, "motion")
            decision.changed = mask
            return decision
        if capture_time - self._last_run >= self.keepalive_s:
            return self._accept(thumb, capture_time, changed, "keepalive")
        return GateDecision(False, changed, "static")

    def _accept(self, thumb: np.ndarray, capture_time: float, changed: float, reason: str) -> GateDecision:
        self._reference = thumb
        self._last_run = capture_time
        return GateDecision(True, changed, reason)


class GateBank:
    """One :class:`MotionGate` per camera, created on first use."""

    def __init__(self, motion_threshold: float, keepalive_s: float) -> None:
        self.motion_threshold = motion_threshold
        self.keepalive_s = keepalive_s
        self._gates: dict[str, MotionGate] = {}

    def check(self, camera_id: str, frame: np.ndarray, capture_time: float) -> GateDecision:
        """Gate one frame of ``camera_id``."""
        gate = self._gates.get(camera_id)
        if gate is None:
            gate = self._gates[camera_id] = MotionGate(self.motion_threshold, self.keepalive_s)
        return gate.check(frame, capture_time)
