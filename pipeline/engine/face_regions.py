"""Where the face detector looks on a frame whose persons are tracked: the upper part of each person box.

A face camera that tracks persons (``engine.person_tracks_for_faces``, or a camera that reads plates too) knows where
people are before the face model runs. With ``engine.face_search: person_boxes`` the face detector searches the
upper part of each person box (:data:`UPPER_SHARE` of its height, grown by :data:`GROW` of its width on each side
and above) at the analysis frame's own resolution, instead of the whole frame shrunk to the detector's 640 px input:
a face of a 1280-wide analysis frame is seen twice as large. Regions that overlap are merged into one, so that no
face is found twice. The whole frame is still searched when the frame shows no person, when the regions would
cost more detector pixels than the whole frame (a crowd), and at least every ``WHOLE_FRAME_INTERVAL_S`` per camera
(a face whose body the detector misses is found within that).

It is not the default (``frame``): on the footage's walkway and stage clips (3 fps, person tracks on) it found
1440 faces where the whole frame found 1470 (persons the detector misses in a crowd keep their faces only on the
once-a-second whole frame) and matched 79 of the every-frame reference's 125 face events against the whole
frame's 94, for no face time saved (13.8 against 14.2 ms a frame: the walkway's persons overlap into one
wide region); where people stand apart and far (a high-resolution camera
over a square) it sees their faces at twice the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.detections import Detections
from pipeline.models.onnx_utils import nms

UPPER_SHARE = 0.6
"""Share of a person box's height, from its top, that holds the face (as the engine's face-to-person assignment)."""
GROW = 0.15
"""Each region grows by this share of its person box's width left, right and above (a head that leans out)."""
MIN_REGION_SIDE = 32
"""Regions are at least this many pixels on each side (the detector's coarsest stride)."""
WHOLE_FRAME_INTERVAL_S = 1.0
"""A camera searching person regions has its whole frame searched at least this often (seconds)."""


@dataclass(frozen=True)
class FaceSearch:
    """One image the face detector searches for frame ``frame``: the whole frame (``whole``) or a region of it
    whose top-left corner lies at ``offset`` (frame pixels)."""

    frame: int
    image: np.ndarray
    offset: tuple[int, int]
    whole: bool


def upper_person_regions(persons_xyxy: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Integer ``[R, 4]`` xyxy regions (frame pixels, clipped, overlapping ones merged) around the upper part of
    each person box."""
    boxes = np.asarray(persons_xyxy, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, 4), np.int64)
    h, w = frame_hw
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    regions = np.stack([boxes[:, 0] - GROW * bw, boxes[:, 1] - GROW * bw,
                        boxes[:, 2] + GROW * bw, boxes[:, 1] + UPPER_SHARE * bh], axis=1)
    regions = _at_least(regions, MIN_REGION_SIDE)
    regions = np.stack([np.clip(np.floor(regions[:, 0]), 0, w), np.clip(np.floor(regions[:, 1]), 0, h),
                        np.clip(np.ceil(regions[:, 2]), 0, w), np.clip(np.ceil(regions[:, 3]), 0, h)], axis=1)
    regions = regions[(regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])]
    return merge_overlapping(regions.astype(np.int64))


def _at_least(regions: np.ndarray, side: float) -> np.ndarray:
    """Regions grown about their centres to at least ``side`` on each side."""
    centre = (regions[:, :2] + regions[:, 2:]) / 2
    half = np.maximum((regions[:, 2:] - regions[:, :2]) / 2, side / 2)
    return np.concatenate([centre - half, centre + half], axis=1)


def merge_overlapping(regions: np.ndarray) -> np.ndarray:
    """Regions (xyxy) with every group of overlapping ones replaced by their bounding box, until none overlap."""
    merged = [r.copy() for r in np.asarray(regions).reshape(-1, 4)]
    while (pair := _first_overlap(merged)) is not None:
        i, j = pair
        merged[i] = np.concatenate([np.minimum(merged[i][:2], merged[j][:2]), np.maximum(merged[i][2:], merged[j][2:])])
        del merged[j]
    return np.asarray(merged, dtype=regions.dtype if len(merged) else np.int64).reshape(-1, 4)


def _first_overlap(boxes: list[np.ndarray]) -> tuple[int, int] | None:
    """Indices ``(i, j)``, ``i < j``, of the first two boxes whose interiors overlap; None when none do."""
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                return i, j
    return None


def regions_cost_less(regions: np.ndarray, frame_hw: tuple[int, int], input_size: int) -> bool:
    """Whether searching ``regions`` (each at its own size, at most ``input_size`` on its longer side) costs fewer
    detector pixels than the whole frame fitted to ``input_size``."""
    h, w = frame_hw
    scale = min(1.0, input_size / max(h, w))
    whole = (h * scale) * (w * scale)
    rw, rh = regions[:, 2] - regions[:, 0], regions[:, 3] - regions[:, 1]
    shrink = np.minimum(1.0, input_size / np.maximum(np.maximum(rw, rh), 1))
    return float(np.sum(rw * rh * shrink ** 2)) < whole


DETECTOR_INPUT = 640
"""The face detector's input side (SCRFD as the engine runs it): the whole frame is fitted to it."""
DUPLICATE_IOU = 0.4
"""Faces of one frame found in two of its searches (a face across two adjacent regions) overlapping this much are
one face."""


def face_searches(frames: list[np.ndarray], regions: list[np.ndarray | None]) -> list[FaceSearch]:
    """The images the face detector searches for these frames: frame ``k`` whole where ``regions[k]`` is None,
    else each of its regions."""
    searches: list[FaceSearch] = []
    for k, (frame, boxes) in enumerate(zip(frames, regions, strict=True)):
        if boxes is None:
            searches.append(FaceSearch(k, frame, (0, 0), True))
            continue
        searches += [FaceSearch(k, frame[y1:y2, x1:x2], (int(x1), int(y1)), False) for x1, y1, x2, y2 in boxes]
    return searches


def shifted_faces(faces: Detections, offset: tuple[int, int]) -> Detections:
    """``faces`` found in a region moved into frame pixels (boxes and landmarks)."""
    if offset == (0, 0):
        return faces
    moved = faces.with_offset(*offset)
    if "landmarks" in moved.data:
        moved.data["landmarks"] = np.asarray(moved.data["landmarks"], np.float32) + np.float32(offset)
    return moved


def faces_per_frame(searches: list[FaceSearch], results: list[Detections], n_frames: int) -> list[Detections]:
    """The faces of each frame in frame pixels, gathered from its searches (a face found twice kept once)."""
    parts: list[list[Detections]] = [[] for _ in range(n_frames)]
    for search, found in zip(searches, results, strict=True):
        parts[search.frame].append(shifted_faces(found, search.offset))
    out: list[Detections] = []
    for found in parts:
        if len(found) == 1:
            out.append(found[0])
            continue
        merged = Detections.merge(found)
        out.append(merged[np.sort(nms(merged.xyxy, merged.confidence, DUPLICATE_IOU))] if len(merged) else merged)
    return out
