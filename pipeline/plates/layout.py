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


CAR_TOP_LINE = (0.04, 0.62)  # rows of a canonical car crop (``plates_thai``) that hold the registration line
CAR_PROVINCE_LINE = (0.60, 0.97)
MOTO_LINES = ((0.05, 0.40), (0.40, 0.60), (0.60, 0.96))  # where a motorcycle plate's three lines sit


def series_gap(top_line: np.ndarray, lo: float = 0.25, hi: float = 0.65) -> int | None:
    """Column of the blank gap between the series and the number on a car plate's registration line (BGR),
    searched between ``lo`` and ``hi`` of the width; None when no clear gap is found."""
    grey = cv2.cvtColor(top_line, cv2.COLOR_BGR2GRAY) if top_line.ndim == 3 else top_line
    _, ink = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:  # light characters on a dark plate
        ink = 1 - ink
    profile = ink[int(0.15 * len(ink)):int(0.9 * len(ink))].mean(0)
    w = len(profile)
    a, b = int(lo * w), int(hi * w)
    blank = profile[a:b] < 0.04
    best, best_len, start = None, 0, None
    for x, empty in enumerate(np.append(blank, False)):
        if empty and start is None:
            start = x
        elif not empty and start is not None:
            if x - start > best_len:
                best, best_len = a + (start + x) // 2, x - start
            start = None
    return best if best_len >= max(2, int(0.015 * w)) else None


# Where the series/number gap lies along the ink of a car plate's registration line (3 series characters), by the
# number's digit count: medians of 350 training crops, +-0.05 (the 5-95 % range); a gap elsewhere is a gap
# inside the series or the number, and the plate is not used.
GAP_POSITION = {3: 0.51, 4: 0.48}
GAP_TOLERANCE = 0.05


def _ink_columns(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    _, ink = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:
        ink = 1 - ink
    return np.flatnonzero(ink[int(0.15 * len(ink)):int(0.9 * len(ink))].mean(0) > 0.04)


def car_to_motorcycle_form(crop: np.ndarray, number_digits: int, out_hw: tuple[int, int] = (112, 128)
                           ) -> np.ndarray | None:
    """A canonical car crop (BGR) of a plate whose series has three characters (``1กข``) and whose number has
    ``number_digits`` digits, re-laid as a three-line motorcycle plate of size ``out_hw`` (series on top, province
    in the middle, number at the bottom) from the plate's real characters: training data for motorcycle plates,
    which have few real examples. None when the series/number gap is not found where it should be."""
    top = _band(crop, *CAR_TOP_LINE)
    gap = series_gap(top)
    cols = _ink_columns(top)
    if gap is None or number_digits not in GAP_POSITION or len(cols) < 2:
        return None
    position = (gap - cols[0]) / max(cols[-1] - cols[0], 1)
    if abs(position - GAP_POSITION[number_digits]) > GAP_TOLERANCE:
        return None
    oh, ow = out_hw
    out = np.empty((oh, ow, 3), np.uint8)
    out[:] = np.median(crop.reshape(-1, crop.shape[-1]), axis=0).astype(np.uint8)
    pieces = (top[:, :gap], _band(crop, *CAR_PROVINCE_LINE), top[:, gap:])
    for piece, (lo, hi), width in zip(pieces, MOTO_LINES, (0.84, 0.80, 0.84), strict=True):
        r0, r1 = int(round(lo * oh)), int(round(hi * oh))
        pw = int(round(width * ow))
        x0 = (ow - pw) // 2
        out[r0:r1, x0:x0 + pw] = _fit(_trim_columns(piece), pw, r1 - r0)
    return out


def _trim_columns(img: np.ndarray) -> np.ndarray:
    """Drop blank columns at both ends of a line (the characters keep a small margin)."""
    cols = _ink_columns(img)
    if len(cols) < 2:
        return img
    margin = max(1, int(0.03 * img.shape[1]))
    return img[:, max(cols[0] - margin, 0):min(cols[-1] + 1 + margin, img.shape[1])]
