"""Plates cut by their detector box: grown to the whole plate and read again.

The plate detector sometimes boxes only part of a plate: the number of a plate whose series stands far from it
(``ศต  2349`` boxed as ``2349``), one line of a two-line commercial plate. The reader then reads a valid-looking
registration that is wrong (``ต2349`` at 0.95), which is worse than no read. The rectifier sees the cut: it
places the plate's corners beyond its crop's edge (it extrapolates the plate's lines). :func:`regrown_box` turns
that into a larger reading box in the source image, the quad lengthened along its own edges to a whole plate's
aspect on the cut side(s); the caller rectifies and reads that crop again and keeps the read when
:func:`better_regrown_read`.

On the 975 held-out car crops with the engine's reading pad the rectifier's corners pass the crop's side by more
than :data:`OVERHANG` (5 %) of the plate's width on 2 crops (at most 8 %), on none of the plates found in the Thai
scene photos and the OpenALPR photos, so whole plates are seldom grown. (A quad narrower than a whole plate's
aspect is no sign of a cut: yaw foreshortens whole plates as much; on the scene photos such a rule grew 6 of 11
whole plates.)
"""

from __future__ import annotations

import numpy as np

from pipeline.plates.geometry import READING_PAD, crop_box, quad_size
from pipeline.plates.layout import CAR, MOTORCYCLE
from pipeline.plates.rectifier import RectifiedPlate
from pipeline.plates.types import PlateRead

OVERHANG = 0.05  # corners this share of the plate's width beyond the crop's left or right side: the plate goes on
WHOLE_ASPECT = {CAR: 2.2, MOTORCYCLE: 1.5}  # width / height of a whole plate with its frame, by layout
MIN_GROWTH = 0.25  # at least this share of the plate's width is added on a cut side
PART_READ_FLOOR = 0.2  # a grown read holding the cut read is kept from this probability on


def cut_sides(rectified: RectifiedPlate, crop_width: int) -> tuple[bool, bool]:
    """Whether the plate ``rectified`` found in a crop ``crop_width`` pixels wide goes on beyond the crop's
    (left, right) side."""
    if not rectified.applied:
        return False, False
    q = np.asarray(rectified.corners, np.float32)
    width, height = quad_size(q)
    if width <= 0 or height <= 0:
        return False, False
    return float(-q[:, 0].min()) / width > OVERHANG, float(q[:, 0].max() - crop_width) / width > OVERHANG


def _lengthened(quad: np.ndarray, left: float, right: float) -> np.ndarray:
    """``quad`` (TL, TR, BR, BL) lengthened by ``left`` / ``right`` pixels along its top and bottom edges."""
    q = np.asarray(quad, np.float64).copy()
    top, bottom = q[1] - q[0], q[2] - q[3]
    top /= max(np.linalg.norm(top), 1e-6)
    bottom /= max(np.linalg.norm(bottom), 1e-6)
    q[0] -= top * left
    q[3] -= bottom * left
    q[1] += top * right
    q[2] += bottom * right
    return q


def regrown_box(source: np.ndarray, reading_box: np.ndarray, rectified: RectifiedPlate) -> np.ndarray | None:
    """A reading box (xyxy, ``source`` pixels, before the reading pad) around the whole plate when the rectifier
    says the plate read from ``reading_box`` (the detector's box, whose padded crop of ``source`` it rectified)
    is cut; None when it is not, or when the crop already reaches the source's edge on every cut side."""
    crop, ox, oy = crop_box(source, reading_box, *READING_PAD)
    left, right = cut_sides(rectified, crop.shape[1])
    left = left and ox > 0
    right = right and ox + crop.shape[1] < source.shape[1]
    if not (left or right):
        return None
    width, height = quad_size(rectified.corners)
    aspect = WHOLE_ASPECT[MOTORCYCLE if rectified.layout == MOTORCYCLE else CAR]
    need = max(aspect * height - width, MIN_GROWTH * width)
    quad = _lengthened(rectified.corners, need * left, need * right) + np.float64([ox, oy])
    x0, y0 = np.maximum(quad.min(axis=0), 0.0)
    x1, y1 = np.minimum(quad.max(axis=0), np.float64([source.shape[1], source.shape[0]]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return np.float32([x0, y0, x1, y1])


def found_box(rectified: RectifiedPlate, origin: tuple[int, int], fallback: np.ndarray) -> np.ndarray:
    """The plate's box (xyxy, source pixels) from the corners the rectifier found in a crop at ``origin``;
    ``fallback`` when the crop was passed through unrectified."""
    if not rectified.applied:
        return np.asarray(fallback, np.float32)
    q = np.asarray(rectified.corners, np.float32) + np.float32(origin)
    return np.float32([*q.min(axis=0), *q.max(axis=0)])


def better_regrown_read(new: PlateRead | None, old: PlateRead | None) -> bool:
    """Whether the read of the grown crop replaces the cut one: valid, and the cut read invalid, less probable,
    or a part of it (``ต2349`` inside ``ศต2349``: the grown plate holds what the cut one read, and more)."""
    if new is None or not new.valid:
        return False
    if old is None or not old.valid or new.confidence > old.confidence:
        return True
    return len(old.text) < len(new.text) and old.text in new.text and new.confidence >= PART_READ_FLOOR
