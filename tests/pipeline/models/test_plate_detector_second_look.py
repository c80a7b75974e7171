"""The plate detector's second look for rolled plates (:meth:`PlateDetector.detect_rotated`), its single-window
whole-frame search (``detect_batch(tiles=[0])``) and how whole-frame plates join the vehicle plates
(:func:`add_missed_plates`, :func:`owner_of`), with the real detector on real images.

Rolled plates are real Thai car crops (plate-disjoint validation split) composited at roll +-35 degrees over the
plate of a real car photo (OpenALPR EU, the car's own plate hidden under the Thai one) and cut out around it like
a vehicle crop, so the plate's true corners are known.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.detections import Detections
from pipeline.models.plate_detector import (
    SECOND_LOOK_ANGLES,
    PlateDetector,
    add_missed_plates,
    owner_of,
    search_windows,
)
from pipeline.models.registry import ModelSet
from pipeline.plates.dataset import plate_disjoint_split, read_labels
from pipeline.plates.geometry import composite, plate_quad

N_SCENES = 12
ROLL = 35.0
SCENE_SIDE = 400  # scenes are scaled to this longest side: the turned canvas stays one detector window


def coverage(box: np.ndarray, quad: np.ndarray) -> float:
    """Share of the plate's axis-aligned extent that ``box`` covers."""
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    iw = max(0.0, min(box[2], x1) - max(box[0], x0))
    ih = max(0.0, min(box[3], y1) - max(box[1], y0))
    return float(iw * ih / ((x1 - x0) * (y1 - y0)))


def best_coverage(dets: Detections, quad: np.ndarray, confidence: float = 0.25) -> float:
    return max((coverage(b, quad) for b, c in zip(dets.xyxy, dets.confidence, strict=True) if c >= confidence),
               default=0.0)


