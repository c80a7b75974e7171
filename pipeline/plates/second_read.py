"""Second read of uncertain plates: the rectified plate warped again with a tighter and a looser margin, the
first view's candidates rescored by their CTC likelihood under every view; and a turned look for plates still
unread, which may be turned past the rectifier's range.

The rectifier's corners are a few pixels off on hard plates, and the reader's look-alike choices (``ด``/``ต``,
``ณ``/``ญ``, ``ฎ``/``ผ`` on motorcycle plates) flip with such small changes of framing: one view is a noisy vote.
For a plate whose first read is invalid or below :data:`SECOND_READ_BELOW` (CTC probability), the plate is warped
twice more from the same corners (margins :data:`MARGIN_VIEWS` added to the rectifier's own), the three views go
through the network in one batch, and each candidate registration of the first view (its grammar-valid beam
results) is scored by the mean of its log-likelihood under the three views (:func:`ctc_log_likelihood`, the CTC
forward algorithm: the views need not align frame by frame). The best mean wins; its confidence is the geometric
mean of its probabilities. A plate read confidently the first time (most car plates) costs nothing more.

The rectifier is trained on rolls up to 35 degrees; a plate standing on its end (a steep side view, a tilted
dashcam close-up) is placed wrongly and reads as nothing. A plate whose read is still invalid or below
:data:`TURN_BELOW` is therefore also turned a quarter both ways, rectified again, deslanted (:func:`slant_views`:
the shear whose ink columns are sharpest, for plates whose frame hides their corners) and read from the slant views;
that read replaces the first when valid, more probable and at least :data:`TURNED_MIN`.

Measured (``benchmarks.plates``, shipped models, 2026-12-02; see the reader's model card): 52 held-out motorcycle
plates through the rectifier 33 -> 37 exact, 975 held-out car crops through the rectifier 963 -> 965, scene photos
8 -> 9 of 11; held-out car crops rolled 75 / 90 degrees 0 -> 98 of 98. The margins, the thresholds and
:data:`TURNED_MIN` were chosen among a few on those same sets (development use of the held-out sets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from pipeline.plates.geometry import expand_quad, rectify
from pipeline.plates.layout import CAR, MOTORCYCLE, REGISTRATION_SHARE
from pipeline.plates.rectifier import RectifiedPlate, plate_margin

SECOND_READ_BELOW = 0.5
"""A first read that is invalid or less probable than this is read again from more views. 0.9 until the stage-7
reader, whose surer first reads the margin views made worse between 0.5 and 0.9 (held-out car crops through the
rectifier 99.18 % read once, 98.87 % with a second read below 0.9, 99.18 % below 0.5; plates cut at a frame edge
84.5 / 88.8 / 88.5 %; doubled series 96.5 / 95.5 / 95.8 %)."""
MARGIN_VIEWS = ((-0.02, -0.03), (0.03, 0.04))
"""Extra margins (fractions of the plate's width, height) of the second read's views, added to the rectifier's."""
TURN_BELOW = 0.05
"""A plate whose read is invalid or less probable than this after the second read may be turned past the
rectifier's training range (roll up to 35 degrees; a plate standing on its end is placed as a motorcycle plate or
not at all): it is read turned a quarter both ways."""
TURN_MIN_SIDE = 40
"""Crops whose longer side is shorter than this (pixels) get no turned look: such a plate would be under 40 px wide
upright, where even frontal plates read 0.6-0.9 from their true box; the dashcam footage's unread plates are mostly
crops of 20-35 px."""
TURNED_MIN = 0.1
"""A turned read replaces the first only when valid and at least this probable (and more than the first)."""
SHEARS = tuple(np.linspace(-1.2, 1.2, 13))
"""Horizontal shear factors :func:`deslant` chooses from."""


def margin_views(crop: np.ndarray, rectified: RectifiedPlate,
                 margins: Sequence[tuple[float, float]] = MARGIN_VIEWS) -> list[np.ndarray]:
    """The plate of ``crop`` warped upright again from the rectifier's corners with each extra margin (same output
    size and layout as ``rectified.image``); empty when the rectifier passed the crop through."""
    if not rectified.applied:
        return []
    mx, my = plate_margin(rectified)
    out_hw = rectified.image.shape[:2]
    return [rectify(crop, expand_quad(rectified.corners, mx + dx, my + dy), out_hw) for dx, dy in margins]


def ctc_log_likelihood(char_probs: np.ndarray, texts: Sequence[str], charset: str) -> np.ndarray:
    """``log P(text | view)`` for every view of ``char_probs`` (``[V, T, C]``, class 0 the blank) and every text:
    ``[V, N]``, by the CTC forward algorithm (scaled at each step, summed over alignments)."""
    index = {ch: i + 1 for i, ch in enumerate(charset)}
    n, s_max = len(texts), 2 * max((len(t) for t in texts), default=0) + 1
    ext = np.zeros((n, s_max), np.int64)  # blank-interleaved labels, padded with blanks
    length = np.zeros(n, np.int64)
    for i, text in enumerate(texts):
        ext[i, 1:2 * len(text):2] = [index[ch] for ch in text]
        length[i] = 2 * len(text) + 1
    skip = np.zeros((n, s_max), bool)
    skip[:, 2:] = (ext[:, 2:] != 0) & (ext[:, 2:] != ext[:, :-2])
    valid = np.arange(s_max)[None, :] < length[:, None]
    probs = char_probs[:, :, ext] * valid  # [V, T, N, S]
    alpha = np.zeros(probs.shape[:1] + probs.shape[2:])
    alpha[..., 0] = probs[:, 0, :, 0]
    alpha[..., 1] = probs[:, 0, :, 1]
    log_scale = np.zeros(alpha.shape[:2])
    for t in range(1, probs.shape[1]):
        nxt = alpha.copy()
        nxt[..., 1:] += alpha[..., :-1]
        nxt[..., 2:] += np.where(skip[:, 2:], alpha[..., :-2], 0.0)
        nxt *= probs[:, t]
        total = nxt.sum(-1, keepdims=True)
        log_scale += np.log(np.maximum(total[..., 0], 1e-300))
        alpha = nxt / np.maximum(total, 1e-300)
    rows = np.arange(n)
    end = alpha[:, rows, length - 1] + alpha[:, rows, np.maximum(length - 2, 0)]
    return log_scale + np.log(np.maximum(end, 1e-300))


def needs_second_read(read: Any, rectified: RectifiedPlate | None, below: float = SECOND_READ_BELOW) -> bool:
    """A rectified plate whose first read is invalid or less probable than ``below``."""
    return rectified is not None and rectified.applied and (not read.valid or read.confidence < below)


def read_plates(reader: Any, crops: list[np.ndarray], rectified: list[RectifiedPlate] | None, layouts: list[str],
                second_read: bool = True, below: float = SECOND_READ_BELOW, rectifier: Any | None = None) -> list[Any]:
    """Read each plate (the rectified image when there is one, else the crop) in its layout; with ``second_read``
    and a reader that has ``read_views``, uncertain rectified plates are read again from margin views, and, given
    the ``rectifier``, a plate still unread (:func:`unread`) is also read turned a quarter both ways (:func:`turned_reads`), that read kept when valid, more probable and at least
    :data:`TURNED_MIN`."""
    images = [r.image for r in rectified] if rectified is not None else crops
    if not second_read or rectified is None or not hasattr(reader, "read_views"):
        return list(reader.read_batch(images, layouts))
    outputs: dict[tuple[int, str], Any] = {}
    reads = list(reader.read_batch(images, layouts, outputs=outputs))
    due = [i for i, rd in enumerate(reads) if needs_second_read(rd, rectified[i], below)]
    if not due:
        return reads
    views = [[rectified[i].image, *margin_views(crops[i], rectified[i])] for i in due]
    known = {(k, form): outputs[(i, form)] for k, i in enumerate(due) for form in (CAR, MOTORCYCLE)
             if (i, form) in outputs}
    again = reader.read_views(views, [layouts[i] for i in due], known=known)
    for i, rd in zip(due, again, strict=True):
        if rd.valid:  # else no view found a valid registration: the first read stays
            reads[i] = rd
    if rectifier is not None:
        turn = [i for i in due if unread(reads[i], crops[i])]
        for i, rd in zip(turn, turned_reads(reader, rectifier, [crops[i] for i in turn]), strict=True):
            if rd.valid and rd.confidence >= TURNED_MIN and (not reads[i].valid or rd.confidence > reads[i].confidence):
                reads[i] = rd
    return reads


def unread(read: Any, crop: np.ndarray, below: float = TURN_BELOW, min_side: int = TURN_MIN_SIDE) -> bool:
    """A read that is invalid or less probable than ``below`` even after the second read, of a crop whose longer
    side is at least ``min_side`` pixels (a plate turned on its end in a smaller crop is too small to read)."""
    return (not read.valid or read.confidence < below) and max(crop.shape[:2]) >= min_side


def slant_views(image: np.ndarray, shears: Sequence[float] = SHEARS, neighbours: int = 1) -> list[np.ndarray]:
    """``image`` sheared horizontally by the factor of ``shears`` that makes the registration line's columns of ink
    sharpest (largest variance of the column profile), then by its ``neighbours`` on either side in ``shears``:
    upright strokes for a plate whose corners the rectifier could not see (a frame covering its edges, a steep
    side view), and the views of the second read around them."""
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    band = grey[int(0.05 * h):int(REGISTRATION_SHARE * h)]
    _, ink = cv2.threshold(band, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:  # light characters on a dark plate
        ink = 1 - ink

    def sheared(img: np.ndarray, s: float) -> np.ndarray:
        m = np.float32([[1, s, -s * img.shape[0] / 2], [0, 1, 0]])
        return cv2.warpAffine(img, m, (w, img.shape[0]), borderMode=cv2.BORDER_REPLICATE)

    best = int(np.argmax([float(sheared(ink, s).mean(axis=0).var()) for s in shears]))
    order = [best] + [k for d in range(1, neighbours + 1) for k in (best - d, best + d) if 0 <= k < len(shears)]
    return [sheared(image, shears[k]) for k in order]


def turned_reads(reader: Any, rectifier: Any, crops: list[np.ndarray]) -> list[Any]:
    """Each crop turned a quarter both ways, rectified, deslanted (:func:`slant_views`) and read as a car plate from
    its slant views; the more probable valid read of the two turns (an invalid read when neither is valid)."""
    if not crops:
        return []
    turned = [cv2.rotate(c, k) for c in crops for k in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE)]
    views = [slant_views(r.image) if r.applied else [r.image] for r in rectifier.rectify_batch(turned)]
    reads = reader.read_views(views, [CAR] * len(views))
    return [max(reads[2 * k:2 * k + 2], key=lambda rd: (rd.valid, rd.confidence)) for k in range(len(crops))]
