"""Plate geometry: plates seen under an angle (corners of a projected plate, compositing into a scene) and the
inverse, warping a plate's four corners back to the upright rectangle the reader expects.

Corners are always ordered in the plate's own reading frame: top-left, top-right, bottom-right, bottom-left
(``[4, 2]`` float32, x then y), whatever the rotation in the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

UNIT_SQUARE = np.float32([[0, 0], [1, 0], [1, 1], [0, 1]])
READING_PAD = (0.06, 0.12)  # the reader's crop: the plate detector's box grown by 6 % / 12 % of its width / height


def reading_pad_pixels(hw: tuple[int, ...]) -> tuple[int, int]:
    """The reading pad (x, y pixels) of a tight plate crop of shape ``hw``: :data:`READING_PAD` of its width and
    height."""
    return round(READING_PAD[0] * hw[1]), round(READING_PAD[1] * hw[0])


def _rotation(roll: float, yaw: float, pitch: float) -> np.ndarray:
    """Rotation matrix for angles in degrees: roll about the view axis, yaw about the vertical, pitch about the
    horizontal axis."""
    r, y, p = (math.radians(a) for a in (roll, yaw, pitch))
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rz @ ry @ rx


def plate_quad(width_px: float, aspect: float, roll: float = 0.0, yaw: float = 0.0, pitch: float = 0.0,
               distance: float = 4.0) -> np.ndarray:
    """Image corners of a plate (``aspect`` = width / height) turned by ``roll``/``yaw``/``pitch`` degrees and seen
    by a pin-hole camera ``distance`` plate widths away; scaled so that the plate's width in the image (mean of
    its top and bottom edges) is ``width_px``; centred on (0, 0)."""
    w, h = 1.0, 1.0 / aspect
    pts = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    cam = pts @ _rotation(roll, yaw, pitch).T + np.array([0, 0, distance])
    xy = cam[:, :2] / cam[:, 2:3]
    edge = (np.linalg.norm(xy[1] - xy[0]) + np.linalg.norm(xy[2] - xy[3])) / 2
    xy = xy * (width_px / edge)
    xy -= xy.mean(axis=0)
    return xy.astype(np.float32)


def composite(background: np.ndarray, plate: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """``background`` (BGR, not modified) with ``plate`` warped onto ``quad`` (anti-aliased edges)."""
    h, w = plate.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, np.asarray(quad, np.float32))
    size = (background.shape[1], background.shape[0])
    warped = cv2.warpPerspective(plate, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, size, flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return (background.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha).astype(np.uint8)


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    """The plate's width and height in image pixels (mean of opposite edges)."""
    q = np.asarray(quad, np.float32)
    width = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    height = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    return float(width), float(height)


def expand_quad(quad: np.ndarray, mx: float, my: float) -> np.ndarray:
    """The quad grown by ``mx`` of its width left and right and ``my`` of its height above and below, along its
    own axes (through the homography of the unit square, so perspective is respected)."""
    m = cv2.getPerspectiveTransform(UNIT_SQUARE, np.asarray(quad, np.float32))
    grown = np.float32([[-mx, -my], [1 + mx, -my], [1 + mx, 1 + my], [-mx, 1 + my]])
    return cv2.perspectiveTransform(grown[None], m)[0]


def rectify(image: np.ndarray, quad: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Warp the region inside ``quad`` (corners TL, TR, BR, BL in ``image`` pixels) to an upright ``out_hw`` image.

    When the plate is larger than the output it is first warped at up to twice the output's size and then shrunk
    with area averaging, so that large plates do not alias. Pixels outside the image repeat its border.
    """
    oh, ow = out_hw
    pw, ph = quad_size(quad)
    k = int(min(2, max(1, math.floor(min(pw / ow, ph / oh)))))
    dst = np.float32([[0, 0], [ow * k, 0], [ow * k, oh * k], [0, oh * k]])
    m = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), dst)
    out = cv2.warpPerspective(image, m, (ow * k, oh * k), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if k > 1:
        out = cv2.resize(out, (ow, oh), interpolation=cv2.INTER_AREA)
    return out


def quad_angles(quad: np.ndarray) -> tuple[float, float]:
    """In-plane rotation of the top edge (degrees) and the largest corner-angle deviation from 90 degrees
    (a measure of perspective/shear); both 0 for an upright rectangle."""
    q = np.asarray(quad, np.float64)
    top = q[1] - q[0]
    roll = math.degrees(math.atan2(top[1], top[0]))
    dev = 0.0
    for i in range(4):
        a, b = q[i - 1] - q[i], q[(i + 1) % 4] - q[i]
        cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        dev = max(dev, abs(90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos))))))
    return roll, dev


def crop_box(frame: np.ndarray, box: Sequence[float], pad_x: float = 0.0, pad_y: float = 0.0) -> tuple[np.ndarray, int, int]:
    """Crop ``box`` (xyxy) padded by fractions of its size; return the crop and its top-left offset."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    x1, x2 = int(max(0, np.floor(x1 - pad_x * bw))), int(min(width, np.ceil(x2 + pad_x * bw)))
    y1, y2 = int(max(0, np.floor(y1 - pad_y * bh))), int(min(height, np.ceil(y2 + pad_y * bh)))
    return frame[y1:y2, x1:x2], x1, y1
