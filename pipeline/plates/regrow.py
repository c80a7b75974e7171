"""Plates cut by their detector box: grown to the whole plate and read again.

The plate detector sometimes boxes only part of a plate: the number of a plate whose series stands far from it
(``ศต  2349`` boxed as ``2349``), one line of a two-line commercial plate. The reader then reads a valid-looking
registration that is wrong (``ต2349`` at 0.95), which is worse than no read. The rectifier sees the cut: it
places the plate's corners beyond its crop's edge (it extrapolates the plate's lines); so does a motorcycle plate
whose number line the box cut off (read ``1กด1171`` for ``1กด3374``). :func:`regrown_box` turns that into a
larger reading box in the source image, the quad lengthened along its own edges towards a whole plate's aspect on
the cut side(s); the caller rectifies and reads that crop again and keeps the read when :func:`better_regrown_read`.

On the 975 held-out car crops with the engine's reading pad the rectifier's corners pass the crop's side by more
than :data:`OVERHANG` (5 %) of the plate's width on 2 crops (at most 8 %), on none of the plates found in the Thai
scene photos and the OpenALPR photos, and never pass its top or bottom by :data:`OVERHANG_V` (10 %) of its height
(at most 9.5 %; motorcycle crops at most 2 %), so whole plates are seldom grown. (A quad narrower than a whole plate's
aspect is no sign of a cut: yaw foreshortens whole plates as much; on the scene photos such a rule grew 6 of 11
whole plates.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.plates.geometry import READING_PAD, crop_box, quad_size
from pipeline.plates.layout import CAR, MOTORCYCLE
from pipeline.plates.rectifier import RectifiedPlate
from pipeline.plates.types import PlateRead

OVERHANG = 0.05  # corners this share of the plate's width beyond the crop's left or right side: the plate goes on
OVERHANG_V = 0.10  # corners this share of the plate's height beyond the crop's top or bottom
WHOLE_ASPECT = {CAR: 2.2, MOTORCYCLE: 1.5}  # width / height of a whole plate with its frame, by layout
MIN_GROWTH = 0.25  # at least this share of the plate's width (height) is added on a cut side
PART_READ_FLOOR = 0.2  # a grown read holding the cut read is kept from this probability on


@dataclass(frozen=True)
class Cut:
    """The sides of its reading crop beyond which a plate goes on."""

    left: bool = False
    right: bool = False
    top: bool = False
    bottom: bool = False

    def __bool__(self) -> bool:
        return self.left or self.right or self.top or self.bottom


def cut_sides(rectified: RectifiedPlate, crop_hw: tuple[int, int]) -> Cut:
    """The sides of a crop of ``crop_hw`` (height, width) pixels beyond which the plate ``rectified`` found in it
    goes on: its corners more than :data:`OVERHANG` of its width past the left or right side, or
    :data:`OVERHANG_V` of its height past the top or bottom (a motorcycle plate's number line cut off)."""
    if not rectified.applied:
        return Cut()
    q = np.asarray(rectified.corners, np.float32)
    width, height = quad_size(q)
    if width <= 0 or height <= 0:
        return Cut()
    h, w = crop_hw
    return Cut(float(-q[:, 0].min()) / width > OVERHANG, float(q[:, 0].max() - w) / width > OVERHANG,
               float(-q[:, 1].min()) / height > OVERHANG_V, float(q[:, 1].max() - h) / height > OVERHANG_V)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _grown(quad: np.ndarray, left: float, right: float, top: float, bottom: float) -> np.ndarray:
    """``quad`` (TL, TR, BR, BL) lengthened by ``left`` / ``right`` pixels along its top and bottom edges and by
    ``top`` / ``bottom`` pixels along its left and right edges."""
    q = np.asarray(quad, np.float64).copy()
    across_top, across_bottom = _unit(q[1] - q[0]), _unit(q[2] - q[3])
    down_left, down_right = _unit(q[3] - q[0]), _unit(q[2] - q[1])
    q[0] += -across_top * left - down_left * top
    q[1] += across_top * right - down_right * top
    q[2] += across_bottom * right + down_right * bottom
    q[3] += -across_bottom * left + down_left * bottom
    return q


def regrown_box(source: np.ndarray, reading_box: np.ndarray, rectified: RectifiedPlate,
                on_motorcycle: bool = False) -> tuple[np.ndarray, Cut] | None:
    """A reading box (xyxy, ``source`` pixels, before the reading pad) around the whole plate, and the sides it
    grew on, when the rectifier says the plate read from ``reading_box`` (the detector's box, whose padded crop of
    ``source`` it rectified) is cut; None when it is not, or when the crop already reaches the source's edge on
    every cut side. The growth assumes a motorcycle plate's aspect when the rectifier warped it as one, or when it
    is on a vehicle the detector calls a motorcycle and the rectifier is not sure it is a car plate."""
    crop, ox, oy = crop_box(source, reading_box, *READING_PAD)
    ch, cw = crop.shape[:2]
    sh, sw = source.shape[:2]
    found = cut_sides(rectified, (ch, cw))
    cut = Cut(found.left and ox > 0, found.right and ox + cw < sw, found.top and oy > 0, found.bottom and oy + ch < sh)
    if not cut:
        return None
    width, height = quad_size(rectified.corners)
    moto = rectified.warped_as == MOTORCYCLE or (on_motorcycle and rectified.layout != CAR)
    aspect = WHOLE_ASPECT[MOTORCYCLE if moto else CAR]
    along = max(aspect * height - width, MIN_GROWTH * width)
    across = max(width / aspect - height, MIN_GROWTH * height)
    quad = _grown(rectified.corners, along * cut.left, along * cut.right, across * cut.top, across * cut.bottom)
    quad += np.float64([ox, oy])
    x0, y0 = np.maximum(quad.min(axis=0), 0.0)
    x1, y1 = np.minimum(quad.max(axis=0), np.float64([sw, sh]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return np.float32([x0, y0, x1, y1]), cut


def found_box(rectified: RectifiedPlate, origin: tuple[int, int], crop_hw: tuple[int, int],
              fallback: np.ndarray) -> np.ndarray:
    """The plate's box (xyxy, source pixels) from the corners the rectifier found in a crop of ``crop_hw``
    (height, width) at ``origin``, clipped to that crop; ``fallback`` (the plate's box before growing) when the
    crop was passed through unrectified."""
    if not rectified.applied:
        return np.asarray(fallback, np.float32)
    h, w = crop_hw
    q = np.clip(np.asarray(rectified.corners, np.float32), 0.0, np.float32([w, h])) + np.float32(origin)
    return np.float32([*q.min(axis=0), *q.max(axis=0)])


def better_regrown_read(new: PlateRead | None, old: PlateRead | None, cut: Cut | None = None) -> bool:
    """Whether the read of the grown crop replaces the cut one: valid, and the cut read invalid, less probable,
    or a part of it on the side that was kept (``ต2349`` ending ``ศต2349`` when the box cut the plate's left; a
    grown read that only adds characters where nothing was cut is not taken over a more probable read)."""
    if new is None or not new.valid:
        return False
    if old is None or not old.valid or new.confidence > old.confidence:
        return True
    if len(old.text) >= len(new.text) or new.confidence < PART_READ_FLOOR:
        return False
    if cut is not None and not (cut.top or cut.bottom) and cut.left != cut.right:
        return new.text.endswith(old.text) if cut.left else new.text.startswith(old.text)
    return old.text in new.text
