"""Zones: normalised polygons from cameras.yaml that restrict where analytics apply.

A detection is kept when the bottom-centre of its box (where a vehicle or person touches the ground) lies inside
at least one zone. A camera without zones keeps everything.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import Zone
from pipeline.detections import Detections


class ZoneFilter:
    """Point-in-polygon filter for one camera."""

    def __init__(self, zones: list[Zone]) -> None:
        self.names = [z.name for z in zones]
        self._paths = [np.asarray(z.points, dtype=np.float64) for z in zones]

    @property
    def active(self) -> bool:
        """Whether the camera has zones at all."""
        return bool(self._paths)

    def inside(self, points_xy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Boolean mask: which pixel points ``(N, 2)`` lie inside any zone of a ``width`` x ``height`` frame."""
        points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if not self._paths:
            return np.ones(len(points), dtype=bool)
        norm = points / np.array([max(width, 1), max(height, 1)], dtype=np.float64)
        mask = np.zeros(len(points), dtype=bool)
        for polygon in self._paths:
            mask |= points_in_polygon(norm, polygon)
        return mask

    def keeps(self, detections: Detections, width: int, height: int) -> np.ndarray:
        """Boolean mask: which detections' box bottom-centre lies inside a zone (all of them without zones)."""
        if not self._paths or not len(detections):
            return np.ones(len(detections), dtype=bool)
        xyxy = detections.xyxy
        bottom_centre = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)
        # boxes touching the bottom edge land exactly on it: nudge inward so full-frame zones keep them
        bottom_centre[:, 1] = np.minimum(bottom_centre[:, 1], height - 0.5)
        return self.inside(bottom_centre, width, height)

    def filter(self, detections: Detections, width: int, height: int) -> Detections:
        """Keep the detections whose box bottom-centre lies inside a zone."""
        if not self._paths or not len(detections):
            return detections
        return detections[self.keeps(detections, width, height)]


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd ray casting, vectorised over points ``(N, 2)``; ``polygon`` is ``(K, 2)``."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at_y = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hits = crosses & (x < x_at_y)
    return (np.count_nonzero(hits, axis=1) % 2) == 1
