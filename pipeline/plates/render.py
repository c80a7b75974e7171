"""Synthetic Thai licence plates rendered with Thai TrueType fonts (extra training data for the plate reader).

:func:`render_plate` draws one plate framed like the real crops the reader trains on:

- ``car`` (288x144, like ``plates_thai/images``): a tight crop on the plate edge with a thin holder frame; the
  registration (``1กข 1234``, ``กข 1234``, ``70-1234``) on the upper ~60 %, the province name below in a smaller
  font. Styles: ``white`` (black on white, private), ``yellow`` (commercial ``NN-NNNN`` with ``THAILAND NN`` above
  and sometimes the emblem at the bottom left), ``red`` (dealer plate: dark characters on red, one or two
  consonants and a number), ``green`` (private pick-up: green characters on white) and ``graphic`` (vanity plate:
  dark characters over a colourful gradient/blob/stripe picture).
- ``motorcycle`` (about 220x170, like ``plates_thai_moto/crops``): three lines (series, province, number) and the
  crop is the union of the character boxes padded ~12 % horizontally and ~10 % vertically, so the three lines sit
  inside :data:`pipeline.plates.layout.MOTO_BANDS`.

Glyphs are rendered once per font with Pillow (RAQM layout when available, so province names with vowels and
tone marks are shaped), cached as ink masks, and then condensed, scaled and pasted with OpenCV, so a plate takes
a few milliseconds. Variation: font, stroke weight, character spacing and jitter, plate tint, frame and border,
faint dirt, security wave print and screw holes. No camera augmentation (blur, noise, perspective): the trainer
adds it.

``python -m pipeline.plates.render --out DIR --n 48`` writes PNG contact sheets for a visual check.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from pipeline.plates.grammar import THAI_CONSONANTS
from pipeline.plates.provinces import PROVINCES

logger = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype/tlwg")
# Upright sans families for the registration and the province (regular and bold files), with sampling weights.
FONT_FAMILIES: dict[str, float] = {"Loma": 1.0, "Garuda": 1.0, "Waree": 1.0, "Umpush": 1.0, "Laksaman": 0.7,
                                   "TlwgTypist": 0.4}
LAYOUTS = ("car", "motorcycle")
CAR_STYLES = ("white", "yellow", "red", "green", "graphic")
STYLES = (*CAR_STYLES, "moto")
CAR_SIZE = (288, 144)  # (W, H) of a car crop
CAR_STYLE_P = {"white": 0.38, "yellow": 0.30, "red": 0.08, "green": 0.10, "graphic": 0.14}
MOTO_HEIGHT = (150, 190)  # motorcycle crop height range; the width follows from an aspect of MOTO_ASPECT
MOTO_ASPECT = (1.1, 1.5)

_REF = 128  # glyph cache font size (px)
_EXTENT = 0.28  # longest ascender/descender drawn, as a share of the character body height
_LAYOUT_ENGINE = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
_DIGITS = "0123456789"
_CONS_SET = frozenset(THAI_CONSONANTS)
_PRIVATE_RE = re.compile(f"^(?:[1-9][{THAI_CONSONANTS}]{{2}}|[{THAI_CONSONANTS}]{{1,2}})[0-9]{{1,4}}$")
_DEALER_RE = re.compile(f"^[{THAI_CONSONANTS}]{{1,2}}[0-9]{{1,4}}$")
_COMMERCIAL_RE = re.compile(r"^[1-9][0-9]{5}$")
_MOTO_RE = re.compile(f"^(?:[1-9][{THAI_CONSONANTS}]{{2}}|[{THAI_CONSONANTS}]{{3}})[0-9]{{1,4}}$")
_SPLIT_RE = re.compile(r"^([0-9]?[^0-9]+)([0-9]+)$")
_FRAME_WORDS = ("TOYOTA", "HONDA", "ISUZU", "NISSAN", "MAZDA", "FORD", "MITSUBISHI", "BANGKOK", "GO FURTHER",
                "SERVICE", "AUTO", "MOTOR")


@dataclass
class RenderedPlate:
    """A synthetic plate: the image and its ground truth."""

    image: np.ndarray  # BGR uint8
    label: str  # canonical registration, e.g. "1กข1234", "701234", "ผผ9959", "1กช4986"
    province: int  # index into PROVINCES
    layout: str  # "car" or "motorcycle"
    style: str  # "white", "yellow", "red", "green", "graphic", "moto"


# --------------------------------------------------------------------------------------------------- labels


def _consonant_pair(rng: np.random.Generator, doubled: float) -> str:
    a = THAI_CONSONANTS[int(rng.integers(len(THAI_CONSONANTS)))]
    if rng.random() < doubled:
        return a + a
    others = THAI_CONSONANTS.replace(a, "")
    return a + others[int(rng.integers(len(others)))]


def _number(rng: np.random.Generator) -> str:
    n = int(rng.choice(4, p=[0.08, 0.14, 0.23, 0.55])) + 1
    return str(int(rng.integers(1, 10))) + "".join(str(int(d)) for d in rng.integers(0, 10, n - 1))


def _private_label(rng: np.random.Generator, doubled: float, series_digit: float = 0.5) -> str:
    if rng.random() < series_digit:
        return str(int(rng.integers(1, 10))) + _consonant_pair(rng, doubled) + _number(rng)
    return _dealer_label(rng, doubled)


def _dealer_label(rng: np.random.Generator, doubled: float) -> str:
    if rng.random() < 0.2:
        return THAI_CONSONANTS[int(rng.integers(len(THAI_CONSONANTS)))] + _number(rng)
    return _consonant_pair(rng, doubled) + _number(rng)


def _commercial_label(rng: np.random.Generator) -> str:
    return str(int(rng.integers(10, 100))) + "".join(str(int(d)) for d in rng.integers(0, 10, 4))


def random_label(rng: np.random.Generator, layout: str, doubled: float = 0.25) -> str:
    """A random canonical registration for ``layout`` ("car" or "motorcycle").

    car: one of ``[0-9]?[cons]{2}[0-9]{1,4}`` (series digit 1-9 only with exactly 2 consonants),
    ``[cons]{1,2}[0-9]{1,4}``, or commercial 6 digits (``NN-NNNN``, first two digits 10-99); motorcycle:
    ``([1-9][cons]{2}|[cons]{3})[0-9]{1,4}``. Consonants are uniform over ``THAI_CONSONANTS``; with probability
    ``doubled`` the two series consonants are the same letter (ผผ, พพ, จจ, กก ...), otherwise they differ (for a
    three-consonant motorcycle series the doubled pair is the last two letters). Numbers have no leading zero.
    """
    if layout == "car":
        r = rng.random()
        if r < 0.3:
            return _commercial_label(rng)
        return _private_label(rng, doubled, series_digit=0.55)
    if layout == "motorcycle":
        if rng.random() < 0.75:
            series = str(int(rng.integers(1, 10))) + _consonant_pair(rng, doubled)
        else:
            series = THAI_CONSONANTS[int(rng.integers(len(THAI_CONSONANTS)))] + _consonant_pair(rng, doubled)
        return series + _number(rng)
    raise ValueError(f"unknown plate layout {layout!r}; expected one of {LAYOUTS}")


def _label_for_style(rng: np.random.Generator, style: str) -> str:
    if style == "yellow":
        return _commercial_label(rng)
    if style == "red":
        return _dealer_label(rng, 0.25)
    if style == "moto":
        return random_label(rng, "motorcycle")
    return _private_label(rng, 0.25, series_digit=0.55)


def _style_accepts(style: str, label: str) -> bool:
    if style == "yellow":
        return bool(_COMMERCIAL_RE.match(label))
    if style == "red":
        return bool(_DEALER_RE.match(label))
    if style == "moto":
        return bool(_MOTO_RE.match(label))
    return bool(_PRIVATE_RE.match(label))


# --------------------------------------------------------------------------------------------------- fonts


@dataclass(frozen=True)
class _Glyph:
    mask: np.ndarray  # uint8 ink mask cropped to its ink box, at _REF px
    top: int  # ink top relative to the baseline (px at _REF, negative = above)
    bottom: int  # ink bottom relative to the baseline


@functools.lru_cache(maxsize=1)
def available_fonts() -> tuple[tuple[Path, Path, float], ...]:
    """The (regular, bold, weight) font files of :data:`FONT_FAMILIES` that exist on this machine."""
    out = []
    for fam, weight in FONT_FAMILIES.items():
        reg, bold = FONT_DIR / f"{fam}.ttf", FONT_DIR / f"{fam}-Bold.ttf"
        if reg.exists() and bold.exists():
            out.append((reg, bold, weight))
    if not out:
        logger.warning("no Thai fonts found under %s; plate rendering is unavailable", FONT_DIR)
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size, layout_engine=_LAYOUT_ENGINE)


def _ink(text: str, path: Path, size: int) -> tuple[np.ndarray, int, int]:
    """Ink mask of ``text`` and its top/bottom relative to the baseline."""
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    pad = 4
    w, h = max(1, right - left + 2 * pad), max(1, bottom - top + 2 * pad)
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, font=font, fill=255, anchor="ls")
    arr = np.asarray(img)
    ys = np.flatnonzero(arr.max(axis=1) > 24)
    xs = np.flatnonzero(arr.max(axis=0) > 24)
    if not len(ys):
        return np.zeros((1, 1), np.uint8), 0, 1
    base = pad - top
    return np.ascontiguousarray(arr[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]), int(ys[0] - base), int(ys[-1] + 1 - base)


@functools.lru_cache(maxsize=4096)
def _glyph(path: Path, ch: str) -> _Glyph:
    mask, top, bottom = _ink(ch, path, _REF)
    return _Glyph(mask, top, bottom)


@functools.lru_cache(maxsize=64)
def _metrics(path: Path) -> tuple[float, float, float]:
    """Ink heights (baseline to top, px at _REF) of a digit and of a Thai consonant body, and the stem width."""
    digit = float(np.median([-_glyph(path, d).top for d in "0235689"]))
    cons = float(np.median([-_glyph(path, c).top for c in "กขคงนมรสวอ"]))
    one = _glyph(path, "1").mask
    row = one[int(one.shape[0] * 0.55)]
    stem = float(max(2, int((row > 127).sum())))
    return digit, cons, stem


@functools.lru_cache(maxsize=8192)
def _text(path: Path, text: str) -> _Glyph:
    """A whole shaped string (province names, ``THAILAND``) at a size whose consonant body is ~40 px."""
    return _Glyph(*_ink(text, path, 72))


# --------------------------------------------------------------------------------------------------- drawing


def _paste(alpha: np.ndarray, mask: np.ndarray, x: float, y: float, w: float, h: float) -> None:
    """Resize ``mask`` to ``w`` x ``h`` and max-composite it into ``alpha`` (float 0..1) at (x, y)."""
    wi, hi = max(1, int(round(w))), max(1, int(round(h)))
    xi, yi = int(round(x)), int(round(y))
    H, W = alpha.shape
    x0, y0, x1, y1 = max(xi, 0), max(yi, 0), min(xi + wi, W), min(yi + hi, H)
    if x1 <= x0 or y1 <= y0:
        return
    interp = cv2.INTER_AREA if hi < mask.shape[0] else cv2.INTER_LINEAR
    m = cv2.resize(mask, (wi, hi), interpolation=interp).astype(np.float32) * (1.0 / 255.0)
    sub = alpha[y0:y1, x0:x1]
    np.maximum(sub, m[y0 - yi:y1 - yi, x0 - xi:x1 - xi], out=sub)


@dataclass
class _Item:
    glyph: _Glyph | None  # None for a drawn shape: the commercial hyphen or a plain-bar "1"
    sx: float  # horizontal scale (ref px -> out px)
    sy: float  # vertical scale
    kind: str = "glyph"  # "glyph", "hyphen" or "bar"
    stem: float = 0.0  # shapes: stroke width (ref px)
    ref_h: float = 0.0  # shapes: digit height (ref px)

    @property
    def width(self) -> float:
        if self.glyph is not None:
            return self.glyph.mask.shape[1] * self.sx
        if self.kind == "hyphen":
            return 0.36 * self.ref_h * self.sx
        return (self.stem + 0.22 * self.ref_h) * self.sx


def _line_items(text: str, path: Path, body: float, condense: float, cons_scale: float,
                bar_one: bool = False) -> list[_Item]:
    """Scaled glyphs of ``text`` so that digits and consonant bodies are ``body`` px tall.

    ``-`` becomes a short thick bar at mid height; with ``bar_one`` the digit ``1`` is drawn as a plain vertical
    bar, as on the plate typeface.
    """
    dh, ch, stem = _metrics(path)
    items = []
    for c in text:
        s = body / dh if c in _DIGITS or c == "-" else body * cons_scale / ch
        if c == "-":
            items.append(_Item(None, s * condense, s, "hyphen", stem, dh))
        elif c == "1" and bar_one:
            items.append(_Item(None, s * condense, s, "bar", stem, dh))
        else:
            items.append(_Item(_glyph(path, c), s * condense, s))
    return items


def _draw_line(alpha: np.ndarray, items: list[_Item], x: float, baseline: float, body: float,
               gaps: list[float], rng: np.random.Generator, jitter: float) -> None:
    """Paste ``items`` left to right from ``x`` on ``baseline`` with ``gaps[i]`` after item i."""
    for i, it in enumerate(items):
        if it.glyph is None:
            if it.kind == "hyphen":  # a short thick bar at mid height
                w, th = it.width, max(2.0, 1.1 * it.stem * it.sy * 0.8)
                y0, y1 = baseline - 0.5 * body - th / 2, baseline - 0.5 * body + th / 2
                x0, x1 = x + 0.05 * w, x + 0.95 * w
            else:  # plain "1": a vertical bar
                bw = max(2.0, it.stem * it.sx * 1.15)
                x0 = x + (it.width - bw) / 2 + rng.uniform(-0.02, 0.02) * body * jitter
                x1, y0, y1 = x0 + bw, baseline - body, baseline
            cv2.rectangle(alpha, (int(round(x0)), int(round(y0))), (int(round(x1)) - 1, int(round(y1)) - 1), 1.0, -1)
            x += it.width + gaps[i]
            continue
        g = it.glyph
        k = 1.0 + rng.uniform(-0.03, 0.03) * jitter
        dy = rng.uniform(-0.02, 0.02) * body * jitter
        dx = rng.uniform(-0.02, 0.02) * body * jitter
        w, sy = g.mask.shape[1] * it.sx * k, it.sy * k
        # Plate typefaces keep ascenders and descenders short: squeeze what sticks out of the body.
        body_ref = min(body / it.sy, float(-g.top))
        asc = max(0.0, -g.top - body_ref)
        desc = max(0.0, float(g.bottom))
        top_y = baseline + dy - body_ref * sy
        edges = [top_y - min(asc * sy, _EXTENT * body), top_y, baseline + dy, baseline + dy + min(desc * sy, _EXTENT * body)]
        rows = [0, int(round(asc)), int(round(asc + body_ref)), g.mask.shape[0]]
        for j in range(3):
            if rows[j + 1] > rows[j] and edges[j + 1] - edges[j] >= 0.5:
                y0, y1 = int(round(edges[j])), int(round(edges[j + 1]))
                _paste(alpha, g.mask[rows[j]:rows[j + 1]], x + dx, y0, w, max(1, y1 - y0))
        x += it.width + gaps[i]


def _embolden(alpha: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Thicken (amount > 0) or thin (amount < 0) strokes by a fraction of a pixel-wide dilation/erosion."""
    if abs(amount) < 0.05:
        return alpha
    k = np.ones((2, 2) if abs(amount) <= 1 else (3, 3), np.uint8)
    other = cv2.dilate(alpha, k) if amount > 0 else cv2.erode(alpha, k)
    f = min(abs(amount), 1.0)
    return alpha + (other - alpha) * f


