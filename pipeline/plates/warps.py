"""Angled plates with known corners: plate crops turned in 3-D, composited into real backgrounds and cut out the
way the engine's plate detector cuts them. Training data for the rectifier and the angle sweep of
``benchmarks.plates``.

A sample starts from an upright plate image whose four image corners *are* the plate (the real car crops of
``plates_thai``, the motorcycle crops of ``plates_thai_moto``, rendered plates). Half of the plates get a dealer
frame around them first (the corners stay on the plate). The plate is turned (:func:`pipeline.plates.geometry.plate_quad`),
composited into a patch of a real background (frames of the footage, street photos) and cut out along the
axis-aligned box of its corners, loosened or tightened at random as a detector box is, plus the engine's reading
pad. The result is the crop, the plate's corners in it and the layout.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.plates.augment import photometric
from pipeline.plates.geometry import READING_PAD, composite, plate_quad

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class WarpedPlate:
    """A plate cut out of a scene: ``corners`` (TL, TR, BR, BL) in ``crop`` pixels."""

    crop: np.ndarray
    corners: np.ndarray
    layout: str


class Backgrounds:
    """Real background images, loaded once, scaled to at most ``max_side`` pixels."""

    def __init__(self, images: list[np.ndarray]) -> None:
        if not images:
            raise ValueError("no background images")
        self.images = images

    @classmethod
    def from_paths(cls, videos: list[Path], image_dirs: list[Path], frames_per_video: int = 40,
                   max_images: int = 400, max_side: int = 960) -> Backgrounds:
        """Frames spread over each video and the images of each folder (recursively)."""
        images: list[np.ndarray] = []
        for video in videos:
            cap = cv2.VideoCapture(str(video))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or frames_per_video
            for k in range(frames_per_video):
                cap.set(cv2.CAP_PROP_POS_FRAMES, int(k * n / frames_per_video))
                ok, frame = cap.read()
                if ok:
                    images.append(_shrink(frame, max_side))
            cap.release()
        files = sorted(p for d in image_dirs for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        step = max(1, len(files) // max_images)
        for p in files[::step]:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                images.append(_shrink(img, max_side))
        logger.info("backgrounds: %d images (%d videos, %d image files)", len(images), len(videos), len(files))
        return cls(images)

    def patch(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random region of a random background, resized to ``height`` x ``width``."""
        img = self.images[int(rng.integers(len(self.images)))]
        ih, iw = img.shape[:2]
        scale = rng.uniform(0.3, 1.0)
        ch, cw = max(8, int(ih * scale)), max(8, int(iw * scale))
        aspect = width / max(height, 1)
        if cw / ch > aspect:
            cw = max(8, int(ch * aspect))
        else:
            ch = max(8, int(cw / aspect))
        y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
        out = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_LINEAR)
        return out if rng.random() < 0.5 else out[:, ::-1].copy()


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    s = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img


