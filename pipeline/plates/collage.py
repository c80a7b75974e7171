"""Motorcycle plates collaged from the real characters of car plate crops (training data for the reader).

Only 54 real motorcycle plates are there to train on, most of them Bangkok ``1ก?`` series, while the car crops
hold thousands of real characters in the plate typeface. :class:`GlyphBank` cuts every character out of the
registration line of car crops whose ink splits into exactly as many pieces as the label has characters (Thai
consonants and digits are single strokes), and :func:`collage_motorcycle` lays a new three-line plate from them:
a random series (a digit and two consonants, or three consonants, every consonant equally often) on top, the
province line of a real car crop in the middle and 1-4 real digits at the bottom, framed like
``plates_thai_moto/crops`` (the series at about 9-36 % of the height, the number at 65-91 %: the positions
measured on the real crops), so that :func:`pipeline.plates.layout.motorcycle_to_car_form` re-lays it like a real
one. Characters are composited multiplicatively (ink darkens the plate, the patch's own paper cancels out), so
dark-on-light plates come out without seams. Build the bank from the training split only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.plates.dataset import PlateSample
from pipeline.plates.grammar import DIGITS, THAI_CONSONANTS
from pipeline.plates.layout import MOTO_BANDS

logger = logging.getLogger(__name__)

SERIES_ROWS = (0.09, 0.36)  # where the series line sits in a canonical motorcycle crop (median of the real ones)
NUMBER_ROWS = (0.65, 0.91)
PROVINCE_ROWS = (0.42, 0.60)
PROVINCE_SOURCE = (0.67, 0.94)  # rows of a car crop holding the province name alone
CUT_ROWS = (0.0, 0.67)  # rows of a car crop the registration's characters are cut from
MIN_HEIGHT = 0.45  # a character piece is at least this share of the line's tallest piece


@dataclass
class GlyphBank:
    """Real character images by character (BGR patches of the registration line, a small margin each), and the
    province lines of the same crops with their province ids."""

    glyphs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    provinces: list[tuple[np.ndarray, int]] = field(default_factory=list)

    def add(self, crop: np.ndarray, label: str, province: int) -> bool:
        """Cut the characters of one car crop (BGR) labelled ``label``; False when its ink does not split into
        ``len(label)`` characters (touching or broken strokes, dirt)."""
        pieces = split_characters(crop, len(label))
        if pieces is None:
            return False
        for ch, piece in zip(label, pieces, strict=True):
            self.glyphs.setdefault(ch, []).append(piece)
        if province >= 0 and not label.isdigit():  # commercial plates have digits in the way
            line = crop[int(PROVINCE_SOURCE[0] * crop.shape[0]):int(PROVINCE_SOURCE[1] * crop.shape[0])]
            cols = np.flatnonzero(_ink(cv2.cvtColor(line, cv2.COLOR_BGR2GRAY))[2:-2].mean(0) > 0.05)
            if len(cols) >= 2 and cols[-1] - cols[0] > 0.3 * line.shape[1]:
                self.provinces.append((line[:, max(cols[0] - 2, 0):cols[-1] + 3].copy(), province))
        return True

    def has_every_character(self) -> bool:
        """True when every digit and every consonant has at least one image."""
        return all(self.glyphs.get(ch) for ch in DIGITS + THAI_CONSONANTS)

    def pick(self, ch: str, rng: np.random.Generator) -> np.ndarray:
        """A random image of ``ch`` (KeyError when the bank has none)."""
        options = self.glyphs[ch]
        return options[int(rng.integers(len(options)))]


def _ink(grey: np.ndarray) -> np.ndarray:
    """Dark-ink mask (uint8 0/1) of a plate line by Otsu; light-on-dark lines are inverted."""
    _, ink = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return 1 - ink if ink.mean() > 0.5 else ink


def split_characters(crop: np.ndarray, n: int) -> list[np.ndarray] | None:
    """The ``n`` characters of a car crop's registration line, left to right, as BGR patches (the character's box
    grown by 8 % of the line height), or None when the ink does not split into exactly ``n`` tall pieces."""
    boxes = character_boxes(crop, n)
    if boxes is None:
        return None
    return [crop[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in boxes]


def character_boxes(crop: np.ndarray, n: int, margin: float = 0.08,
                    rows: tuple[float, float] = CUT_ROWS) -> list[tuple[int, int, int, int]] | None:
    """Boxes ``(x0, y0, x1, y1)`` in ``crop`` pixels of the ``n`` characters of the line in ``rows`` (fractions of
    the height; by default a car crop's registration line), each grown by ``margin`` of the line's height (see
    :func:`split_characters`), or None."""
    h = crop.shape[0]
    r0, r1 = int(rows[0] * h), int(rows[1] * h)
    line = crop[r0:r1]
    if line.size == 0:
        return None
    grey = cv2.cvtColor(line, cv2.COLOR_BGR2GRAY)
    count, _, stats, _ = cv2.connectedComponentsWithStats(_ink(grey), connectivity=8)
    lh, lw = line.shape[:2]
    boxes = [(x, y, w, hh) for x, y, w, hh, area in stats[1:count]
             if hh >= 0.3 * lh and w <= 0.3 * lw and area >= 0.1 * w * hh and x > 0 and x + w < lw]
    if any(y == 0 or y + hh >= lh for _, y, _, hh in boxes if hh >= MIN_HEIGHT * lh):
        return None  # a character cut by the line's band (a tilted or loosely framed crop)
    if not boxes:
        return None
    tallest = max(b[3] for b in boxes)
    boxes = sorted((b for b in boxes if b[3] >= MIN_HEIGHT * tallest), key=lambda b: b[0])
    if len(boxes) != n:
        return None
    for (xa, _, wa, _), (xb, _, _, _) in zip(boxes, boxes[1:], strict=False):
        if xb < xa + 0.6 * wa:  # overlapping pieces: a character in two parts or two characters stacked
            return None
    m = max(1, int(round(margin * lh))) if margin > 0 else 0
    return [(max(x - m, 0), r0 + max(y - m, 0), min(x + w + m, lw), r0 + min(y + hh + m, lh)) for x, y, w, hh in boxes]


def doubled_series(crop: np.ndarray, label: str, first: bool = True) -> tuple[np.ndarray, str] | None:
    """A real car crop whose series ``XY`` (two different consonants side by side) becomes the doubled ``XX``
    (``first``: the first letter's image pasted over the second's box, scaled to it) or ``YY``; None when the
    label has no such pair or the line does not split into its characters. The plate's own typeface, lighting
    and blur around a doubled letter, for reading doubled series (``ผผ``, ``พพ``, ``จจ``) that real crops rarely
    hold."""
    pair = next((i for i in range(len(label) - 1) if label[i] in THAI_CONSONANTS and label[i + 1] in THAI_CONSONANTS
                 and label[i] != label[i + 1]), None)
    if pair is None:
        return None
    boxes = character_boxes(crop, len(label))
    if boxes is None:
        return None
    src, dst = (pair, pair + 1) if first else (pair + 1, pair)
    sx0, sy0, sx1, sy1 = boxes[src]
    dx0, dy0, dx1, dy1 = boxes[dst]
    out = crop.copy()
    out[dy0:dy1, dx0:dx1] = cv2.resize(crop[sy0:sy1, sx0:sx1], (dx1 - dx0, dy1 - dy0), interpolation=cv2.INTER_AREA)
    letter = label[src]
    return out, label[:pair] + letter + letter + label[pair + 2:]


def edge_cut(crop: np.ndarray, label: str, keep: float, side: str = "left",
             pad: tuple[int, int] = (0, 0)) -> np.ndarray | None:
    """A real car crop cut through its first (``side="left"``) or last (``"right"``) character so that only
    ``keep`` (0-1] of that character's width is left, as when the plate runs out of the picture at a frame edge
    (or the detector's box stops inside the character); the label stays whole. ``pad`` (x, y pixels) grows the
    crop first, border replicated, on every side but the cut one: the engine's reading crop around a plate at the
    frame edge. None when the registration line does not split into its characters."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    boxes = character_boxes(crop, len(label), margin=0.0)
    if boxes is None:
        return None
    px, py = pad
    grown = cv2.copyMakeBorder(crop, py, py, px, px, cv2.BORDER_REPLICATE) if px or py else crop
    x0, _, x1, _ = boxes[0] if side == "left" else boxes[-1]
    cut = int(round(x1 - keep * (x1 - x0))) if side == "left" else int(round(x0 + keep * (x1 - x0)))
    return grown[:, cut + px:].copy() if side == "left" else grown[:, :cut + px].copy()


RESTYLES = ("red", "graphic")


def restyle(crop: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """A real plate crop redrawn in another plate style, its own characters, light and blur kept: ``red`` (a
    dealer plate, dark characters on red) or ``graphic`` (a vanity plate, dark characters on a colourful picture).
    Each pixel keeps its paper factor (:func:`_paper`: 1 on the paper, low on the strokes) between the new ink and
    the new paper, so that real plates of colours the project has no photos of can be read and measured."""
    if style not in RESTYLES:
        raise ValueError(f"style must be one of {RESTYLES}, got {style!r}")
    h, w = crop.shape[:2]
    f = _paper(crop, 0.0)
    ink = np.full(3, rng.uniform(10, 40), np.float32)
    if style == "red":
        paper = np.broadcast_to(np.float32([rng.uniform(25, 70), rng.uniform(20, 60), rng.uniform(165, 235)]),
                                (h, w, 3))
    else:
        from pipeline.plates.render import graphic_background

        paper = graphic_background(rng, h, w)
    return np.clip(ink + (paper - ink) * f, 0, 255).astype(np.uint8)


MOTO_SERIES_ROWS = MOTO_BANDS[0]  # rows of a canonical motorcycle crop that hold the series line


def motorcycle_series_glyphs(crop: np.ndarray, label: str) -> dict[str, list[np.ndarray]]:
    """The consonants of a real motorcycle crop's series line (``1กช`` or ``อคม``) as BGR patches by consonant,
    empty when the line does not split into its three characters."""
    boxes = character_boxes(crop, 3, rows=MOTO_SERIES_ROWS)
    out: dict[str, list[np.ndarray]] = {}
    for ch, (x0, y0, x1, y1) in zip(label[:3], boxes or [], strict=False):
        if ch in THAI_CONSONANTS:
            out.setdefault(ch, []).append(crop[y0:y1, x0:x1].copy())
    return out


def _recolour(glyph: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``glyph`` (BGR) redrawn at the size of ``like`` in ``like``'s own paper and ink colours (the 85th and 5th
    percentiles of its pixels by brightness), so that a character of another plate sits in this plate's light."""
    h, w = like.shape[:2]
    t = (_paper(cv2.resize(glyph, (w, h), interpolation=cv2.INTER_AREA), 0.0)[..., :1])
    grey = cv2.cvtColor(like, cv2.COLOR_BGR2GRAY).reshape(-1)
    order = np.argsort(grey)
    pixels = like.reshape(-1, 3).astype(np.float32)
    ink = pixels[order[: max(1, len(order) // 20)]].mean(0)
    paper = pixels[order[int(0.85 * len(order)):]].mean(0)
    return np.clip(ink + (paper - ink) * t, 0, 255).astype(np.uint8)


def swap_series(crop: np.ndarray, label: str, glyphs: dict[str, list[np.ndarray]], rng: np.random.Generator,
                share: float = 0.67) -> tuple[np.ndarray, str] | None:
    """A real motorcycle crop with characters of its series replaced by other consonants' images from ``glyphs``
    (real motorcycle series letters, :func:`motorcycle_series_glyphs`), each drawn in the plate's own light: new
    series in the motorcycle typeface, framing, province and number of a real plate. Each series character is
    replaced with probability ``share`` (at least one); a leading digit becomes a consonant, which makes the
    three-consonant series (``ยลม``) that few real training plates carry. None when the series line does not split
    into its three characters or ``glyphs`` is empty."""
    boxes = character_boxes(crop, 3, rows=MOTO_SERIES_ROWS)
    letters = sorted(ch for ch, images in glyphs.items() if images)
    if boxes is None or not letters or len(label) < 4:
        return None
    chosen = [i for i in range(3) if rng.random() < share] or [int(rng.integers(3))]
    out = crop.copy()
    series = list(label[:3])
    for i in chosen:
        ch = letters[int(rng.integers(len(letters)))]
        images = glyphs[ch]
        x0, y0, x1, y1 = boxes[i]
        out[y0:y1, x0:x1] = _recolour(images[int(rng.integers(len(images)))], crop[y0:y1, x0:x1])
        series[i] = ch
    return out, "".join(series) + label[3:]


def random_motorcycle_label(rng: np.random.Generator, three_consonants: float = 0.5) -> str:
    """``[1-9][cons]{2}`` or ``[cons]{3}`` (probability ``three_consonants``) then 1-4 digits, no leading zero;
    consonants uniform."""
    cons = [THAI_CONSONANTS[int(rng.integers(len(THAI_CONSONANTS)))] for _ in range(3)]
    series = "".join(cons) if rng.random() < three_consonants else str(int(rng.integers(1, 10))) + "".join(cons[:2])
    n = int(rng.choice(4, p=[0.06, 0.14, 0.30, 0.50])) + 1
    number = str(int(rng.integers(1, 10))) + "".join(str(int(d)) for d in rng.integers(0, 10, n - 1))
    return series + number


def _paper(patch: np.ndarray, ink: float = 0.12) -> np.ndarray:
    """Paper factors of a BGR patch (float ``[H, W, 3]``): 1 on the patch's paper (its bright grey levels), ``ink``
    on its darkest strokes, whatever the source plate's colour (a yellow or red plate's character becomes dark ink
    on the collage's paper)."""
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lo, hi = np.percentile(grey, 5), np.percentile(grey, 70)
    f = np.clip((grey - lo) / max(hi - lo, 1.0), 0.0, 1.0)
    return np.repeat((ink + (1.0 - ink) * f)[..., None], 3, axis=2)


def _lay_line(canvas: np.ndarray, patches: list[np.ndarray], rows: tuple[float, float], x_span: tuple[float, float],
              rng: np.random.Generator, stretch: float, ink: float) -> None:
    """Paste ``patches`` (BGR) side by side into ``rows`` x ``x_span`` (fractions) of ``canvas`` (float 0..1 paper
    factors multiplied in), scaled to the line height, spread evenly when they are narrower than the span."""
    ch, cw = canvas.shape[:2]
    y0, y1 = int(rows[0] * ch), int(rows[1] * ch)
    line_h = max(y1 - y0, 4)
    scaled = []
    for p in patches:
        w = max(2, int(round(p.shape[1] * line_h / p.shape[0] * stretch * rng.uniform(0.92, 1.08))))
        scaled.append(cv2.resize(_paper(p, ink), (w, line_h), interpolation=cv2.INTER_AREA))
    span0, span1 = int(x_span[0] * cw), int(x_span[1] * cw)
    total = sum(s.shape[1] for s in scaled)
    if total > span1 - span0:  # too wide: squeeze every character to fit
        k = (span1 - span0) / total
        scaled = [cv2.resize(s, (max(2, int(s.shape[1] * k)), line_h), interpolation=cv2.INTER_AREA) for s in scaled]
        total = sum(s.shape[1] for s in scaled)
    gap = (span1 - span0 - total) / max(len(scaled) - 1, 1) if len(scaled) > 1 else 0.0
    x = span0 + ((span1 - span0 - total) / 2 if len(scaled) == 1 else 0.0)
    for s in scaled:
        xi = int(round(x))
        dy = int(rng.integers(-1, 2))
        ya, yb = max(y0 + dy, 0), min(y0 + dy + line_h, ch)
        w = min(s.shape[1], cw - xi)
        if w > 0:
            canvas[ya:yb, xi:xi + w] *= s[: yb - ya, :w]
        x += s.shape[1] + gap


def collage_motorcycle(bank: GlyphBank, rng: np.random.Generator, label: str | None = None
                       ) -> tuple[np.ndarray, str, int]:
    """One collaged motorcycle plate: (BGR image about 170 x 200, canonical label, province id)."""
    while label is None:
        drawn = random_motorcycle_label(rng)
        label = drawn if all(bank.glyphs.get(c) for c in drawn) else None
    series, number = label[:3], label[3:]
    height = int(rng.integers(150, 190))
    width = int(height * rng.uniform(1.1, 1.5))
    plate, province = bank.provinces[int(rng.integers(len(bank.provinces)))]
    paper = np.clip(rng.normal(205, 28) + rng.normal(0, 6, 3), 80, 255)  # a white plate, lit anyhow
    ink = float(rng.uniform(0.05, 0.3))
    canvas = np.ones((height, width, 3), np.float32)
    spread = rng.uniform(0.0, 0.12)
    _lay_line(canvas, [bank.pick(c, rng) for c in series], SERIES_ROWS, (0.12 + spread, 0.88 - spread), rng,
              rng.uniform(1.0, 1.35), ink)
    _lay_line(canvas, [plate], PROVINCE_ROWS, (0.12, 0.88), rng, 1.0, ink)
    digits_span = 0.16 + 0.17 * (4 - len(number)) / 2
    _lay_line(canvas, [bank.pick(c, rng) for c in number], NUMBER_ROWS, (digits_span, 1 - digits_span), rng,
              rng.uniform(1.0, 1.3), ink)
    image = np.clip(canvas * paper, 0, 255).astype(np.uint8)
    return image, label, province


def build_bank(samples: list[PlateSample]) -> GlyphBank:
    """A glyph bank from car crops (use the training split only); logs how many crops split cleanly."""
    bank = GlyphBank()
    used = 0
    for s in samples:
        img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {s.path}")
        used += bank.add(img, s.label, s.province)
    missing = [ch for ch in DIGITS + THAI_CONSONANTS if not bank.glyphs.get(ch)]
    logger.info("glyph bank: %d of %d car crops split into their characters; %d characters without an image%s",
                used, len(samples), len(missing), f" ({''.join(missing)})" if missing else "")
    return bank