def _rounded_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, r: int, color: tuple[float, ...],
                  thickness: int = -1) -> None:
    """Filled (thickness < 0) or outlined rounded rectangle."""
    r = max(0, min(r, (x1 - x0) // 2, (y1 - y0) // 2))
    if thickness < 0:
        cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), color, -1)
        cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), color, -1)
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(img, (cx, cy), r, color, -1, cv2.LINE_AA)
        return
    t = thickness
    cv2.line(img, (x0 + r, y0), (x1 - r, y0), color, t, cv2.LINE_AA)
    cv2.line(img, (x0 + r, y1), (x1 - r, y1), color, t, cv2.LINE_AA)
    cv2.line(img, (x0, y0 + r), (x0, y1 - r), color, t, cv2.LINE_AA)
    cv2.line(img, (x1, y0 + r), (x1, y1 - r), color, t, cv2.LINE_AA)
    for (cx, cy), ang in (((x0 + r, y0 + r), 180), ((x1 - r, y0 + r), 270), ((x1 - r, y1 - r), 0),
                          ((x0 + r, y1 - r), 90)):
        cv2.ellipse(img, (cx, cy), (r, r), ang, 0, 90, color, t, cv2.LINE_AA)


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int] = (4, 7)) -> np.ndarray:
    """Low-frequency noise in [-1, 1] of size (h, w)."""
    small = rng.uniform(-1, 1, (cells[0], cells[1])).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _shade(img: np.ndarray, rng: np.random.Generator, dirt: float) -> np.ndarray:
    """Uneven lighting, faint dirt and a few specks on a float BGR image."""
    h, w = img.shape[:2]
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = _grid(h, w)
    ramp = 1.0 + rng.uniform(0.0, 0.12) * ((xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang))
    field = 1.0 - dirt * (0.5 + 0.5 * _smooth_field(rng, h, w, (int(rng.integers(3, 7)), int(rng.integers(5, 12)))))
    img *= (ramp * field)[..., None]
    if rng.random() < 0.4:  # specks
        n = int(rng.integers(3, 25))
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        for y, x in zip(ys, xs, strict=True):
            cv2.circle(img, (int(x), int(y)), int(rng.integers(0, 2)), tuple(float(v) for v in img[y, x] * 0.6),
                       -1)
    return img


