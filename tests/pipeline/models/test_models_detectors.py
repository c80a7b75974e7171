"""Vehicle and plate detectors on real footage and photos."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.models.plate_detector import crop_boxes
from pipeline.models.registry import ModelSet
from pipeline.models.yolo import COCO_BUS, COCO_CAR, COCO_TRUCK, VEHICLE_CLASSES, YoloOnnxDetector


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
    model_set: ModelSet, dashcam_frames: list[np.ndarray], model_dir: Path
) -> None:
    assert model_set.precision == "int8"  # derived int8 file: the upstream arithmetic, bit for bit
    frames = dashcam_frames[1:3]
    upstream = YoloOnnxDetector(model_dir / "yolo/yolov8n_int8.onnx", conf=0.3, device="cpu",
                                classes=model_set.vehicles.classes)  # fixed batch 1: the fallback, image by image
    fallback = upstream.detect_batch(frames)
    batched = model_set.vehicles.detect_batch(frames)
    singles = [model_set.vehicles.detect_batch([frame])[0] for frame in frames]
    assert sum(len(d) for d in batched) >= 1
    for i in range(len(frames)):
        for other in (singles[i], fallback[i]):
            assert np.array_equal(batched[i].xyxy, other.xyxy) and np.array_equal(batched[i].class_id, other.class_id)


@pytest.mark.timeout(120)
def test_plate_detector_finds_us_plates_on_vehicle_crops(model_set: ModelSet, shared_dir: Path) -> None:
    root = shared_dir / "data" / "plates_openalpr_us"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:4]
    images = [cv2.imread(str(root / r["relative_path"])) for r in rows]
    truths = [np.array([int(r["x"]), int(r["y"]), int(r["x"]) + int(r["w"]), int(r["y"]) + int(r["h"])], float)
              for r in rows]
    vehicles = model_set.vehicles.detect_batch(images)
    crops, offsets, owners = [], [], []
    for i, (image, dets) in enumerate(zip(images, vehicles, strict=True)):
        dets = dets[np.isin(dets.class_id, VEHICLE_CLASSES)]
        for crop, offset in crop_boxes(image, dets.xyxy, margin=0.05):
            crops.append(crop)
            offsets.append(offset)
            owners.append(i)
    plates = model_set.plates.detect_batch(crops)  # one batched call over all crops of all images
    best = [0.0] * len(images)
    for owner, offset, found in zip(owners, offsets, plates, strict=True):
        for box in found.with_offset(*offset).xyxy:
            best[owner] = max(best[owner], _iou(box, truths[owner]))
    assert sum(b >= 0.3 for b in best) >= 3, best


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
