"""Plate rectification: between the plate detector and the reader, the plate's four corners are found inside the
detector's crop and the plate is warped to the upright rectangle the reader was trained on.

Backend: the project's corner regressor (:mod:`pipeline.plates.rectifier_net`, ONNX, trained on synthetic warps of
real plates by :mod:`pipeline.plates.train_rectifier`); it also tells the layout (car or motorcycle plate). A
crop the network cannot place (corners folded, a quad far smaller than the crop or far outside it) is passed on
unchanged, so rectification never loses a plate the reader could have read. See
``models/plate_rectifier/MODEL_CARD.md`` for the method, its measurements and why it was chosen.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.models.onnx_utils import create_session
from pipeline.plates.geometry import expand_quad, quad_size, rectify
from pipeline.plates.layout import CAR, LAYOUTS, MOTORCYCLE

logger = logging.getLogger(__name__)

ONNX_NAME = "plate_rectifier.onnx"
META_NAME = "plate_rectifier.json"
AUTO = "auto"
CAR_OUT_HW = (72, 144)  # 2:1, as the reader's training crops (it resizes them to its input; 108x216 read the same)
MOTO_OUT_HW = (168, 192)
"""A motorcycle plate's warp (re-laid into the car form by the reader): 1.5 times the 112x128 the reader's
motorcycle crops are trained at, so that the series letters keep their detail through the re-lay (area-averaged
down, not stretched up): never-seen motorcycle plates 40 -> 42 of 52 with the shipped recipe cross-fitted, 35 -> 38
with the stage-2 reader; car plates are not warped this way (model card)."""
# Margins added around the found corners, in fractions of the plate: the reader was trained on crops between
# 4 % tighter and 12-15 % looser than the plate, so a small margin keeps a slightly-off corner harmless.
CAR_MARGIN = (0.03, 0.05)
MOTO_MARGIN = (0.02, 0.02)
LAYOUT_SURE = 0.75  # a layout probability below this reads the plate both ways (``auto``)
LAYOUT_MARGIN = {CAR: CAR_MARGIN, MOTORCYCLE: MOTO_MARGIN}
LAYOUT_OUT_HW = {CAR: CAR_OUT_HW, MOTORCYCLE: MOTO_OUT_HW}
REFINE_MARGIN = (0.12, 0.25)  # second look: the first quad grown like a detector box around a frontal plate


@dataclass
class RectifiedPlate:
    """One plate ready for the reader: ``image`` upright, ``corners`` (TL, TR, BR, BL) in the source crop's
    pixels, ``layout`` ``car``/``motorcycle`` or ``auto`` when unsure, ``applied`` False when the crop was passed
    through unchanged."""

    image: np.ndarray
    corners: np.ndarray
    layout: str
    layout_confidence: float
    applied: bool
    warped_as: str = CAR  # the layout whose margins and size ``image`` was warped with (when ``applied``)


def _cross2(a: np.ndarray, b: np.ndarray) -> float:
    """The z of the cross product of two 2-D vectors (``np.cross`` refuses 2-D vectors from NumPy 2.5 on)."""
    return float(a[0] * b[1] - a[1] * b[0])


def _plausible(quad: np.ndarray, w: int, h: int) -> bool:
    """Corners in reading order (convex, clockwise), not tiny, not mostly outside the crop."""
    q = np.asarray(quad, np.float64)
    cross = [_cross2(q[(i + 1) % 4] - q[i], q[(i + 2) % 4] - q[(i + 1) % 4]) for i in range(4)]
    if not all(c > 0 for c in cross):  # image y points down: clockwise turns have a positive cross product
        return False
    pw, ph = quad_size(q)
    if pw < 0.25 * w or ph < 0.12 * h:
        return False
    cx, cy = q.mean(axis=0)
    return -0.25 * w <= cx <= 1.25 * w and -0.25 * h <= cy <= 1.25 * h


class PlateRectifier:
    """Batched corner regressor (ONNX Runtime) + perspective warp."""

    def __init__(self, model_dir: Path, device: str = "auto", threads: int = 0, refine: bool = True,
                 runtime: str = "onnxruntime") -> None:
        model_dir = Path(model_dir)
        onnx_path, meta_path = model_dir / ONNX_NAME, model_dir / META_NAME
        for p in (onnx_path, meta_path):
            if not p.is_file():
                raise FileNotFoundError(f"plate rectifier model file missing: {p}")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.input_hw = (int(meta["input"]["height"]), int(meta["input"]["width"]))
        self.layouts = tuple(meta.get("layouts", LAYOUTS))
        self.refine = refine
        self.session = create_session(onnx_path, device=device, threads=threads, runtime=runtime)
        logger.info("plate rectifier %s on %s", onnx_path, self.session.get_providers())

    def locate(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Corners ``[B, 4, 2]`` in each crop's pixels and layout probabilities ``[B, 2]``."""
        ih, iw = self.input_hw
        x = np.zeros((len(crops), ih, iw, 3), np.uint8)
        for i, crop in enumerate(crops):
            shrink = crop.shape[0] > ih or crop.shape[1] > iw
            x[i] = cv2.resize(crop, (iw, ih), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        corners, probs = self.session.run(None, {"image": x.transpose(0, 3, 1, 2).astype(np.float32)})
        sizes = np.float32([[c.shape[1], c.shape[0]] for c in crops])
        return corners.reshape(-1, 4, 2) * sizes[:, None, :], probs

    def refine_corners(self, crops: list[np.ndarray], corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Second look: each plate warped upright from its first corners (with a detector-like margin), located
        again, and the new corners mapped back into the crop; the network is most precise on near-frontal plates,
        so the residual error of a steep first look shrinks."""
        side = self.input_hw[0]
        views, inverse = [], []
        for crop, quad in zip(crops, corners, strict=True):
            outer = expand_quad(quad, *REFINE_MARGIN)
            dst = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
            m = cv2.getPerspectiveTransform(outer.astype(np.float32), dst)
            views.append(cv2.warpPerspective(crop, m, (side, side), flags=cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_REPLICATE))
            inverse.append(np.linalg.inv(m))
        second, probs = self.locate(views)
        mapped = np.stack([cv2.perspectiveTransform(q[None].astype(np.float64), inv)[0]
                           for q, inv in zip(second, inverse, strict=True)]).astype(np.float32)
        return mapped, probs

    def rectify_batch(self, crops: list[np.ndarray]) -> list[RectifiedPlate]:
        """Rectify BGR plate crops (the detector's box with the reading pad); one result per crop, same order."""
        valid = [i for i, c in enumerate(crops) if c is not None and c.ndim == 3 and min(c.shape[:2]) >= 4]
        out = [RectifiedPlate(c, np.zeros((4, 2), np.float32), AUTO, 0.0, False) for c in crops]
        if not valid:
            return out
        corners, probs = self.locate([crops[i] for i in valid])
        if self.refine:
            ok = [k for k, i in enumerate(valid) if _plausible(corners[k], crops[i].shape[1], crops[i].shape[0])]
            if ok:
                refined, probs2 = self.refine_corners([crops[valid[k]] for k in ok], corners[ok])
                corners[ok] = refined
                probs[ok] = (probs[ok] + probs2) / 2
        for i, quad, p in zip(valid, corners, probs, strict=True):
            crop = crops[i]
            k = int(p.argmax())
            conf = float(p[k])
            layout = self.layouts[k] if conf >= LAYOUT_SURE else AUTO
            if not _plausible(quad, crop.shape[1], crop.shape[0]):
                out[i] = RectifiedPlate(crop, quad, layout, conf, False)
                continue
            warped_as = MOTORCYCLE if self.layouts[k] == MOTORCYCLE else CAR
            image = rectify(crop, expand_quad(quad, *LAYOUT_MARGIN[warped_as]), LAYOUT_OUT_HW[warped_as])
            out[i] = RectifiedPlate(image, quad, layout, conf, True, warped_as)
        return out


def plate_margin(rectified: RectifiedPlate) -> tuple[float, float]:
    """The margins (fractions of the plate's width, height) ``rectified.image`` was warped with."""
    return LAYOUT_MARGIN[rectified.warped_as]


def load_plate_rectifier(model_dir: Path | None = None, device: str = "auto",
                         runtime: str = "onnxruntime") -> PlateRectifier:
    """The shipped rectifier (``<project_model_dir>/plate_rectifier``) on ``runtime`` (a resolved
    :data:`~pipeline.models.onnx_utils.RUNTIMES` name)."""
    from pipeline.settings import get_settings

    return PlateRectifier(model_dir or get_settings().project_model_dir / "plate_rectifier", device=device,
                          runtime=runtime)


__all__ = ["AUTO", "CAR", "MOTORCYCLE", "PlateRectifier", "RectifiedPlate", "load_plate_rectifier", "plate_margin",
           "reading_layout"]


def reading_layout(rectified: RectifiedPlate | None, vehicle_is_motorcycle: bool = False) -> str:
    """The layout to read a plate in: the rectifier's when it is sure, ``auto`` (both) when it is not or when it
    says car on a vehicle the detector calls a motorcycle; without a rectifier, ``car`` (``auto`` on motorcycles)."""
    if rectified is None:
        return AUTO if vehicle_is_motorcycle else CAR
    if vehicle_is_motorcycle and rectified.layout == CAR:
        return AUTO
    return rectified.layout
