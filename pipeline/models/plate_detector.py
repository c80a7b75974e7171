"""Licence-plate detector (one-class Ultralytics YOLO, 320 px) run batched on vehicle crops."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.detections import Detections
from pipeline.models.yolo import UltralyticsDetector, YoloOnnxDetector, load_yolo_detector

logger = logging.getLogger(__name__)

PLATE_CLASS = 0


class PlateDetector:
    """Finds plates in vehicle crops; ``detect_batch(crops)`` returns boxes in each crop's own pixels."""

    def __init__(self, detector: YoloOnnxDetector | UltralyticsDetector) -> None:
        self.detector = detector

    def detect_batch(self, crops: list[np.ndarray]) -> list[Detections]:
        """Detect plates in every crop with one batched network call (class id 0)."""
        return self.detector.detect_batch(crops)


def load_plate_detector(
    path: Path, conf: float = 0.25, iou: float = 0.45, device: str = "auto", backend: str = "auto",
    max_batch: int | None = None,
) -> PlateDetector:
    """Load the plate detector from an ONNX file (ONNX Runtime) or any Ultralytics format."""
    return PlateDetector(
        load_yolo_detector(path, conf=conf, iou=iou, classes=None, device=device, backend=backend, max_batch=max_batch)
    )


def crop_boxes(frame: np.ndarray, xyxy: np.ndarray, margin: float = 0.0) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Cut ``frame`` at each box (grown by ``margin`` of its size); returns ``(crop, (x0, y0))`` per box.

    Plate boxes found in a crop map back to the frame with ``Detections.with_offset(x0, y0)``.
    """
    h, w = frame.shape[:2]
    out: list[tuple[np.ndarray, tuple[int, int]]] = []
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float32).reshape(-1, 4):
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        x0, y0 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
        x3, y3 = int(min(w, np.ceil(x2 + mx))), int(min(h, np.ceil(y2 + my)))
        x3, y3 = max(x3, x0 + 1), max(y3, y0 + 1)
        out.append((frame[y0:y3, x0:x3], (x0, y0)))
    return out
