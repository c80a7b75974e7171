"""Vehicle and plate detectors on real footage and photos."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import EngineConfig
from pipeline.models.registry import ModelSet, load_model_set
from pipeline.models.yolo import COCO_BUS, COCO_CAR, COCO_TRUCK, YoloOnnxDetector


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.timeout(120)
def test_vehicle_detector_finds_cars_in_dashcam_frames(model_set: ModelSet, dashcam_frames: list[np.ndarray]) -> None:
    detections = model_set.vehicles.detect_batch(dashcam_frames)
    assert len(detections) == len(dashcam_frames)
    found = [d for d in detections if np.isin(d.class_id, [COCO_CAR, COCO_BUS, COCO_TRUCK]).any()]
    assert len(found) >= 2, [d.class_id.tolist() for d in detections]
    h, w = dashcam_frames[0].shape[:2]
    for d in detections:
        assert (d.xyxy[:, [0, 2]] <= w).all() and (d.xyxy[:, [1, 3]] <= h).all() and (d.xyxy >= 0).all()
        assert (d.confidence >= 0.3).all()


@pytest.mark.timeout(120)
def test_batched_detections_equal_one_by_one_and_the_batch1_fallback(
    model_set: ModelSet, dashcam_frames: list[np.ndarray], model_dir: Path, derived: tuple[Path, Path, list[Path]]
) -> None:
    assert model_set.precisions["vehicles"] == "fp32"  # the default on every device
    int8_set = load_model_set(EngineConfig(model_precision="int8", detector_canvas="square"), model_dir=model_dir,
                              device="cpu", derived_dir=derived[0])  # square: the upstream's own input
    assert int8_set.precisions == {"vehicles": "int8", "plates": "int8"}  # derived int8 files: the upstream arithmetic, bit for bit
    frames = dashcam_frames[1:3]
    upstream = YoloOnnxDetector(model_dir / "yolo/yolov8n_int8.onnx", conf=0.3, device="cpu",
                                classes=int8_set.vehicles.classes)  # fixed batch 1: the fallback, image by image
    fallback = upstream.detect_batch(frames)
    batched = int8_set.vehicles.detect_batch(frames)
    singles = [int8_set.vehicles.detect_batch([frame])[0] for frame in frames]
    assert sum(len(d) for d in batched) >= 1
    for i in range(len(frames)):
        for other in (singles[i], fallback[i]):
            assert np.array_equal(batched[i].xyxy, other.xyxy) and np.array_equal(batched[i].class_id, other.class_id)


@pytest.mark.timeout(120)
def test_plate_detector_finds_us_plates_on_vehicle_crops(model_set: ModelSet, shared_dir: Path) -> None:
    """The engine's cascade (vehicles at the tracking score -> crops with margin -> plates, calibrated boxes)."""
    from pipeline.models.plate_detector import PlateCascade

    root = shared_dir / "data" / "plates_openalpr_us"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:8]
    cascade = PlateCascade(model_set.vehicles, model_set.plates, vehicle_confidence=0.15)
    best = []
    for r in rows:
        image = cv2.imread(str(root / r["relative_path"]))
        x, y, w, h = (int(r[k]) for k in ("x", "y", "w", "h"))
        plates, vehicles = cascade.detect(image)
        assert len(vehicles) and set(np.asarray(plates.data.get("vehicle", []), int)) <= set(range(len(vehicles)))
        plates = plates[plates.confidence >= 0.25]
        best.append(max((_iou(b, np.array([x, y, x + w, y + h], float)) for b in plates.xyxy), default=0.0))
    assert sum(b >= 0.5 for b in best) >= 6, best


@pytest.mark.timeout(60)
def test_plate_detector_finds_the_thai_plate(model_set: ModelSet, shared_dir: Path) -> None:
    root = shared_dir / "data" / "plates_thai_smoke"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    image = cv2.imread(str(root / row["relative_path"]))
    truth = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
    found = model_set.plates.detect_batch([image])[0]
    assert len(found) >= 1 and (found.class_id == 0).all()
    assert max(_iou(box, truth) for box in found.xyxy) >= 0.3


@pytest.mark.timeout(30)
def test_bad_frames_are_refused_with_their_index(model_set: ModelSet, dashcam_frames: list[np.ndarray]) -> None:
    assert model_set.vehicles.detect_batch([]) == []
    with pytest.raises(ValueError, match="frame 1"):
        model_set.vehicles.detect_batch([dashcam_frames[0], np.zeros((10, 10), np.uint8)])


