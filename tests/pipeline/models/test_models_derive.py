"""Derived batch-capable ONNX models: symbolic batch, batched == batch-1 on real frames, records, reuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from pipeline.models.derive import (
    BATCH_PARAM,
    RELATIVE_TOLERANCE,
    batch_model_path,
    compare_batched,
    derived_path,
    make_batch_dynamic,
)
from pipeline.models_manifest import sha256_file

MODELS = [
    "yolo/yolov8n_int8.onnx",
    "plate/license_plate_detector_int8.onnx",
    "insightface/models/buffalo_s/det_500m.onnx",
    "insightface/models/buffalo_s/mobilefacenet.onnx",
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rel", MODELS)
def test_derived_graph_has_symbolic_batch(derived: tuple[Path, Path, list[Path]], model_dir: Path, rel: str) -> None:
    source = onnx.load(str(model_dir / rel), load_external_data=False)
    assert source.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1, "upstream file should be batch 1"
    model = onnx.load(str(derived_path(rel, derived[0])))
    onnx.checker.check_model(model)
    for value in list(model.graph.input) + list(model.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        assert first.dim_param == BATCH_PARAM and not first.dim_value, f"{rel}: {value.name} batch dim {first}"
    assert not any(n.op_type == "DynamicQuantizeLinear" for n in model.graph.node), "per-tensor dynamic quant left"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rel", MODELS)
def test_batched_outputs_equal_batch1_on_dashcam_frames(
    derived: tuple[Path, Path, list[Path]], model_dir: Path, dashcam_frames: list[np.ndarray], rel: str
) -> None:
    max_diff, scale = compare_batched(model_dir / rel, derived_path(rel, derived[0]), dashcam_frames[:3])
    assert scale > 0
    assert max_diff <= RELATIVE_TOLERANCE * scale, f"{rel}: max abs diff {max_diff} vs output scale {scale}"


@pytest.mark.timeout(120)
def test_keeping_per_tensor_dynamic_quantisation_couples_the_batch(
    model_dir: Path, dashcam_frames: list[np.ndarray], tmp_path: Path
) -> None:
    """Why the rewrite exists: with only the shapes patched, an image's outputs depend on its batch-mates."""
    rel = "plate/license_plate_detector_int8.onnx"
    naive, _ = make_batch_dynamic(onnx.load(str(model_dir / rel)), per_sample_quantisation=False)
    onnx.save(naive, str(tmp_path / "naive.onnx"))
    max_diff, scale = compare_batched(model_dir / rel, tmp_path / "naive.onnx", dashcam_frames[:3])
    assert max_diff > RELATIVE_TOLERANCE * scale


@pytest.mark.timeout(60)
def test_derived_manifest_records_each_file(derived: tuple[Path, Path, list[Path]], model_dir: Path) -> None:
    out, manifest, files = derived
    records = yaml.safe_load(manifest.read_text(encoding="utf-8"))["files"]
    assert [r["source"] for r in records] == MODELS
    for record, path in zip(records, files, strict=True):
        assert record["source_sha256"] == sha256_file(model_dir / record["source"])
        assert record["derived_sha256"] == sha256_file(path)
        assert record["max_abs_diff"] <= RELATIVE_TOLERANCE * record["output_scale"]
        assert record["transformation"] and record["date"] and "tolerance" in record


@pytest.mark.timeout(120)
def test_valid_derived_file_is_reused_and_a_tampered_one_rederived(
    derived: tuple[Path, Path, list[Path]], model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rel = "insightface/models/buffalo_s/mobilefacenet.onnx"
    out = tmp_path / "derived"
    src = derived_path(rel, derived[0])
    target = derived_path(rel, out)
    target.parent.mkdir(parents=True)
    shutil.copy(src, target)
    shutil.copy(src.with_name(src.name + ".json"), target.with_name(target.name + ".json"))
    before = target.stat().st_mtime_ns
    assert batch_model_path(rel, model_dir, out) == target
    assert target.stat().st_mtime_ns == before, "a valid derived file must not be derived again"

    target.write_bytes(target.read_bytes()[:-100])  # truncated: its sha256 no longer matches the sidecar
    assert batch_model_path(rel, model_dir, out) == target
    record = json.loads(target.with_name(target.name + ".json").read_text(encoding="utf-8"))
    assert record["derived_sha256"] == sha256_file(target)
    assert "deriving it again" in caplog.text


@pytest.mark.timeout(60)
def test_missing_derived_file_is_derived_on_first_load(model_dir: Path, tmp_path: Path) -> None:
    rel = "insightface/models/buffalo_s/mobilefacenet.onnx"
    path = batch_model_path(rel, model_dir, tmp_path)
    assert path == derived_path(rel, tmp_path) and path.exists()


@pytest.mark.timeout(120)
def test_fp32_variant_is_batch_exact_and_finds_the_same_plate(
    model_dir: Path, dashcam_frames: list[np.ndarray], shared_dir: Path, tmp_path: Path
) -> None:
    import cv2

    from pipeline.models.derive import derive_model
    from pipeline.models.plate_detector import load_plate_detector

    rel = "plate/license_plate_detector_int8.onnx"
    record = derive_model(model_dir / rel, rel, tmp_path, dashcam_frames[:2], "dashcam", precision="fp32")
    path = derived_path(rel, tmp_path, "fp32")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "ConvInteger" not in ops and "DynamicQuantizeLinear" not in ops and "Conv" in ops
    assert record.max_abs_diff <= RELATIVE_TOLERANCE * record.output_scale
    assert record.extra["max_abs_diff_vs_int8_source"] > 0  # a different arithmetic, recorded as such

    image = cv2.imread(str(shared_dir / "data" / "plates_thai_smoke" / "images" / "car_image.jpg"))
    fp32 = load_plate_detector(path, device="cpu").detect_batch([image])[0]
    int8 = load_plate_detector(model_dir / rel, device="cpu").detect_batch([image])[0]
    assert len(fp32) == len(int8) >= 1
    assert np.abs(fp32.xyxy[0] - int8.xyxy[0]).max() < 0.05 * (int8.xyxy[0, 2] - int8.xyxy[0, 0])


def test_auto_precision_is_int8_on_cpu_and_fp32_on_cuda() -> None:
    from pipeline.models.registry import resolve_precision

    assert resolve_precision("auto", ["CPUExecutionProvider"]) == "int8"
    assert resolve_precision("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == "fp32"
    assert resolve_precision("fp32", ["CPUExecutionProvider"]) == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4", ["CPUExecutionProvider"])
