"""The plate detector on fitted canvases (``engine.plate_canvas: fit``): a few canvases made at load, the same
plates as on the square input, on real motorcycle photos cut into vehicle-shaped windows."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.runtimes import match_detections
from pipeline.models.plate_detector import CANVAS_SIDES, MAX_CANVASES, load_plate_detector
from pipeline.models.yolo_canvas import canvas_for

PLATE_MODEL = Path("plate") / "license_plate_detector_int8.batch.fp32.onnx"


def _moto_windows(shared_dir: Path, count: int = 24) -> list[np.ndarray]:
    """Windows of real motorcycle photos around their labelled plate, in the shapes vehicle crops come in
    (wide, tall, square, long), so that the fitted detector uses several canvases."""
    folder = shared_dir / "data" / "plates_thai_moto"
    with (folder / "detection.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:count]
    shapes = ((1.0, 1.0), (1.6, 1.0), (1.0, 1.5), (2.4, 1.0))  # width, height factors of the window
    windows = []
    for k, row in enumerate(rows):
        image = cv2.imread(str(folder / row["relative_path"]))
        assert image is not None, row["relative_path"]
        cx, cy = float(row["x"]) + float(row["w"]) / 2, float(row["y"]) + float(row["h"]) / 2
        fw, fh = shapes[k % len(shapes)]
        half = 2.2 * max(float(row["w"]), float(row["h"]))
        x0, x1 = int(max(0, cx - half * fw)), int(min(image.shape[1], cx + half * fw))
        y0, y1 = int(max(0, cy - half * fh)), int(min(image.shape[0], cy + half * fh))
        windows.append(image[y0:y1, x0:x1])
    return windows


def test_canvases_take_only_the_given_sides() -> None:
    sides = (128, 192, 256)
    assert canvas_for((200, 300), 320, sides=sides) == (256, 320)
    assert canvas_for((720, 1280), 320, sides=sides) == (192, 320)  # a whole 16:9 frame
    assert canvas_for((300, 200), 320, sides=sides) == (320, 256)
    assert canvas_for((100, 400), 320, sides=sides) == (128, 320)
    assert canvas_for((400, 400), 320, sides=sides) == (320, 320)
    assert canvas_for((280, 320), 320, sides=sides) == (320, 320)  # no side holds 280: the input's
    assert canvas_for((100, 150), 320, fit=150, sides=sides) == (128, 192)  # a small window at its own size


@pytest.mark.timeout(300)
def test_fit_canvases_are_made_at_load_and_find_the_square_inputs_plates(
        derived: tuple[Path, Path, list[Path]], shared_dir: Path) -> None:
    path = derived[0] / PLATE_MODEL
    square = load_plate_detector(path, device="cpu", runtime="onnxruntime", canvas="square")
    fit = load_plate_detector(path, device="cpu", runtime="onnxruntime", canvas="fit")
    made = set(fit.detector.prepare_canvases())
    assert made == {(320, 320)} | {(s, 320) for s in CANVAS_SIDES} | {(320, s) for s in CANVAS_SIDES}
    assert len(made) <= MAX_CANVASES + 1
    windows = _moto_windows(shared_dir)
    canvases = {fit.detector.canvas_of(w.shape[:2]) for w in windows}
    assert len(canvases) >= 2 and canvases <= made  # no window waits for a network to be made
    found = fit.detect_batch(windows)
    agreement = match_detections(square.detect_batch(windows), found, min_iou=0.7)
    assert agreement["boxes_ref"] >= 20, "the windows hold a labelled plate each"
    assert agreement["match_rate"] >= 0.9, agreement
    for window, dets in zip(windows, found, strict=True):
        h, w = window.shape[:2]
        assert (dets.xyxy[:, [0, 2]] <= w + 1e-3).all() and (dets.xyxy[:, [1, 3]] <= h + 1e-3).all()
        assert dets.data["reading_xyxy"].shape == dets.xyxy.shape


def test_a_square_plate_detector_makes_no_canvas(derived: tuple[Path, Path, list[Path]]) -> None:
    square = load_plate_detector(derived[0] / PLATE_MODEL, device="cpu", runtime="onnxruntime", canvas="square")
    assert square.detector.prepare_canvases() == [(320, 320)]
    assert square.detector.canvas_of((720, 1280)) == (320, 320)
