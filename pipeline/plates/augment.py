"""CCTV-like augmentation of plate crops (numpy/OpenCV, cheap enough to run in the training loop).

Geometry: perspective/rotation/scale jitter with loose and tight crops (as a plate detector gives).
Photometry: blur (Gaussian, motion), low resolution, low light with sensor noise, contrast/colour changes,
glare, partial occlusion, grayscale (IR night) and JPEG compression.
"""

from __future__ import annotations

import cv2
import numpy as np


def _perspective(img: np.ndarray, out_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    oh, ow = out_hw
    # Crop looseness: negative = tighter than the label box, positive = looser (padding).
    mx = rng.uniform(-0.04, 0.12) * w
    my = rng.uniform(-0.04, 0.15) * h
    jit = 0.06
    src = np.float32([[-mx, -my], [w + mx, -my], [w + mx, h + my], [-mx, h + my]])
    src += rng.uniform(-jit, jit, size=(4, 2)).astype(np.float32) * np.float32([w, h])
    # Small rotation about the centre.
    ang = np.deg2rad(rng.normal(0, 3.0))
    c = np.float32([w / 2, h / 2])
    rot = np.float32([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    src = (src - c) @ rot.T + c
    # Random horizontal/vertical shift.
    src += np.float32([rng.uniform(-0.04, 0.04) * w, rng.uniform(-0.05, 0.05) * h])
    dst = np.float32([[0, 0], [ow, 0], [ow, oh], [0, oh]])
    m = cv2.getPerspectiveTransform(src, dst)
    if rng.random() < 0.5:
        border, val = cv2.BORDER_REPLICATE, (0, 0, 0)
    else:
        border, val = cv2.BORDER_CONSTANT, tuple(int(v) for v in rng.integers(0, 256, 3))
    return cv2.warpPerspective(img, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=val)


def _motion_kernel(k: int, rng: np.random.Generator) -> np.ndarray:
    ker = np.zeros((k, k), np.float32)
    ker[k // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    ker = cv2.warpAffine(ker, rot, (k, k))
    return ker / max(float(ker.sum()), 1e-6)


LOW_RES = (0.35, 0.75)
"""Range of the low-resolution step's scale (shrunk to this share of the crop's size and enlarged back): at the
reader's 192 px input width, plates 67-144 px wide."""


def augment(img: np.ndarray, out_hw: tuple[int, int], rng: np.random.Generator, strength: float = 1.0,
            low_res: tuple[float, float] = LOW_RES) -> np.ndarray:
    """Return an augmented BGR ``uint8`` crop of size ``out_hw`` = (H, W)."""
    return photometric(geometric(img, out_hw, rng), rng, strength, low_res)


def geometric(img: np.ndarray, out_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Perspective, rotation, shift and loose/tight framing jitter (as a plate detector and rectifier leave)."""
    return _perspective(img, out_hw, rng)


def photometric(out: np.ndarray, rng: np.random.Generator, strength: float = 1.0,
                low_res: tuple[float, float] = LOW_RES) -> np.ndarray:
    """Light, colour, glare, blur, resolution (``low_res``: the range of the scale it is shrunk to and enlarged
    back from), occlusion, noise, monochrome and JPEG changes of a BGR crop."""
    oh, ow = out.shape[:2]
    x = out.astype(np.float32)
    p = strength
    if rng.random() < 0.5 * p:  # contrast / brightness / colour cast
        x = (x - 128) * rng.uniform(0.6, 1.3) + 128 + rng.uniform(-40, 40)
        x *= rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    if rng.random() < 0.25 * p:  # low light: gamma darkening
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(1.3, 2.5) * rng.uniform(0.35, 0.9)
    if rng.random() < 0.15 * p:  # glare: bright blob
        yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)
        cy, cx = rng.uniform(0, oh), rng.uniform(0, ow)
        sy, sx = rng.uniform(0.1, 0.4) * oh, rng.uniform(0.1, 0.4) * ow
        blob = np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2) / 2)
        x = x + blob[..., None] * rng.uniform(80, 220)
    x = np.clip(x, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.2 * p:
        k = int(rng.choice([3, 5]))
        x = cv2.GaussianBlur(x, (k, k), rng.uniform(0.5, 1.5))
    elif r < 0.35 * p:
        x = cv2.filter2D(x, -1, _motion_kernel(int(rng.choice([3, 5, 7])), rng))
    if rng.random() < 0.3 * p:  # low resolution
        f = rng.uniform(*low_res)
        small = cv2.resize(x, (max(8, int(ow * f)), max(4, int(oh * f))), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (ow, oh), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.12 * p:  # partial occlusion (small bar or blob, e.g. tow hitch, frame, dirt)
        bw, bh = int(rng.uniform(0.03, 0.12) * ow), int(rng.uniform(0.1, 0.4) * oh)
        x0, y0 = int(rng.uniform(0, ow - bw)), int(rng.uniform(0, oh - bh))
        x = x.copy()
        x[y0:y0 + bh, x0:x0 + bw] = rng.integers(0, 256, 3).astype(np.uint8)
    if rng.random() < 0.3 * p:  # sensor noise
        x = np.clip(x.astype(np.float32) + rng.normal(0, rng.uniform(3, 15), x.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.1 * p:  # IR / monochrome camera
        g = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)
        x = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.4 * p:  # JPEG artefacts
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(15, 70))])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return x