@functools.lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy / max(h - 1, 1), xx / max(w - 1, 1)


def _jitter_color(rng: np.random.Generator, bgr: tuple[float, float, float], amount: float) -> np.ndarray:
    return np.clip(np.array(bgr, np.float32) + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def _random_bright(rng: np.random.Generator) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 230), rng.integers(150, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def graphic_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A colourful vanity-plate picture: gradient, blobs, stripes, a faint pictogram; paler behind the text."""
    lh, lw = max(8, h // 4), max(8, w // 4)
    yy, xx = _grid(lh, lw)
    ang = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(ang) + yy * math.sin(ang))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = _random_bright(rng), _random_bright(rng)
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(int(rng.integers(0, 6))):  # blobs
        over = bg.copy()
        cv2.ellipse(over, (int(rng.integers(0, lw)), int(rng.integers(0, lh))),
                    (int(rng.integers(2, lw // 2)), int(rng.integers(2, lh // 2))), float(rng.uniform(0, 180)), 0,
                    360, tuple(float(v) for v in _random_bright(rng)), -1)
        a = rng.uniform(0.3, 0.9)
        bg = bg * (1 - a) + over * a
    if rng.random() < 0.4:  # stripes / waves
        ang2 = rng.uniform(0, math.pi)
        freq = rng.uniform(3, 12)
        s = np.sin(2 * math.pi * freq * (xx * math.cos(ang2) + yy * math.sin(ang2) * 0.5)
                   + 3 * np.sin(2 * math.pi * yy * rng.uniform(0.5, 2)))
        bg = bg + (s[..., None] * rng.uniform(15, 50)) * (_random_bright(rng) / 255.0)
    if rng.random() < 0.6:  # landscape-like band at the bottom
        col = _random_bright(rng) * rng.uniform(0.4, 0.9)
        pts = [(0, lh)]
        base = rng.uniform(0.6, 0.85) * lh
        for x in np.linspace(0, lw, 7):
            pts.append((int(x), int(base + rng.uniform(-0.15, 0.15) * lh)))
        pts.append((lw, lh))
        over = bg.copy()
        cv2.fillPoly(over, [np.array(pts, np.int32)], tuple(float(v) for v in col))
        bg = bg * 0.3 + over * 0.7
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.7:  # faint pictogram
        _pictogram(bg, rng)
    # Paler band behind the registration line so dark characters stay readable.
    yy, _ = _grid(h, w)
    pale = np.clip(1.0 - np.abs(yy - rng.uniform(0.3, 0.45)) / rng.uniform(0.3, 0.6), 0, 1) * rng.uniform(0.2, 0.8)
    bg = bg * (1 - pale[..., None]) + 245.0 * pale[..., None]
    return np.clip(bg, 0, 255).astype(np.float32)


def _pictogram(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    over = img.copy()
    col = tuple(float(v) for v in _random_bright(rng) * rng.uniform(0.5, 1.0))
    cx, cy = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.2, 0.9) * h)
    r = int(rng.uniform(0.08, 0.25) * h)
    kind = int(rng.integers(4))
    if kind == 0:  # sun
        cv2.circle(over, (cx, cy), r, col, -1, cv2.LINE_AA)
        for k in range(8):
            a = k * math.pi / 4
            cv2.line(over, (int(cx + 1.3 * r * math.cos(a)), int(cy + 1.3 * r * math.sin(a))),
                     (int(cx + 1.8 * r * math.cos(a)), int(cy + 1.8 * r * math.sin(a))), col, 2, cv2.LINE_AA)
    elif kind == 1:  # mountains
        for k in range(int(rng.integers(1, 4))):
            bx = cx + k * r
            cv2.fillPoly(over, [np.array([(bx - 2 * r, h), (bx, cy), (bx + 2 * r, h)], np.int32)], col,
                         cv2.LINE_AA)
    elif kind == 2:  # waves
        xs = np.arange(0, w, 4)
        for k in range(3):
            ys = cy + k * 6 + 4 * np.sin(xs / rng.uniform(6, 14) + k)
            cv2.polylines(over, [np.stack([xs, ys], 1).astype(np.int32)], False, col, 2, cv2.LINE_AA)
    else:  # temple roof
        for k in range(3):
            ww = r * (2.0 - 0.5 * k)
            top = cy - r * (0.8 + 0.6 * k)
            cv2.fillPoly(over, [np.array([(cx - ww, cy - 0.6 * r * k), (cx, top), (cx + ww, cy - 0.6 * r * k)],
                                         np.int32)], col, cv2.LINE_AA)
    a = rng.uniform(0.2, 0.5)
    img *= 1 - a
    img += over * a


def _frame_and_plate(rng: np.random.Generator, w: int, h: int,
                     edges: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Canvas with a holder/background outside and the plate (rounded) inside the given edge insets."""
    if rng.random() < 0.6:
        frame = np.full(3, rng.uniform(10, 70), np.float32) + rng.uniform(-8, 8, 3)  # black plastic
    elif rng.random() < 0.5:
        frame = np.full(3, rng.uniform(140, 220), np.float32) + rng.uniform(-10, 10, 3)  # chrome / white
    else:
        frame = _random_bright(rng) * rng.uniform(0.3, 0.9)
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.clip(frame, 0, 255)
    x0, y0 = int(round(edges[0])), int(round(edges[1]))
    x1, y1 = w - 1 - int(round(edges[2])), h - 1 - int(round(edges[3]))
    return img, (x0, y0, x1, y1)


def _frame_text(img: np.ndarray, rng: np.random.Generator, rect: tuple[int, int, int, int]) -> None:
    """Small dealer text on a wide enough frame band (top or bottom)."""
    x0, y0, x1, y1 = rect
    h, w = img.shape[:2]
    bands = [(y0, 0), (h - 1 - y1, 1)]
    band, where = bands[int(rng.integers(2))]
    if band < 7:
        return
    word = _FRAME_WORDS[int(rng.integers(len(_FRAME_WORDS)))]
    if rng.random() < 0.4:
        word = f"0{rng.integers(2, 9)}-{rng.integers(100, 999)}-{rng.integers(1000, 9999)}"
    scale = band / 30.0
    col = (230, 230, 230) if img[0, 0].mean() < 120 else (40, 40, 40)
    (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int((w - tw) / 2 + rng.uniform(-0.2, 0.2) * w)
    y = int(band / 2 + th / 2) if where == 0 else int(h - band / 2 + th / 2)
    cv2.putText(img, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, col, 1, cv2.LINE_AA)


def _screw(img: np.ndarray, x: float, y: float, r: float, rng: np.random.Generator) -> None:
    c = (int(round(x)), int(round(y)))
    ri = max(2, int(round(r)))
    base = img[min(max(c[1], 0), img.shape[0] - 1), min(max(c[0], 0), img.shape[1] - 1)].copy()
    if rng.random() < 0.5:
        fill = tuple(float(v) for v in np.full(3, rng.uniform(120, 200)))  # metal screw head
    else:
        fill = tuple(float(v) for v in base * 0.5)  # empty hole
    cv2.circle(img, c, ri, fill, -1, cv2.LINE_AA)
    cv2.circle(img, c, ri, tuple(float(v) for v in base * 0.35), 1, cv2.LINE_AA)


def _waves(img: np.ndarray, rng: np.random.Generator, ys: list[float], x0: int, x1: int, col: np.ndarray) -> None:
    """Faint wavy security print lines."""
    xs = np.arange(x0, x1, 3, dtype=np.float32)
    period = rng.uniform(12, 26)
    amp = rng.uniform(1.5, 3.5)
    for y in ys:
        yv = y + amp * np.sin(xs / period * 2 * math.pi + rng.uniform(0, 6.3))
        cv2.polylines(img, [np.stack([xs, yv], 1).astype(np.int32)], False, tuple(float(v) for v in col), 1,
                      cv2.LINE_AA)


def _emblem(alpha: np.ndarray, x: float, y: float, r: float) -> None:
    """The transport department emblem: a ring with a small wheel inside, drawn into the text mask."""
    c = (int(round(x)), int(round(y)))
    ri = max(3, int(round(r)))
    cv2.circle(alpha, c, ri, 1.0, max(1, ri // 5), cv2.LINE_AA)
    cv2.circle(alpha, c, max(1, ri // 2), 1.0, 1, cv2.LINE_AA)
    for k in range(4):
        a = k * math.pi / 4
        dx, dy = ri * 0.5 * math.cos(a), ri * 0.5 * math.sin(a)
        cv2.line(alpha, (int(c[0] - dx), int(c[1] - dy)), (int(c[0] + dx), int(c[1] + dy)), 1.0, 1, cv2.LINE_AA)


def _pick_font(rng: np.random.Generator) -> tuple[Path, Path]:
    fonts = available_fonts()
    if not fonts:
        raise RuntimeError(f"no Thai fonts under {FONT_DIR} (install fonts-tlwg-*)")
    p = np.array([f[2] for f in fonts])
    reg, bold, _ = fonts[int(rng.choice(len(fonts), p=p / p.sum()))]
    return reg, bold


def _province_item(path: Path, name: str, body: float, condense: float) -> tuple[_Glyph, float, float]:
    g = _text(path, name)
    _, ch, _ = _metrics(path)
    s = body / (ch * 72 / _REF)
    return g, s * condense, s


def _draw_province(alpha: np.ndarray, path: Path, name: str, body: float, condense: float, cx: float,
                   baseline: float, max_w: float) -> None:
    g, sx, sy = _province_item(path, name, body, condense)
    w = g.mask.shape[1] * sx
    if w > max_w:
        sx *= max_w / w
        w = max_w
    _paste(alpha, g.mask, cx - w / 2, baseline + g.top * sy, w, g.mask.shape[0] * sy)


def _compose(bg: np.ndarray, alpha: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """``bg`` (float32 BGR) with ``ink`` (a colour or an image) laid over it with opacity ``alpha``."""
    diff = np.asarray(ink, np.float32) - bg
    diff *= alpha[..., None]
    diff += bg
    return diff


# --------------------------------------------------------------------------------------------------- car plates


def _plate_colors(rng: np.random.Generator, style: str) -> tuple[np.ndarray, np.ndarray]:
    """(background, ink) BGR colours of a style."""
    dark = np.full(3, rng.uniform(5, 45), np.float32) + rng.uniform(-6, 6, 3)
    if style == "yellow":
        if rng.random() < 0.8:
            bg = np.array([rng.uniform(0, 70), rng.uniform(145, 220), rng.uniform(205, 255)], np.float32)
        else:  # faded / pale
            r = rng.uniform(225, 252)
            g = r - rng.uniform(0, 20)
            bg = np.array([g - rng.uniform(50, 110), g, r], np.float32)
        return bg, dark
    if style == "red":
        return np.array([rng.uniform(20, 70), rng.uniform(20, 60), rng.uniform(160, 235)], np.float32), dark
    if style == "green":
        ink = np.array([rng.uniform(40, 100), rng.uniform(90, 150), rng.uniform(0, 40)], np.float32)
        return np.clip(np.full(3, rng.uniform(215, 252)) + rng.uniform(-8, 8, 3), 0, 255).astype(np.float32), ink
    if style == "graphic":
        ink = dark if rng.random() < 0.7 else np.array([rng.uniform(60, 120), rng.uniform(20, 50),
                                                       rng.uniform(0, 30)], np.float32)
        return np.full(3, 240.0, np.float32), ink
    bg = np.clip(np.full(3, rng.uniform(215, 252)) + rng.uniform(-8, 8, 3), 0, 255).astype(np.float32)
    return bg, dark


def _render_car(rng: np.random.Generator, label: str, province: int, style: str) -> np.ndarray:
    W, H = CAR_SIZE
    reg_font, bold_font = _pick_font(rng)
    bg_col, ink = _plate_colors(rng, style)
    # Holder frame: the crop is tight on the plate edge, a few pixels of frame at most on each side.
    edges = tuple(float(v) for v in rng.choice([0.0, 1.0], 4, p=[0.3, 0.7]) * rng.uniform(1, 8, 4))
    img, (px0, py0, px1, py1) = _frame_and_plate(rng, W, H, edges)
    pw, ph = px1 - px0, py1 - py0
    radius = int(rng.uniform(3, 12))
    if style == "graphic":
        plate = graphic_background(rng, ph + 1, pw + 1)
        mask = np.zeros((H, W), np.float32)
        _rounded_rect(mask, px0, py0, px1, py1, radius, 1.0)
        full = np.empty_like(img)
        full[:] = 240.0
        full[py0:py1 + 1, px0:px1 + 1] = plate
        img = _compose(img, mask, full)
    else:
        _rounded_rect(img, px0, py0, px1, py1, radius, tuple(float(v) for v in bg_col))
    # Printed border line inset in the plate.
    if rng.random() < 0.65:
        ins = int(rng.uniform(2, 6))
        _rounded_rect(img, px0 + ins, py0 + ins, px1 - ins, py1 - ins, max(2, radius - ins),
                      tuple(float(v) for v in ink * 0.9 + bg_col * 0.1), int(rng.integers(1, 3)))
    if style in ("white", "green") and rng.random() < 0.5:
        col = bg_col - rng.uniform(20, 45)
        ys = [py0 + ph * f for f in rng.uniform(0.62, 0.95, int(rng.integers(1, 4)))]
        _waves(img, rng, ys, px0 + 4, px1 - 4, col)

    alpha = np.zeros((H, W), np.float32)
    bold = rng.random() < 0.75
    font = bold_font if bold else reg_font
    condense = rng.uniform(0.58, 0.78)
    cons_scale = rng.uniform(0.9, 1.02)
    jitter = rng.uniform(0.0, 1.0)
    if style == "yellow":
        text = f"{label[:2]}-{label[2:]}"
        cap = ph * rng.uniform(0.085, 0.125)  # "THAILAND" cap height
        ty = py0 + ph * rng.uniform(0.015, 0.045)
        pbody = ph * rng.uniform(0.095, 0.125)
        pbase = py0 + ph * rng.uniform(0.9, 0.94)
        top = max(py0 + ph * rng.uniform(0.16, 0.21), ty + cap + ph * rng.uniform(0.025, 0.05))
        body = min(ph * rng.uniform(0.47, 0.56), pbase - 1.75 * pbody - top)
        span = pw * rng.uniform(0.86, 0.95)
        items = _line_items(text, font, body, condense, cons_scale, bar_one=rng.random() < 0.5)
        sp = body * rng.uniform(0.04, 0.12)
        hy_gap = body * rng.uniform(0.04, 0.12)
        gaps = [sp, hy_gap, hy_gap, sp, sp, sp, 0.0]
        fixed = items[2].width + sum(gaps)
        natural = sum(it.width for it in items) + sum(gaps)
        # Commercial digits fill the plate width: condense or widen (up to a normal width) to the span.
        f = (span - fixed) / (natural - fixed)
        f = min(f, 0.9 / condense)
        for i, it in enumerate(items):
            if i != 2:
                it.sx *= f
        natural = fixed + (natural - fixed) * f
        x = px0 + (pw - natural) / 2 + rng.uniform(-0.02, 0.02) * pw
        _draw_line(alpha, items, x, top + body, body, gaps, rng, jitter)
        # "THAILAND" and a two-digit number above, in a bold Latin face.
        head = np.zeros_like(alpha)
        tg = _text(bold_font, "THAILAND")
        sc = cap / max(-tg.top, 1)
        tw = tg.mask.shape[1] * sc * rng.uniform(1.0, 1.4)
        tx = px0 + pw * rng.uniform(0.47, 0.53) - tw / 2
        _paste(head, tg.mask, tx, ty, tw, tg.mask.shape[0] * sc)
        ng = _text(bold_font, f"{int(rng.integers(1, 100)):02d}")
        nx = max(tx + tw + pw * rng.uniform(0.02, 0.05), px0 + pw * rng.uniform(0.78, 0.84))
        _paste(head, ng.mask, nx, ty + (tg.mask.shape[0] - ng.mask.shape[0]) * sc, ng.mask.shape[1] * sc,
               ng.mask.shape[0] * sc)
        alpha = np.maximum(alpha, _embolden(head, rng, rng.uniform(0.3, 1.0)))
        pmax = pw * 0.8
        if rng.random() < 0.6:
            _emblem(alpha, px0 + pw * rng.uniform(0.06, 0.1), pbase - pbody * 0.6, pbody * rng.uniform(0.7, 0.95))
            pmax = pw * 0.66
        if rng.random() < 0.3:
            _screw(img, px0 + pw * rng.uniform(0.05, 0.12), py0 + ph * 0.08, ph * 0.03, rng)
    else:
        series, number = _SPLIT_RE.match(label).groups()  # type: ignore[union-attr]
        body = ph * rng.uniform(0.38, 0.47)
        top = py0 + ph * rng.uniform(0.08, 0.15)
        span = pw * rng.uniform(0.84, 0.93)
        s_items = _line_items(series, font, body, condense, cons_scale)
        n_items = _line_items(number, font, body, condense, cons_scale, bar_one=rng.random() < 0.25)
        slot_items = _line_items("0000", font, body, condense, cons_scale)
        sp = body * rng.uniform(0.05, 0.16)
        s_w = sum(it.width for it in s_items) + sp * (len(s_items) - 1)
        n_w = sum(it.width for it in n_items) + sp * (len(n_items) - 1)
        slot_w = max(n_w, sum(it.width for it in slot_items) + sp * 3)
        mid = body * rng.uniform(0.25, 0.6)
        natural = s_w + mid + slot_w
        if natural > span:
            f = span / natural
            for it in (*s_items, *n_items):
                it.sx *= f
            s_w, n_w, slot_w, mid, sp = s_w * f, n_w * f, slot_w * f, mid * f, sp * f
        else:
            mid += (span - natural) * rng.uniform(0.3, 1.0)
        total = s_w + mid + slot_w
        x = px0 + (pw - total) / 2 + rng.uniform(-0.02, 0.02) * pw
        base = top + body
        _draw_line(alpha, s_items, x, base, body, [sp] * len(s_items), rng, jitter)
        nx = x + s_w + mid + (slot_w - n_w) * (0.5 if rng.random() < 0.7 else 1.0)
        _draw_line(alpha, n_items, nx, base, body, [sp] * len(n_items), rng, jitter)
        pbody = ph * rng.uniform(0.105, 0.145)
        pbase = py0 + ph * rng.uniform(0.84, 0.9)
        pmax = pw * 0.8
        if rng.random() < 0.3:
            for fx in (0.15, 0.85):
                _screw(img, px0 + pw * (fx + rng.uniform(-0.03, 0.03)), py0 + ph * 0.07, ph * 0.03, rng)
    weight = rng.uniform(-0.3, 1.2) if not bold else rng.uniform(-0.5, 0.8)
    alpha = _embolden(alpha, rng, weight)
    palpha = np.zeros_like(alpha)
    pfont = bold_font if rng.random() < 0.7 else reg_font
    _draw_province(palpha, pfont, PROVINCES[province].thai, pbody, rng.uniform(0.8, 1.05),
                   px0 + pw / 2 + rng.uniform(-0.02, 0.02) * pw, pbase, pmax)
    alpha = np.maximum(alpha, _embolden(palpha, rng, rng.uniform(-0.2, 0.6)))
    img = _compose(img, alpha, ink)
    out = np.clip(_shade(img, rng, rng.uniform(0.0, 0.12)), 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        _frame_text(out, rng, (px0, py0, px1, py1))
    return out


# --------------------------------------------------------------------------------------------------- motorcycles


def _render_moto(rng: np.random.Generator, label: str, province: int) -> np.ndarray:
    H = int(rng.integers(MOTO_HEIGHT[0], MOTO_HEIGHT[1] + 1))
    W = int(round(H * rng.uniform(*MOTO_ASPECT)))
    reg_font, bold_font = _pick_font(rng)
    series, number = label[:3], label[3:]
    bg_col = np.clip(np.full(3, rng.uniform(205, 250)) + rng.uniform(-10, 10, 3), 0, 255).astype(np.float32)
    ink = np.full(3, rng.uniform(5, 45), np.float32) + rng.uniform(-6, 6, 3)
    # Character union: padded 12 % of its width on each side and 10 % of its height top and bottom.
    iw, ih = W / 1.24, H / 1.2
    iy0 = (H - ih) / 2
    # Plate edges: usually outside the crop, sometimes a few pixels inside it.
    edges = tuple(float(v) for v in np.where(rng.random(4) < 0.35, rng.uniform(1, 0.06 * H, 4), -20.0))
    img, (px0, py0, px1, py1) = _frame_and_plate(rng, W, H, edges)
    _rounded_rect(img, px0, py0, px1, py1, int(rng.uniform(4, 14)), tuple(float(v) for v in bg_col))
    if rng.random() < 0.4:
        ins = int(rng.uniform(2, 5))
        _rounded_rect(img, px0 + ins, py0 + ins, px1 - ins, py1 - ins, 6,
                      tuple(float(v) for v in ink * 0.9 + bg_col * 0.1), 1)
    if rng.random() < 0.3:
        _waves(img, rng, [iy0 + ih * rng.uniform(0.4, 0.6)], 0, W, bg_col - rng.uniform(20, 40))

    alpha = np.zeros((H, W), np.float32)
    bold = rng.random() < 0.85
    font = bold_font if bold else reg_font
    cons_scale = rng.uniform(0.92, 1.02)
    jitter = rng.uniform(0.0, 1.0)
    b1 = ih * rng.uniform(0.24, 0.29)  # series body
    b3 = ih * rng.uniform(0.27, 0.32)  # number body
    bp = ih * rng.uniform(0.11, 0.14)  # province body
    top_items = _line_items(series, font, b1, 1.0, cons_scale)
    bot_items = _line_items(number, font, b3, 1.0, cons_scale, bar_one=rng.random() < 0.2)
    slot = _line_items("0" * 4, font, b3, 1.0, cons_scale)

    def fit(items: list[_Item], body: float, target: float) -> tuple[float, float]:
        """Condense/space the line so it spans ``target``; returns (spacing, width)."""
        nat = sum(it.width for it in items)
        sp_f = rng.uniform(0.1, 0.25)
        f = (target - sp_f * body * (len(items) - 1)) / max(nat, 1e-6)
        f = float(np.clip(f, 0.75, 1.5))
        for it in items:
            it.sx *= f
        sp = (target - nat * f) / max(len(items) - 1, 1) if len(items) > 1 else 0.0
        sp = float(np.clip(sp, 0.05 * body, 0.35 * body))
        return sp, nat * f + sp * (len(items) - 1)

    bot_full = len(number) == 4 or rng.random() < 0.5
    if bot_full:  # the number line defines the union width
        sp3, w3 = fit(bot_items, b3, iw)
        sp1, w1 = fit(top_items, b1, iw * rng.uniform(0.55, 0.85))
    else:  # short number: the series line defines it; the number keeps its digit size
        sp1, w1 = fit(top_items, b1, iw)
        slot_sp, slot_w = fit(slot, b3, iw * rng.uniform(0.85, 1.0))
        f = slot[0].sx / max(_line_items("0", font, b3, 1.0, cons_scale)[0].sx, 1e-6)
        for it in bot_items:
            it.sx *= f
        sp3 = slot_sp
        w3 = sum(it.width for it in bot_items) + sp3 * (len(bot_items) - 1)
    base1 = iy0 + b1 + ih * rng.uniform(0.0, 0.03)
    base3 = iy0 + ih - ih * rng.uniform(0.0, 0.03)
    _draw_line(alpha, top_items, W / 2 - w1 / 2, base1, b1, [sp1] * len(top_items), rng, jitter)
    _draw_line(alpha, bot_items, W / 2 - w3 / 2, base3, b3, [sp3] * len(bot_items), rng, jitter)
    alpha = _embolden(alpha, rng, rng.uniform(-0.3, 1.0) if not bold else rng.uniform(-0.5, 0.7))
    palpha = np.zeros_like(alpha)
    pfont = bold_font if rng.random() < 0.6 else reg_font
    pbase = iy0 + ih * rng.uniform(0.52, 0.56)
    _draw_province(palpha, pfont, PROVINCES[province].thai, bp, rng.uniform(0.85, 1.1),
                   W / 2 + rng.uniform(-0.03, 0.03) * W, pbase, W * rng.uniform(0.7, 0.85))
    alpha = np.maximum(alpha, _embolden(palpha, rng, rng.uniform(-0.2, 0.6)))
    img = _compose(img, alpha, ink)
    if rng.random() < 0.25:
        for fx in (0.045, 0.955):
            _screw(img, W * (fx + rng.uniform(-0.01, 0.01)), iy0 + ih * rng.uniform(0.1, 0.3), H * 0.022, rng)
    img = _shade(img, rng, rng.uniform(0.0, 0.15))
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------- public API


def render_plate(rng: np.random.Generator, layout: str = "car", label: str | None = None,
                 province: int | None = None, style: str | None = None) -> RenderedPlate:
    """Render one synthetic plate.

    car -> 288x144 image framed like the real car crops (tight on the plate edge, a thin border); motorcycle ->
    about 220x170 (height 150-190, aspect 1.1-1.5) framed like the real moto crops (the characters' union padded
    ~12 %/10 %, no border margin beyond that). ``label`` (canonical), ``province`` (index into PROVINCES) and
    ``style`` are drawn at random when None; a given label must fit the style (yellow: 6 digits, red: 1-2
    consonants and a number, white/green/graphic: a private registration, moto: a three-line registration).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown plate layout {layout!r}; expected one of {LAYOUTS}")
    if layout == "motorcycle":
        if style not in (None, "moto"):
            raise ValueError(f"motorcycle plates have style 'moto', not {style!r}")
        style = "moto"
    elif style is None:
        if label is not None:
            fits = [s for s in CAR_STYLES if _style_accepts(s, label)]
            if not fits:
                raise ValueError(f"{label!r} is not a car registration")
            p = np.array([CAR_STYLE_P[s] for s in fits])
            style = fits[int(rng.choice(len(fits), p=p / p.sum()))]
        else:
            style = CAR_STYLES[int(rng.choice(len(CAR_STYLES), p=[CAR_STYLE_P[s] for s in CAR_STYLES]))]
    elif style not in CAR_STYLES:
        raise ValueError(f"unknown car plate style {style!r}; expected one of {CAR_STYLES}")
    if label is None:
        label = _label_for_style(rng, style)
    elif not _style_accepts(style, label):
        raise ValueError(f"label {label!r} does not fit a {style!r} plate")
    if province is None:
        province = int(rng.integers(len(PROVINCES)))
    elif not 0 <= province < len(PROVINCES):
        raise ValueError(f"province index {province} out of range")
    img = _render_moto(rng, label, province) if layout == "motorcycle" else _render_car(rng, label, province, style)
    return RenderedPlate(img, label, province, layout, style)


def render_batch(n: int, rng: np.random.Generator, layout_mix: float = 0.35) -> list[RenderedPlate]:
    """``n`` random plates; each is a motorcycle plate with probability ``layout_mix``."""
    return [render_plate(rng, "motorcycle" if rng.random() < layout_mix else "car") for _ in range(n)]


# --------------------------------------------------------------------------------------------------- CLI


def contact_sheet(plates: list[RenderedPlate], cols: int = 6, tile: tuple[int, int] = (288, 144),
                  first_index: int = 0) -> np.ndarray:
    """Tiles of the plates (each letterboxed into ``tile`` = (W, H)) with an ASCII caption: index, style, province."""
    tw, th = tile
    cap = 16
    rows = (len(plates) + cols - 1) // cols
    sheet = np.full((rows * (th + cap + 4), cols * (tw + 4), 3), 255, np.uint8)
    for i, p in enumerate(plates):
        r, c = divmod(i, cols)
        h, w = p.image.shape[:2]
        s = min(tw / w, th / h)
        im = cv2.resize(p.image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        y, x = r * (th + cap + 4) + 2, c * (tw + 4) + 2
        sheet[y:y + im.shape[0], x:x + im.shape[1]] = im
        text = f"#{first_index + i} {p.style} p{p.province} {PROVINCES[p.province].latin[:14]}"
        cv2.putText(sheet, text, (x + 2, y + th + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def main(argv: list[str] | None = None) -> None:
    """Write contact sheets of random rendered plates (and an index of their labels) for a visual check."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--n", type=int, default=48, help="plates per layout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cols", type=int, default=6)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    lines = ["index,layout,style,label,province"]
    start = 0
    for layout, tile in (("car", (288, 144)), ("motorcycle", (240, 190))):
        plates = [render_plate(rng, layout) for _ in range(args.n)]
        path = args.out / f"sheet_{layout}.png"
        cv2.imwrite(str(path), contact_sheet(plates, args.cols, tile, start))
        lines += [f"{start + i},{p.layout},{p.style},{p.label},{PROVINCES[p.province].thai}"
                  for i, p in enumerate(plates)]
        start += len(plates)
        print(f"wrote {path}")  # noqa: T201
    (args.out / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'labels.csv'}")  # noqa: T201


if __name__ == "__main__":
    main()
