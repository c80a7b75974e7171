"""Checks shared by the runtime tests (OpenVINO, PyTorch): the derived model files and the same detections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.engine.tracking import iou_matrix


def derived_file(derived: tuple[Path, Path, list[Path]], name: str) -> Path:
    """The derived model file called ``name`` of the session's ``derived`` fixture."""
    return next(p for p in derived[2] if p.name == name)


def assert_same_detections(reference: Any, other: Any, frames: list[np.ndarray], min_iou: float) -> int:  # noqa: ANN401
    """Both detectors find as many boxes in every frame, pairwise (by confidence) of the same class and at IoU above
    ``min_iou``; the number of boxes found (the caller asserts there were some)."""
    found = 0
    for ref, got in zip(reference.detect_batch(frames), other.detect_batch(frames), strict=True):
        assert len(ref) == len(got)
        found += len(ref)
        if not len(ref):
            continue
        order_ref, order_got = np.argsort(-ref.confidence), np.argsort(-got.confidence)
        ious = np.diag(iou_matrix(ref.xyxy[order_ref], got.xyxy[order_got]))
        assert (ious > min_iou).all(), ious
        assert (ref.class_id[order_ref] == got.class_id[order_got]).all()
    return found


def assert_vehicle_detector_on(runtime: str, provider: str, derived: tuple[Path, Path, list[Path]],
                               frames: list[np.ndarray], min_iou: float) -> None:
    """The fp32 vehicle detector on ``runtime``: reported as such (``provider``), the same input shape and ONNX
    metadata as on ONNX Runtime, and the same vehicles in ``frames``."""
    from pipeline.models.onnx_utils import session_runtime
    from pipeline.models.yolo import TRAFFIC_CLASSES, YoloOnnxDetector

    path = derived_file(derived, "yolov8n_int8.batch.fp32.onnx")
    reference = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu")
    other = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", runtime=runtime)
    assert session_runtime(other.session) == runtime and other.providers == [provider]
    assert other.session.get_inputs()[0].shape == ["batch", 3, 640, 640]
    assert other.imgsz == reference.imgsz == 640 and other.names == reference.names  # ONNX metadata read
    assert assert_same_detections(reference, other, frames, min_iou) > 0
