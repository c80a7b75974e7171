"""Turned look of plates found upright but not read: the region searched again turned, the plate read again.

The upright plate detector finds a plate rolled 30 degrees in a quarter of the scenes, and when it does, its box
often holds only part of the plate (or it found a badge, a sign, a bumper sticker instead): the read comes back
invalid or unsure, and the turned second look of :meth:`PlateDetector.look_again` never runs, because a plate was
found. So the read decides: a plate whose read is invalid or less probable than :data:`TURN_UNREAD_BELOW` has its
region searched turned (:meth:`PlateDetector.detect_rotated`, tiles from :meth:`PlateDetector.coarse_tile`): its
vehicle's crop when the plate is :func:`large_enough` to read, or, for a plate that belongs to no vehicle and when no
plate of the frame read well, the whole frame. The plates found there are rectified and read, and a read replaces
the first when it is better (:func:`better_read`). A plate read well upright costs nothing more. (In the engine the
whole frame's turned look comes on the camera's next frame, rationed per camera; see ``pipeline.engine.engine``.)

Measured on the angle sweep (``benchmarks.plates --sweep``, 100 held-out car plates a cell, 160 px, 2026-12-02):
exact end to end at roll 30 0.76 -> 0.89, frontal 0.89 -> 0.90 (see the reader's model card).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.models.plate_detector import PlateDetector
from pipeline.plates.geometry import READING_PAD, crop_box
from pipeline.plates.second_read import TURN_MIN_SIDE
from pipeline.plates.types import PlateRead

TURN_UNREAD_BELOW = 0.5
"""A read that is invalid or less probable than this (CTC probability) sends its plate's region to a turned look."""
SAME_PLATE_IOU = 0.3
"""A plate found turned and one found upright that overlap at least this much (IoU) are the same plate."""
TURN_MIN_REGION_WIDTH = 160
"""Regions narrower than this (pixels) get no turned look: a plate in them is too small to read turned."""


@dataclass
class TurnedPlate:
    """The best plate a turned look found in a region: boxes in region pixels, score, and its reading crop."""

    box: np.ndarray  # tight plate rectangle (the hull of the turned-back box)
    reading_box: np.ndarray  # the detector's own box, turned back
    score: float
    crop: np.ndarray  # reading_box grown by the reading pad: what the rectifier and reader see


def wants_turned_look(read: PlateRead | None) -> bool:
    """Whether a plate's read is unsure enough for a turned look of its region."""
    return read is not None and (not read.valid or read.confidence < TURN_UNREAD_BELOW)


def large_enough(crop_hw: tuple[int, ...]) -> bool:
    """Whether a plate's reading crop is large enough for its vehicle's crop to be searched turned when it reads
    unsure: a plate under :data:`TURN_MIN_SIDE` pixels reads unsure for its size, not for its roll (the footage's
    unread plates are mostly crops of 20-35 px), and reads no better turned. (A frame's own turned look, due when
    every plate of it reads unsure, takes plates of any size: it is rationed per camera.)"""
    return max(crop_hw[:2]) >= TURN_MIN_SIDE


def better_read(new: PlateRead | None, old: PlateRead | None) -> bool:
    """Whether ``new`` (a turned look's read) should replace ``old``: valid, and ``old`` invalid or less probable."""
    if new is None or not new.valid:
        return False
    return old is None or not old.valid or new.confidence > old.confidence


def turned_plates(detector: PlateDetector, regions: list[np.ndarray], min_confidence: float,
                  tiles: list[int] | None = None) -> list[list[TurnedPlate]]:
    """Each region searched turned in one batched call (``tiles`` per region as
    :meth:`PlateDetector.detect_rotated`); per region its plates of at least ``min_confidence``, most confident
    first, each with its reading crop."""
    if not regions:
        return []
    out: list[list[TurnedPlate]] = []
    for region, dets in zip(regions, detector.detect_rotated(regions, tiles=tiles), strict=True):
        reading = np.asarray(dets.data.get("reading_xyxy", dets.xyxy), np.float32).reshape(-1, 4)
        plates = []
        for i in np.argsort(-dets.confidence, kind="stable"):
            if dets.confidence[i] < min_confidence:
                continue
            crop = crop_box(region, reading[i], *READING_PAD)[0]
            if min(crop.shape[:2]) >= 4:
                plates.append(TurnedPlate(dets.xyxy[i], reading[i], float(dets.confidence[i]), crop))
        out.append(plates)
    return out