def add_frame(plate: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The plate inside a dealer frame (chrome, black or coloured; a text bar below at times); returns the framed
    image and the plate's corners in it."""
    h, w = plate.shape[:2]
    t = max(2, int(h * rng.uniform(0.04, 0.14)))
    bottom = t + (int(h * rng.uniform(0.1, 0.25)) if rng.random() < 0.4 else 0)
    kind = rng.random()
    if kind < 0.4:  # chrome: a bright vertical gradient
        lo, hi = rng.uniform(90, 160), rng.uniform(190, 255)
        col = np.linspace(hi, lo, h + t + bottom)[:, None, None] * np.ones((1, w + 2 * t, 3))
    elif kind < 0.8:
        col = np.full((h + t + bottom, w + 2 * t, 3), rng.uniform(0, 60))
    else:
        col = np.ones((h + t + bottom, w + 2 * t, 3)) * rng.uniform(0, 255, 3)
    framed = col.astype(np.uint8)
    if bottom > t and rng.random() < 0.7:  # dealer text: a few light bars
        y = h + t + (bottom - t) // 3
        for _ in range(int(rng.integers(2, 6))):
            x0 = int(rng.integers(t, max(t + 1, w - 10)))
            framed[y:y + max(1, (bottom - t) // 3), x0:x0 + int(rng.integers(4, max(5, w // 4)))] = \
                rng.integers(120, 256, 3).astype(np.uint8)
    framed[t:t + h, t:t + w] = plate
    corners = np.float32([[t, t], [t + w, t], [t + w, t + h], [t, t + h]])
    return framed, corners


def random_pose(rng: np.random.Generator) -> tuple[float, float, float]:
    """(roll, yaw, pitch) in degrees: half near frontal, half up to 40 / 50 / 35 degrees."""
    if rng.random() < 0.5:
        return rng.normal(0, 6), rng.normal(0, 10), rng.normal(0, 8)
    return rng.uniform(-40, 40), rng.uniform(-50, 50), rng.uniform(-35, 35)


def warped_plate(plate: np.ndarray, layout: str, backgrounds: Backgrounds, rng: np.random.Generator,
                 width_px: float, roll: float, yaw: float, pitch: float, frame: bool | None = None,
                 jitter: bool = True, max_side: int = 0, cut: float = 0.0) -> WarpedPlate:
    """One plate turned by the given angles, ``width_px`` wide, in a background, cut out like a detector box.

    ``max_side`` > 0 renders the cut-out at most that large (a plate much larger than what consumes it is
    rendered smaller straight away: same geometry, less work). ``cut`` is the probability that one side of the
    cut-out runs through the plate (5-30 % of it lost), as when a close-up plate leaves the picture; its corners
    then lie outside the crop.
    """
    plate_img, inner = add_frame(plate, rng) if (frame if frame is not None else rng.random() < 0.5) else \
        (plate, np.float32([[0, 0], [plate.shape[1], 0], [plate.shape[1], plate.shape[0]], [0, plate.shape[0]]]))
    ph, pw = plate.shape[:2]
    quad = plate_quad(width_px, pw / ph, roll, yaw, pitch, distance=rng.uniform(2.5, 8.0) if jitter else 4.0)
    # The framed image's own corners follow from the plate's homography.
    m = cv2.getPerspectiveTransform(inner, quad)
    fh, fw = plate_img.shape[:2]
    outer = cv2.perspectiveTransform(np.float32([[[0, 0], [fw, 0], [fw, fh], [0, fh]]]), m)[0]
    box = _detector_box(outer if rng.random() < 0.6 else quad, rng, jitter)
    if cut and rng.random() < cut:
        box = _cut_through(box, quad, rng)
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    scale = 1.0
    if max_side and max(bw, bh) > max_side:
        scale = max_side / max(bw, bh)
    cw, ch = max(4, int(math.ceil(bw * scale))), max(4, int(math.ceil(bh * scale)))
    shift = np.float32([x0, y0])
    quad_c = (quad - shift) * scale
    outer_c = (outer - shift) * scale
    canvas = backgrounds.patch(rng, ch, cw)
    canvas = composite(canvas, plate_img, outer_c)
    canvas = photometric(canvas, rng, 0.8)
    return WarpedPlate(canvas, quad_c.astype(np.float32), layout)


def _cut_through(box: tuple[float, float, float, float], quad: np.ndarray,
                 rng: np.random.Generator) -> tuple[float, float, float, float]:
    """``box`` with one side moved into the plate by 5-30 % of the plate's extent on that axis."""
    x0, y0, x1, y1 = box
    qx0, qy0 = quad.min(axis=0)
    qx1, qy1 = quad.max(axis=0)
    f = rng.uniform(0.05, 0.3)
    side = int(rng.integers(4))
    if side == 0:
        x0 = qx0 + f * (qx1 - qx0)
    elif side == 1:
        x1 = qx1 - f * (qx1 - qx0)
    elif side == 2:
        y0 = qy0 + f * (qy1 - qy0)
    else:
        y1 = qy1 - f * (qy1 - qy0)
    return x0, y0, x1, y1


def _detector_box(pts: np.ndarray, rng: np.random.Generator, jitter: bool) -> tuple[float, float, float, float]:
    """Axis-aligned box of ``pts`` loosened/tightened like a detector's box, plus the engine's reading pad."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = x1 - x0, y1 - y0
    if jitter:
        x0 -= w * rng.uniform(-0.04, 0.12)
        x1 += w * rng.uniform(-0.04, 0.12)
        y0 -= h * rng.uniform(-0.04, 0.15)
        y1 += h * rng.uniform(-0.04, 0.15)
        w, h = x1 - x0, y1 - y0
    px, py = READING_PAD
    return x0 - w * px, y0 - h * py, x1 + w * px, y1 + h * py
