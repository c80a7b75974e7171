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
    compare_many,
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
VARIANTS = [(rel, "int8") for rel in MODELS] + [(rel, "fp32") for rel in MODELS[:2]]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("rel", "precision"), VARIANTS)
def test_derived_graph_has_symbolic_batch(
    derived: tuple[Path, Path, list[Path]], model_dir: Path, rel: str, precision: str
) -> None:
    source = onnx.load(str(model_dir / rel), load_external_data=False)
    assert source.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1, "upstream file should be batch 1"
    model = onnx.load(str(derived_path(rel, derived[0], precision)))
    onnx.checker.check_model(model)
    for value in list(model.graph.input) + list(model.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        assert first.dim_param == BATCH_PARAM and not first.dim_value, f"{rel}: {value.name} batch dim {first}"
    ops = {n.op_type for n in model.graph.node}
    assert "DynamicQuantizeLinear" not in ops, "per-tensor dynamic quantisation left in the graph"
    if "int8" in rel:
        assert ("ConvInteger" in ops) == (precision == "int8")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("rel", "precision"), VARIANTS)
def test_batched_outputs_equal_batch1_on_dashcam_frames(
    derived: tuple[Path, Path, list[Path]], model_dir: Path, dashcam_frames: list[np.ndarray], rel: str,
    precision: str,
) -> None:
    path = derived_path(rel, derived[0], precision)
    # one batched call over 3 real frames vs the same file at batch 1 and (int8) vs the upstream batch-1 file
    own, upstream = compare_many([path, model_dir / rel], path, dashcam_frames[1:4])
    assert own.output_scale > 0
    assert own.max_abs_diff <= RELATIVE_TOLERANCE * own.output_scale, f"{rel}: {own}"
    if precision == "int8":  # the upstream arithmetic: batched derived == upstream run image by image
        assert upstream.max_abs_diff <= RELATIVE_TOLERANCE * upstream.output_scale, f"{rel}: {upstream}"


@pytest.mark.timeout(120)
def test_keeping_per_tensor_dynamic_quantisation_couples_the_batch(
    model_dir: Path, dashcam_frames: list[np.ndarray], tmp_path: Path
) -> None:
    """Why the rewrite exists: with only the shapes patched, an image's outputs depend on its batch-mates."""
    rel = "plate/license_plate_detector_int8.onnx"
    naive, _ = make_batch_dynamic(onnx.load(str(model_dir / rel)), per_sample_quantisation=False)
    onnx.save(naive, str(tmp_path / "naive.onnx"))
    result = compare_batched(model_dir / rel, tmp_path / "naive.onnx", dashcam_frames[:2])
    assert result.max_abs_diff > RELATIVE_TOLERANCE * result.output_scale


@pytest.mark.timeout(60)
def test_derived_manifest_records_each_file(derived: tuple[Path, Path, list[Path]], model_dir: Path) -> None:
    out, manifest, files = derived
    records = yaml.safe_load(manifest.read_text(encoding="utf-8"))["files"]
    assert sorted((r["source"], r["precision"].replace("unchanged (float graph)", "int8")) for r in records) == sorted(
        VARIANTS)
    for record, path in zip(records, files, strict=True):
        assert record["source_sha256"] == sha256_file(model_dir / record["source"])
        assert record["derived_sha256"] == sha256_file(path)
        assert record["max_abs_diff"] <= RELATIVE_TOLERANCE * record["output_scale"]
        if record["precision"] != "fp32":
            assert record["source_max_abs_diff"] <= RELATIVE_TOLERANCE * record["output_scale"]
        else:
            assert record["extra"]["upstream_noise_floor_max_abs_diff"] > 0
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
def test_fp32_variant_finds_the_same_plate_as_the_upstream_int8_model(
    derived: tuple[Path, Path, list[Path]], model_dir: Path, shared_dir: Path
) -> None:
    import cv2

    from pipeline.models.plate_detector import load_plate_detector

    rel = "plate/license_plate_detector_int8.onnx"
    path = derived_path(rel, derived[0], "fp32")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "ConvInteger" not in ops and "DynamicQuantizeLinear" not in ops and "Conv" in ops
    image = cv2.imread(str(shared_dir / "data" / "plates_thai_smoke" / "images" / "car_image.jpg"))
    fp32 = load_plate_detector(path, device="cpu").detect_batch([image])[0]
    int8 = load_plate_detector(model_dir / rel, device="cpu").detect_batch([image])[0]
    assert len(fp32) == len(int8) >= 1
    assert np.abs(fp32.xyxy[0] - int8.xyxy[0]).max() < 0.05 * (int8.xyxy[0, 2] - int8.xyxy[0, 0])


def test_precision_choice(model_set: object) -> None:
    from pipeline.models.registry import resolve_precision

    cpu, cuda = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_precision("auto", cpu) == resolve_precision("auto", cuda) == "fp32"
    assert resolve_precision("int8", cpu) == "int8"
    assert resolve_precision("int8-static", cuda) == "int8-static"  # asked for: kept
    assert model_set.precisions == {"vehicles": "fp32", "plates": "fp32"}
    assert model_set.files["vehicles"].name.endswith(".batch.fp32.onnx")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4", ["CPUExecutionProvider"])
