"""Missing or corrupt model files give the standard ModelFileError naming file, sha256 and fetch command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.config import EngineConfig
from pipeline.models.registry import load_model_set
from pipeline.models_manifest import FETCH_COMMAND, ModelFileError, entry_for


@pytest.mark.timeout(60)
def test_truncated_detector_file_is_reported(model_dir: Path, tmp_path: Path) -> None:
    rel = "yolo/yolov8n_int8.onnx"
    target = tmp_path / "models" / rel
    target.parent.mkdir(parents=True)
    data = (model_dir / rel).read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as info:
        load_model_set(EngineConfig(), model_dir=tmp_path / "models", device="cpu", derived_dir=tmp_path / "derived")
    message = str(info.value)
    assert str(target) in message and entry_for(rel).sha256 in message and FETCH_COMMAND in message
    assert not (tmp_path / "derived").exists() or not any((tmp_path / "derived").rglob("*.onnx"))


@pytest.mark.timeout(60)
def test_missing_face_recogniser_is_reported(model_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    for rel in ("yolo/yolov8n_int8.onnx", "plate/license_plate_detector_int8.onnx",
                "insightface/models/buffalo_s/det_500m.onnx"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(model_dir / rel, models / rel)
    derived = tmp_path / "derived"
    with pytest.raises(ModelFileError) as info:
        load_model_set(EngineConfig(), model_dir=models, device="cpu", derived_dir=derived)
    rel = "insightface/models/buffalo_s/mobilefacenet.onnx"
    message = str(info.value)
    assert "mobilefacenet.onnx" in message and "missing" in message
    assert entry_for(rel).sha256 in message and FETCH_COMMAND in message
