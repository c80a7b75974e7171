"""Minimal YOLOv8 ONNX detector and the vehicle -> plate cascade used by the plate benchmarks.

Uses ONNX Runtime directly (letterbox, decode ``[1, 4 + nc, N]``, class-wise NMS with ``cv2.dnn.NMSBoxes``), so
the benchmarks do not depend on the project's batched engine. Model files come from
``pipeline.settings.get_settings().model_dir``: ``yolo/yolov8n_int8.onnx`` (COCO) and
``plate/license_plate_detector_int8.onnx`` (one class, 320x320).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

VEHICLE_CLASSES = (2, 3, 5, 7)  # COCO car, motorcycle, bus, truck


@dataclass
class Detections:
    """Boxes ``[N, 4]`` as x1, y1, x2, y2 in image pixels, scores ``[N]``, class ids ``[N]``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty() -> Detections:
        """No detections."""
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by NMS (boxes x1y1x2y2)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


class YoloOnnx:
    """YOLOv8 ONNX model with a fixed square input (batch 1)."""

    def __init__(self, path: Path, conf: float = 0.25, iou: float = 0.5, device: str = "auto",
                 threads: int = 2) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise FileNotFoundError(f"detector model file missing: {path}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), so, providers=_providers(device))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[2])
        self.conf = conf
        self.iou = iou

    def detect(self, img: np.ndarray, classes: tuple[int, ...] | None = None,
               conf: float | None = None) -> Detections:
        """Detect on a BGR image; boxes are returned in the image's pixel coordinates."""
        conf = self.conf if conf is None else conf
        h, w = img.shape[:2]
        if h < 2 or w < 2:
            return Detections.empty()
        r = min(self.size / h, self.size / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        canvas = np.full((self.size, self.size, 3), 114, np.uint8)
        top, left = (self.size - nh) // 2, (self.size - nw) // 2
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        canvas[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=interp)
        x = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0][0].T  # N, 4+nc
        cls_scores = out[:, 4:]
        cls = cls_scores.argmax(1)
        score = cls_scores[np.arange(len(cls)), cls]
        m = score >= conf
        if classes is not None:
            m &= np.isin(cls, classes)
        if not m.any():
            return Detections.empty()
        b, score, cls = out[m, :4], score[m], cls[m]
        boxes = np.column_stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2,
                                 b[:, 1] + b[:, 3] / 2])
        boxes = (boxes - np.array([left, top, left, top], np.float32)) / r
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        # Class-wise NMS via coordinate offsets.
        keep = nms(boxes + cls[:, None].astype(np.float32) * 10000.0, score, self.iou)
        return Detections(boxes[keep], score[keep].astype(np.float32), cls[keep].astype(np.int64))


class PlateCascade:
    """Plates from the full frame plus plates found inside COCO vehicle crops, merged by NMS."""

    def __init__(self, model_dir: Path | None = None, vehicle_conf: float = 0.25, plate_conf: float = 0.25,
                 margin: float = 0.1, merge_iou: float = 0.5, device: str = "auto") -> None:
        if model_dir is None:
            from pipeline.settings import get_settings

            model_dir = get_settings().model_dir
        self.vehicles = YoloOnnx(Path(model_dir) / "yolo" / "yolov8n_int8.onnx", conf=vehicle_conf, device=device)
        self.plates = YoloOnnx(Path(model_dir) / "plate" / "license_plate_detector_int8.onnx", conf=plate_conf,
                               device=device)
        self.margin = margin
        self.merge_iou = merge_iou

    def full_frame(self, img: np.ndarray, conf: float | None = None) -> Detections:
        """Plate detector on the whole (letterboxed) frame."""
        return self.plates.detect(img, conf=conf)

    def vehicle_crops(self, img: np.ndarray) -> Detections:
        """COCO vehicles (car, motorcycle, bus, truck)."""
        return self.vehicles.detect(img, classes=VEHICLE_CLASSES)

    def cascade(self, img: np.ndarray, conf: float | None = None) -> tuple[Detections, Detections]:
        """Return (plates, vehicles): plates from vehicle crops and the full frame, merged by NMS."""
        h, w = img.shape[:2]
        veh = self.vehicle_crops(img)
        boxes = []
        scores = []
        full = self.full_frame(img, conf)
        boxes.append(full.boxes)
        scores.append(full.scores)
        for x1, y1, x2, y2 in veh.boxes:
            mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
            cx1, cy1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
            cx2, cy2 = int(min(w, x2 + mx)), int(min(h, y2 + my))
            if cx2 - cx1 < 16 or cy2 - cy1 < 16:
                continue
            det = self.plates.detect(img[cy1:cy2, cx1:cx2], conf=conf)
            boxes.append(det.boxes + np.array([cx1, cy1, cx1, cy1], np.float32))
            scores.append(det.scores)
        all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
        all_scores = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        keep = nms(all_boxes, all_scores, self.merge_iou)
        plates = Detections(all_boxes[keep], all_scores[keep], np.zeros(len(keep), np.int64))
        return plates, veh


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a [N,4]`` and ``b [M,4]`` (x1y1x2y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