def thai_plate_on_car(image: np.ndarray, row: dict[str, str], plate: np.ndarray,
                      roll: float) -> tuple[np.ndarray, np.ndarray]:
    """``(scene, quad)``: ``plate`` 1.25x as wide as the photo's own plate (``row``: its labelled box), rolled by
    ``roll`` degrees and centred on that plate; the scene is 3.5 plate widths wide around it, scaled to 400 px."""
    x, y, w, h = (float(row[key]) for key in ("x", "y", "w", "h"))
    width = max(1.25 * w, 110.0)
    quad = plate_quad(width, plate.shape[1] / plate.shape[0], roll) + np.float32([x + w / 2, y + h / 2])
    scene = composite(image, plate, quad)
    cx, cy = quad.mean(axis=0)
    half_w, half_h = 1.75 * width, 1.4 * width
    x0, y0 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
    x1, y1 = int(min(scene.shape[1], cx + half_w)), int(min(scene.shape[0], cy + half_h))
    scale = SCENE_SIDE / max(x1 - x0, y1 - y0)
    crop = cv2.resize(scene[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return crop, ((quad - np.float32([x0, y0])) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def cars_and_plates(shared_dir: Path) -> list[tuple[np.ndarray, dict[str, str], np.ndarray]]:
    """``N_SCENES`` EU car photos with their plate labels, each with a Thai validation crop."""
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    _, val = plate_disjoint_split(samples, 0.15, 0)
    plates = [cv2.imread(str(samples[i].path)) for i in val[:: len(val) // N_SCENES][:N_SCENES]]
    root = shared_dir / "data" / "plates_openalpr_eu"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:N_SCENES]
    return [(cv2.imread(str(root / row["relative_path"])), row, plate)
            for row, plate in zip(rows, plates, strict=True)]


@pytest.fixture(scope="module")
def rolled_scenes(cars_and_plates: list[tuple[np.ndarray, dict[str, str], np.ndarray]]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every car with its Thai plate rolled by +35 / -35 degrees (alternately)."""
    return [thai_plate_on_car(image, row, plate, ROLL if k % 2 == 0 else -ROLL)
            for k, (image, row, plate) in enumerate(cars_and_plates)]


@pytest.mark.timeout(120)
def test_second_look_finds_rolled_plates_the_upright_look_misses(
        model_set: ModelSet, rolled_scenes: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Upright, the detector misses most plates rolled by 35 degrees (measured: 11 of 12 scenes without a box on
    the plate); turned by +-25 degrees it finds them (measured: 10 of those 11, each box covering 78-100 % of
    the plate; alike at 30 and 40 degrees). Boxes come back in the crop's pixels, inside the crop, and the
    reading box holds the plate box."""
    scenes = [s for s, _ in rolled_scenes]
    upright = model_set.plates.detect_batch(scenes)
    turned = model_set.plates.detect_rotated(scenes)
    assert len(turned) == len(scenes)
    missed = [k for k, (_, q) in enumerate(rolled_scenes) if best_coverage(upright[k], q) < 0.3]
    found = [k for k in missed if best_coverage(turned[k], rolled_scenes[k][1]) >= 0.6]
    assert len(missed) >= N_SCENES // 2, [best_coverage(u, q) for u, (_, q) in zip(upright, rolled_scenes, strict=True)]
    assert len(found) >= 0.75 * len(missed), (missed, found)
    for (scene, _), dets in zip(rolled_scenes, turned, strict=True):
        h, w = scene.shape[:2]
        reading = np.asarray(dets.data["reading_xyxy"], np.float32).reshape(-1, 4)
        assert len(reading) == len(dets) and (dets.class_id == 0).all()
        for boxes in (dets.xyxy, reading):
            assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        # the reading box (the detector's own, looser box) holds the calibrated plate box
        assert (reading[:, :2] <= dets.xyxy[:, :2] + 1).all() and (reading[:, 2:] >= dets.xyxy[:, 2:] - 1).all()


@pytest.mark.timeout(60)
def test_second_look_on_upright_plates_and_odd_inputs(
        model_set: ModelSet, cars_and_plates: list[tuple[np.ndarray, dict[str, str], np.ndarray]]) -> None:
    """Upright plates are still found turned by 25 degrees, the box around the turned-back box holding them
    (measured: 12 of 12 cars, full coverage);
    crops below 8 px and an empty angle list give empty results with an empty reading box array; no crops, no
    results."""
    upright = [thai_plate_on_car(image, row, plate, 0.0) for image, row, plate in cars_and_plates[:4]]
    found = model_set.plates.detect_rotated([s for s, _ in upright])
    covered = [best_coverage(d, q) for d, (_, q) in zip(found, upright, strict=True)]
    assert sum(c >= 0.8 for c in covered) >= 3, covered
    scene, quad = upright[0]
    tiny = np.zeros((6, 40, 3), np.uint8)
    dets = model_set.plates.detect_rotated([tiny, scene])
    assert len(dets) == 2
    assert len(dets[0]) == 0 and np.asarray(dets[0].data["reading_xyxy"]).shape == (0, 4)
    assert best_coverage(dets[1], quad) == pytest.approx(covered[0])
    (none,) = model_set.plates.detect_rotated([scene], angles=())
    assert len(none) == 0 and np.asarray(none.data["reading_xyxy"]).shape == (0, 4)
    assert model_set.plates.detect_rotated([]) == []
    assert SECOND_LOOK_ANGLES == (-25.0, 25.0)


class CountingDetector:
    """The real plate network, recording the size of every window it is given (a spy, not a stand-in)."""

    def __init__(self, detector: object) -> None:
        self.detector = detector
        self.imgsz = getattr(detector, "imgsz", None)
        self.calls: list[list[tuple[int, int]]] = []

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        self.calls.append([im.shape[:2] for im in images])
        return self.detector.detect_batch(images)


@pytest.mark.timeout(120)
def test_single_window_search(model_set: ModelSet, shared_dir: Path) -> None:
    """``tiles=[0]`` searches a crop as one window (the whole frame shrunk to the network input), exactly what a
    detector without tiles finds; the default searches the whole crop and its overlapping tiles in the same
    batched call. On a bus filling the frame the plate is only found in a tile (measured coverage 1.0 tiled,
    0.0 in the single window)."""
    root = shared_dir / "data" / "plates_openalpr_us"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["relative_path"].endswith("wts-lg-000154.jpg"))
    image = cv2.imread(str(root / row["relative_path"]))
    x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
    truth = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    spy = CountingDetector(model_set.plates.detector)
    detector = PlateDetector(spy, calibration=model_set.plates.calibration)
    ih, iw = image.shape[:2]
    assert max(ih, iw) > 1.2 * detector.tile  # large enough to be tiled

    (single,) = detector.detect_batch([image], tiles=[0])
    assert spy.calls[-1] == [(ih, iw)]
    (untiled,) = PlateDetector(model_set.plates.detector, tile=100_000).detect_batch([image])
    assert np.array_equal(single.xyxy, untiled.xyxy) and np.array_equal(single.confidence, untiled.confidence)

    (tiled,) = detector.detect_batch([image])
    windows = search_windows(iw, ih, detector.tile)
    assert len(windows) >= 3 and spy.calls[-1] == [(y1 - y0, x1 - x0) for x0, y0, x1, y1 in windows]
    assert best_coverage(tiled, truth) >= 0.6 > best_coverage(single, truth)

    # per-crop tiles in one call: a small crop stays one window whatever its tile; a zoom tile splits it
    small = image[y - 40: y + h + 40, x - 60: x + w + 60]
    spy.calls.clear()
    detector.detect_batch([small, image, small], tiles=[0, 0, 64])
    (call,) = spy.calls
    zoom = search_windows(small.shape[1], small.shape[0], 64)
    assert call[:2] == [small.shape[:2], (ih, iw)] and len(call) == 2 + len(zoom) and len(zoom) > 1
    assert search_windows(500, 400, 480) == [(0, 0, 500, 400)]  # within 1.2 x the tile: one window


def plates(xyxy: list[list[float]], confidence: list[float], vehicle: list[int] | None = None) -> Detections:
    data: dict[str, object] = {"reading_xyxy": np.asarray(xyxy, np.float32).reshape(-1, 4)}
    if vehicle is not None:
        data["vehicle"] = vehicle
    return Detections(np.asarray(xyxy, np.float32).reshape(-1, 4), np.asarray(confidence, np.float32),
                      np.zeros(len(confidence), np.int64), None, data)


def test_owner_of_is_the_first_vehicle_holding_the_centre() -> None:
    """The owner of a plate is the first vehicle box holding its centre (edges included), -1 for none."""
    vehicles = np.float32([[0, 0, 100, 100], [50, 50, 300, 300], [400, 0, 500, 100]])
    assert owner_of(np.float32([10, 10, 30, 20]), vehicles) == 0
    assert owner_of(np.float32([60, 60, 80, 80]), vehicles) == 0  # in both: the first one
    assert owner_of(np.float32([150, 150, 250, 180]), vehicles) == 1
    assert owner_of(np.float32([90, 90, 200, 200]), vehicles) == 1  # centre (145, 145): only the second
    assert owner_of(np.float32([350, 10, 390, 30]), vehicles) == -1
    assert owner_of(np.float32([380, 40, 420, 60]), vehicles) == 2  # centre (400, 50) on the edge: inside
    assert owner_of(np.float32([0, 0, 10, 10]), np.zeros((0, 4), np.float32)) == -1


def test_add_missed_plates_keeps_vehicle_plates_and_adds_the_others() -> None:
    """Whole-frame plates join the vehicle-crop plates only where none of those covers them (intersection over
    the smaller box 0.6 or more), whatever their scores; an added plate is owned by the vehicle holding its
    centre (or -1); no whole-frame plates: the vehicle plates as they were; no vehicle plates: all of them."""
    vehicles = np.float32([[0, 0, 200, 200], [300, 0, 600, 200]])
    from_vehicles = plates([[50, 150, 110, 170]], [0.5], vehicle=[0])
    whole = plates([[52, 151, 108, 171],  # the same plate, better scored: dropped
                    [400, 150, 460, 170],  # on vehicle 1, which the crop search missed
                    [700, 300, 760, 320],  # on no vehicle
                    [100, 150, 180, 170]],  # overlaps the vehicle plate by less than 0.6 of the smaller: kept
                   [0.9, 0.6, 0.4, 0.3])
    merged = add_missed_plates(from_vehicles, whole, vehicles)
    assert len(merged) == 4
    assert np.allclose(merged.xyxy[0], [50, 150, 110, 170]) and merged.confidence[0] == pytest.approx(0.5)
    assert list(merged.data["vehicle"]) == [0, 1, -1, 0]
    assert np.allclose(merged.xyxy[1:], whole.xyxy[1:])
    assert np.asarray(merged.data["reading_xyxy"]).shape == (4, 4)

    assert add_missed_plates(from_vehicles, plates([], []), vehicles) is from_vehicles
    only_whole = add_missed_plates(plates([], [], vehicle=[]), whole, vehicles)
    assert len(only_whole) == len(whole) and list(only_whole.data["vehicle"]) == [0, 1, -1, 0]
    assert "vehicle" not in whole.data  # the caller's detections are not modified


@pytest.mark.timeout(120)
def test_a_weak_upright_hit_does_not_block_the_turned_look(
        model_set: ModelSet, rolled_scenes: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A hit below ``min_confidence`` (a rolled plate half seen, when the detector is loaded with a threshold below
    the plate confidence) does not stop the turned look: that crop is searched turned and its result replaces the
    weak hit; with ``min_confidence`` 0 any hit counts and the crop keeps it. (The engine loads the detector at the
    plate confidence, so there this only guards the threshold the callers pass.)"""
    scenes = [s for s, _ in rolled_scenes]
    weak = Detections(np.float32([[2, 2, 40, 20]]), np.float32([0.1]), np.zeros(1, int), None,
                      {"reading_xyxy": np.float32([[2, 2, 40, 20]])})
    kept = model_set.plates.look_again(scenes, [weak] * len(scenes), min_confidence=0.0)
    assert all(d is weak for d in kept)
    turned = model_set.plates.look_again(scenes, [weak] * len(scenes), min_confidence=0.25)
    found = [k for k, (_, quad) in enumerate(rolled_scenes) if best_coverage(turned[k], quad) >= 0.6]
    assert len(found) >= 0.75 * len(scenes), found
    assert not any(d is weak for d in turned)