@pytest.mark.timeout(120)
def test_own_onnx_decode_matches_ultralytics_loading(model_set: ModelSet, dashcam_frames: list[np.ndarray],
                                                     model_dir: Path) -> None:
    """The ONNX Runtime backend (own letterbox, decode, NMS) gives what ``ultralytics.YOLO`` gives."""
    from pipeline.models.yolo import UltralyticsDetector

    path = model_dir / "yolo/yolov8n_int8.onnx"
    reference = UltralyticsDetector(path, conf=0.3, device="cpu", classes=model_set.vehicles.classes)
    ours_detector = YoloOnnxDetector(path, conf=0.3, device="cpu", classes=model_set.vehicles.classes)
    frame = dashcam_frames[2]
    ours, theirs = ours_detector.detect_batch([frame])[0], reference.detect_batch([frame])[0]
    assert len(theirs) >= 1 and len(ours) == len(theirs)
    order_a, order_b = np.argsort(ours.xyxy[:, 0]), np.argsort(theirs.xyxy[:, 0])
    assert np.allclose(ours.xyxy[order_a], theirs.xyxy[order_b], atol=1.0)
    assert (ours.class_id[order_a] == theirs.class_id[order_b]).all()
    assert np.allclose(ours.confidence[order_a], theirs.confidence[order_b], atol=0.01)


def test_search_windows_cover_large_crops_with_tiles() -> None:
    from pipeline.models.plate_detector import search_windows

    assert search_windows(400, 300, 480) == [(0, 0, 400, 300)]  # small: the whole crop only
    windows = search_windows(1100, 700, 480)
    assert windows[0] == (0, 0, 1100, 700)
    tiles = windows[1:]
    assert len(tiles) >= 4 and all(x1 - x0 <= 480 and y1 - y0 <= 480 for x0, y0, x1, y1 in tiles)
    covered = np.zeros((700, 1100), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_box_calibration_trims_the_detector_margin() -> None:
    from pipeline.models.plate_detector import IDENTITY, BoxCalibration

    box = np.array([[100, 50, 200, 110]], np.float32)  # 100 x 60, centre (150, 80)
    out = BoxCalibration(width_scale=0.9, height_trim=0.15, min_height=0.4).apply(box)[0]
    assert np.allclose(out, [105, 57.5, 195, 102.5])  # 90 x 45, same centre
    assert np.allclose(BoxCalibration(0.9, 0.9, 0.5).apply(box)[0, [1, 3]], [65, 95])  # never below 50 %
    assert np.array_equal(IDENTITY.apply(box), box)


@pytest.mark.timeout(120)
def test_cascade_tiles_find_the_plate_on_a_bus(model_set: ModelSet, shared_dir: Path) -> None:
    """A bus fills the frame: its plate is lost when the whole crop shrinks to 320 px, found in a tile."""
    from pipeline.models.plate_detector import PlateCascade, PlateDetector

    root = shared_dir / "data" / "plates_openalpr_us"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["relative_path"].endswith("wts-lg-000154.jpg"))
    image = cv2.imread(str(root / row["relative_path"]))
    x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
    truth = np.array([x, y, x + w, y + h], float)
    tiled = PlateCascade(model_set.vehicles, model_set.plates)
    untiled = PlateCascade(model_set.vehicles, PlateDetector(model_set.plates.detector, tile=100_000),
                           closer_look=False)  # (the closer look would tile the frame after finding no plate)
    best = {}
    for name, cascade in (("tiled", tiled), ("untiled", untiled)):
        plates, vehicles = cascade.detect(image)
        assert len(vehicles) >= 1
        plates = plates[plates.confidence >= 0.25]
        best[name] = max((_iou(b, truth) for b in plates.xyxy), default=0.0)
    assert best["tiled"] >= 0.5 > best["untiled"], best


def test_tile_edge_cuts_and_overlapping_plates_are_dropped() -> None:
    from pipeline.models.plate_detector import suppress_overlapping, touches_inner_edge

    # a 480 px tile at x=300 of a 1000 x 600 image: its left edge and right edge are inside the image
    boxes = np.array([[0, 50, 80, 90], [100, 50, 200, 90], [420, 50, 479, 90], [100, 560, 200, 600]], np.float32)
    cut = touches_inner_edge(boxes, (300, 0), (600, 480), (600, 1000))
    assert cut.tolist() == [True, False, True, False]  # the bottom edge is the image's own edge: not a cut
    whole = np.array([[100, 100, 300, 160], [180, 100, 300, 160], [400, 100, 500, 160]], np.float32)
    keep = suppress_overlapping(whole, np.array([0.8, 0.9, 0.5], np.float32))
    assert keep.tolist() == [1, 2]  # the part inside the better-scored box goes, the separate plate stays
