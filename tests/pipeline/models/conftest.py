"""Shared, session-scoped model fixtures for the model tests (models are loaded and derived once)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import EngineConfig
from pipeline.models.derive import derive_all
from pipeline.models.registry import ModelSet, load_model_set


@pytest.fixture(scope="session")
def model_dir(shared_dir: Path) -> Path:
    """The shared offline model mirror."""
    return shared_dir / "models"


@pytest.fixture(scope="session")
def derived(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> tuple[Path, Path, list[Path]]:
    """``(derived_dir, derived.yaml, files)``: every manifest ONNX model derived once into a temporary folder."""
    out = tmp_path_factory.mktemp("derived")
    manifest = out / "derived.yaml"
    files = derive_all(
        model_dir,
        out,
        manifest_path=manifest,
        relative_paths=[
            "yolo/yolov8n_int8.onnx",
            "plate/license_plate_detector_int8.onnx",
            "insightface/models/buffalo_s/det_500m.onnx",
            "insightface/models/buffalo_s/mobilefacenet.onnx",
        ],
        check_count=2,
        record_naive=False,
        precisions=("int8", "fp32"),
    )
    return out, manifest, files


@pytest.fixture(scope="session")
def model_set(derived: tuple[Path, Path, list[Path]], model_dir: Path) -> ModelSet:
    """The engine's model set on the CPU with the default precision, using the derived batch-capable files."""
    return load_model_set(EngineConfig(), model_dir=model_dir, device="cpu", derived_dir=derived[0])


@pytest.fixture(scope="session")
def dashcam_frames(shared_dir: Path) -> list[np.ndarray]:
    """Four frames of the Thai night dashcam clip, read with OpenCV."""
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "thai_bangkok_night_dashcam_bus.mp4"))
    frames = []
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for pos in (0.2, 0.4, 0.6, 0.8):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(pos * total))
            ok, frame = cap.read()
            assert ok, f"cannot read frame at {pos:.0%} of the dashcam clip"
            frames.append(frame)
    finally:
        cap.release()
    return frames
