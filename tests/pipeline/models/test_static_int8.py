"""The static int8 plate detector (``engine.model_precision: int8-static``): calibrated on real frames, head float,
batch-safe, the same plates as its fp32 source on real motorcycle photos, on both runtimes and both canvases."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from pipeline.models.derive import batch_model_path, derived_path
from pipeline.models.onnx_utils import box_overlap
from pipeline.models.plate_detector import load_plate_detector
from pipeline.models.static_int8 import (
    CALIBRATION_FRAMES_PER_VIDEO,
    StaticQuantisationError,
    calibration_images,
    head_exclusions,
)
from pipeline.settings import get_settings

PLATE = "plate/license_plate_detector_int8.onnx"


@pytest.fixture(scope="module")
def static_plate(derived: tuple[Path, Path, list[Path]], model_dir: Path) -> Path:
    """The static int8 plate detector, derived on first use into the session's derived folder."""
    path = batch_model_path(PLATE, model_dir, derived[0], "int8-static")
    assert path == derived_path(PLATE, derived[0], "int8-static")
    return path


@pytest.fixture(scope="module")
def moto_photos(shared_dir: Path) -> list[np.ndarray]:
    """Sixteen whole motorcycle photos (every sixth row of ``detection.csv``)."""
    folder = shared_dir / "data" / "plates_thai_moto"
    with (folder / "detection.csv").open(encoding="utf-8") as f:
        paths = sorted({row["relative_path"] for row in csv.DictReader(f)})
    return [cv2.imread(str(folder / p)) for p in paths[::6][:16]]


def test_calibration_images_are_frames_and_tiles_of_every_clip(shared_dir: Path, tmp_path: Path) -> None:
    videos = shared_dir / "data" / "videos"
    images = calibration_images(videos)
    assert len(images) == 2 * CALIBRATION_FRAMES_PER_VIDEO * len(list(videos.glob("*.mp4")))
    frames, tiles = images[0::2], images[1::2]
    assert all(t.shape[0] == t.shape[1] == min(f.shape[:2]) // 2 for f, t in zip(frames, tiles, strict=True))
    assert all(float(im.std()) > 5 for im in images)  # real pictures, not blank frames
    again = calibration_images(videos)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))  # seeded: the same every time
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(StaticQuantisationError, match=str(tmp_path)):
        calibration_images(tmp_path)


@pytest.mark.timeout(300)
def test_static_graph_is_int8_with_a_float_head_and_batch_safe(static_plate: Path, derived: tuple) -> None:
    model = onnx.load(str(static_plate))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 20 and ops.count("DequantizeLinear") >= 40
    assert "ConvInteger" not in ops and "DynamicQuantizeLinear" not in ops
    fp32 = onnx.load(str(derived_path(PLATE, derived[0], "fp32")))
    head = set(head_exclusions(fp32))
    assert any("/dfl/" in n for n in head) and any("cv2.0.2/Conv" in n for n in head)
    assert not any("cv2.0.0" in n for n in head)  # the head's 3x3 blocks are quantised
    produced = {o: n for n in model.graph.node for o in n.output}
    dfl = next(n for n in model.graph.node if n.op_type == "Conv" and "/dfl/" in n.name)
    assert produced[dfl.input[0]].op_type != "DequantizeLinear"  # box decoding stays float
    record = json.loads(static_plate.with_name(static_plate.name + ".json").read_text(encoding="utf-8"))
    assert record["precision"] == "int8-static" and record["max_abs_diff"] == 0.0  # batched == batch-1
    assert "calibration images" in " ".join(record["transformation"])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("canvas", ["square", "fit"])
def test_static_detector_finds_the_plates_of_its_fp32_source(
    static_plate: Path, derived: tuple, moto_photos: list[np.ndarray], runtime: str, canvas: str
) -> None:
    if runtime == "openvino":
        pytest.importorskip("openvino")
    fp32 = load_plate_detector(derived_path(PLATE, derived[0], "fp32"), device="cpu", canvas=canvas)
    static = load_plate_detector(static_plate, device="cpu", runtime=runtime, canvas=canvas)
    want = fp32.detect_batch(moto_photos)
    got = static.detect_batch(moto_photos)
    sure = matched = extra = 0
    for a, b in zip(want, got, strict=True):
        a_sure, b_sure = a.xyxy[a.confidence >= 0.5], b.xyxy[b.confidence >= 0.5]
        sure += len(a_sure)
        matched += sum(_best_overlap(box, b.xyxy) >= 0.8 for box in a_sure)
        extra += sum(_best_overlap(box, a.xyxy) < 0.5 for box in b_sure)
    assert sure >= 12
    assert matched >= sure - 1, f"{matched} of the fp32 detector's {sure} sure plates found again"
    assert extra <= 1


def _best_overlap(box: np.ndarray, others: np.ndarray) -> float:
    return float(box_overlap(box, others).max()) if len(others) else 0.0


@pytest.fixture
def no_videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings whose videos folder does not exist."""
    monkeypatch.setenv("CCTV_VIDEOS_DIR", str(tmp_path / "no-videos"))
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("no_videos")
def test_no_calibration_frames_falls_back_to_fp32(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.models.derive"):
        path = batch_model_path(PLATE, model_dir, tmp_path, "int8-static")
    assert path == derived_path(PLATE, tmp_path, "fp32") and path.exists()
    assert not derived_path(PLATE, tmp_path, "int8-static").exists()
    assert "could not make a static int8" in caplog.text and "calibration images" in caplog.text
    assert not list(tmp_path.rglob(".part-*")) and not list(tmp_path.rglob(".static-*"))
