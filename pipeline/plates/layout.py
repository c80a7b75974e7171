"""Plate layouts and the one-line form the reader reads.

Thai plates come in two layouts:

- ``car`` (two lines): the registration (``1กข 1234``) on top, the province below;
- ``motorcycle`` (three lines): the series on top (``1กช`` or ``อคม``), the province in the middle, the number at
  the bottom (``4986``); the registration is written ``1กช4986``.

The reader's CTC head reads one line from left to right, so a motorcycle plate is re-laid into the car form
before it is read (:func:`motorcycle_to_car_form`): its top line and its bottom line side by side on the upper
62 % of the image, its province band below, exactly where a car plate has them. One network then reads both
layouts, and the province head sees the province where it always does.

A canonical motorcycle crop is framed like ``plates_thai_moto/crops``: the union of the character boxes padded
about 12 % / 10 %, so the three bands sit at fixed fractions of its height (:data:`MOTO_BANDS`).
"""

from __future__ import annotations

import cv2
import numpy as np

LAYOUTS = ("car", "motorcycle")
CAR, MOTORCYCLE = LAYOUTS
# Fractions of a canonical motorcycle crop's height: (top line), (province line), (number line); they overlap a
# little so that a slightly loose or tight crop still keeps every character whole.
MOTO_BANDS = ((0.0, 0.42), (0.30, 0.64), (0.53, 1.0))
REGISTRATION_SHARE = 0.62  # upper share of the car form that holds the registration line
GAP = 0.04  # blank share of the width between the two halves of a re-laid registration line


def _band(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Rows ``lo``..``hi`` (fractions of the height); at least one row, even of a crop one pixel tall."""
    h = img.shape[0]
    start = min(int(round(lo * h)), h - 1)
    return img[start:max(int(round(hi * h)), start + 1)]


def _fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    shrink = img.shape[0] > height or img.shape[1] > width
    return cv2.resize(img, (max(width, 1), max(height, 1)),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def motorcycle_to_car_form(crop: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Re-lay a canonical motorcycle crop (BGR) into the car form of size ``out_hw`` = (H, W).

    Upper :data:`REGISTRATION_SHARE` of the height: the series band and the number band side by side (a small
    gap between them, filled with the plate's own background colour); below: the province band.
    """
    oh, ow = out_hw
    top, prov, bottom = (_band(crop, lo, hi) for lo, hi in MOTO_BANDS)
    reg_h = int(round(oh * REGISTRATION_SHARE))
    gap = int(round(ow * GAP))
    half = (ow - gap) // 2
    out = np.empty((oh, ow, 3), np.uint8)
    out[:] = np.median(crop.reshape(-1, crop.shape[-1]), axis=0).astype(np.uint8)
    out[:reg_h, :half] = _fit(top, half, reg_h)
    out[:reg_h, ow - half:] = _fit(bottom, half, reg_h)
    out[reg_h:] = _fit(prov, ow, oh - reg_h)
    return out


def to_reader_form(crop: np.ndarray, layout: str, out_hw: tuple[int, int]) -> np.ndarray:
    """The image the reader reads for a canonical crop of ``layout`` (car crops are only resized)."""
    if layout == MOTORCYCLE:
        return motorcycle_to_car_form(crop, out_hw)
    if layout != CAR:
        raise ValueError(f"unknown plate layout {layout!r}; expected one of {LAYOUTS}")
    return _fit(crop, out_hw[1], out_hw[0])
