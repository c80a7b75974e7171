"""How :class:`PlateCascade` joins the plates of overlapping vehicle crops and of the whole-frame window: a plate cut
by its crop's edge (:func:`merge_crop_plates`, :func:`add_missed_plates` with ``cut``) and a crop whose upright
search found nothing while the whole frame holds its plate (:func:`plates_held`, no turned look); then the real
cascade on two motorcycle photos of ``plates_thai_moto`` where it used to lose a plate the whole frame finds."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.detections import Detections
from pipeline.engine.tracking import iou_matrix
from pipeline.models.plate_detector import PlateCascade, add_missed_plates, merge_crop_plates, plates_held
from pipeline.models.registry import ModelSet

pytestmark = pytest.mark.timeout(600)


def plates(xyxy: list[list[float]], conf: list[float], vehicle: list[int] | None = None) -> Detections:
    data = {"vehicle": vehicle} if vehicle is not None else {}
    return Detections(np.asarray(xyxy, np.float32).reshape(-1, 4), np.asarray(conf, np.float32),
                      np.zeros(len(conf), np.int32), None, data)


WHOLE_PLATE = [100.0, 200.0, 180.0, 250.0]
STRIP = [105.0, 200.0, 178.0, 212.0]  # the top of the same plate, where a vehicle crop's bottom edge cut it


def test_a_cut_plate_inside_a_whole_one_from_another_crop_goes_even_when_more_confident() -> None:
    xyxy = np.float32([STRIP, WHOLE_PLATE, [300, 200, 360, 240]])
    keep = merge_crop_plates(xyxy, np.float32([0.9, 0.6, 0.5]), np.array([True, False, False]))
    assert keep.tolist() == [1, 2]


def test_a_cut_plate_that_no_whole_plate_covers_stays() -> None:
    xyxy = np.float32([STRIP, [300, 200, 360, 240]])
    keep = merge_crop_plates(xyxy, np.float32([0.9, 0.5]), np.array([True, False]))
    assert keep.tolist() == [0, 1]


def test_between_two_boxes_of_one_plate_the_uncut_one_wins_nms() -> None:
    cut_box = [100.0, 200.0, 180.0, 246.0]  # IoU 0.92 with the whole plate
    keep = merge_crop_plates(np.float32([cut_box, WHOLE_PLATE]), np.float32([0.9, 0.4]), np.array([True, False]))
    assert keep.tolist() == [1]
    keep = merge_crop_plates(np.float32([cut_box, WHOLE_PLATE]), np.float32([0.9, 0.4]), np.array([False, False]))
    assert keep.tolist() == [0]  # neither cut: the more confident one, as before


def test_a_whole_frame_plate_is_not_hidden_by_a_cut_crop_plate() -> None:
    vehicles = np.float32([[80, 0, 300, 212]])  # the vehicle box ends in the plate
    from_crops = plates([STRIP], [0.6], vehicle=[0])
    whole = plates([WHOLE_PLATE], [0.8])
    assert len(add_missed_plates(from_crops, whole, vehicles)) == 1  # without the cut mask: hidden
    merged = add_missed_plates(from_crops, whole, vehicles, np.array([True]))
    assert merged.xyxy.tolist() == [WHOLE_PLATE]
    assert merged.data["vehicle"] == [-1]  # its centre lies below the vehicle box
    # an uncut crop plate still ranks first, whatever the confidences
    kept = add_missed_plates(from_crops, whole, vehicles, np.array([False]))
    assert kept.xyxy.tolist() == [STRIP]


def test_vehicles_holding_a_confident_whole_frame_plate() -> None:
    vehicles = np.float32([[0, 0, 200, 300], [120, 0, 400, 300], [500, 0, 600, 100]])
    whole = plates([WHOLE_PLATE, [520, 40, 560, 60]], [0.7, 0.1])
    assert plates_held(whole, vehicles, 0.25) == {0, 1}  # centre (140, 225) lies in both boxes
    assert plates_held(whole, vehicles, 0.05) == {0, 1, 2}
    assert plates_held(plates([], []), vehicles, 0.25) == set()


# -- the real cascade on motorcycle photos ----------------------------------------------------------------------

# Photos of ``plates_thai_moto/detection.csv`` where the cascade lost a plate the whole frame finds: a scooter seen
# close from behind whose vehicle box ends in the plate (the crop found its top strip, which hid the whole-frame
# box), and a scooter whose crop found nothing upright and whose turned look's loose hull hid the frame's box.
LOST_BEFORE = ("IMG_7859_jpg.rf.9c4d22fd8fcd0410a2a5caea94ca60d2.jpg",
               "img015918_jpg.rf.dac519b3705e30aaa2deae0340ec0d27.jpg")
IOU = 0.3  # the labels are drawn tight around the characters (see benchmarks.plate_detection --iou)


def labelled_boxes(shared_dir: Path, name: str) -> np.ndarray:
    with (shared_dir / "data" / "plates_thai_moto" / "detection.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["relative_path"] == f"images/{name}"]
    assert rows, name
    return np.float32([[float(r["x"]), float(r["y"]), float(r["x"]) + float(r["w"]), float(r["y"]) + float(r["h"])]
                       for r in rows])


@pytest.mark.parametrize("name", LOST_BEFORE)
def test_the_cascade_keeps_every_motorcycle_plate_the_whole_frame_finds(model_set: ModelSet, shared_dir: Path,
                                                                        name: str) -> None:
    image = cv2.imread(str(shared_dir / "data" / "plates_thai_moto" / "images" / name))
    assert image is not None
    truth = labelled_boxes(shared_dir, name)
    cascade = PlateCascade(model_set.vehicles, model_set.plates, vehicle_confidence=0.15, plate_confidence=0.25)
    full = cascade.full_frame(image)
    full = full[full.confidence >= 0.25]
    found_whole = iou_matrix(full.xyxy, truth).max(axis=0) >= IOU
    assert found_whole.any(), "the whole frame no longer finds the plate this test is about"
    found, vehicles = cascade.detect(image)
    assert len(vehicles)
    found = found[found.confidence >= 0.25]
    assert len(found)
    by_cascade = iou_matrix(found.xyxy, truth).max(axis=0) >= IOU
    assert by_cascade[found_whole].all(), (found.xyxy, truth)
    assert cascade.seconds["plates"] > 0 and cascade.seconds["vehicles"] > 0


# A night photo of parked scooters: the vehicle detector finds none of them (or, at a low confidence, boxes their
# seats and mirrors, not their plates), and the whole frame's one window (432 px into 320) sees the plates too small;
# tiles of half the photo (a frame without vehicles, or the closer look at one whose vehicles show no plate) find them.
NIGHT = "IMG_7746_jpeg.rf.39fd390948d6b4665457ed82311652b1.jpg"


def test_closer_tile_is_half_a_small_frame_and_the_usual_tile_for_a_large_one(model_set: ModelSet) -> None:
    plates = model_set.plates
    assert plates.closer_tile((432, 432, 3)) == 216
    assert plates.closer_tile((540, 960, 3)) == plates.tile == 480
    assert plates.closer_tile((200, 240, 3)) == plates.imgsz // 2  # never more than a 2x zoom


def test_night_plates_too_small_for_one_window_are_found_in_closer_tiles(model_set: ModelSet,
                                                                         shared_dir: Path) -> None:
    image = cv2.imread(str(shared_dir / "data" / "plates_thai_moto" / "images" / NIGHT))
    assert image is not None
    truth = labelled_boxes(shared_dir, NIGHT)

    def hits(plates: Detections) -> np.ndarray:
        plates = plates[plates.confidence >= 0.25]
        return iou_matrix(plates.xyxy, truth).max(axis=0) >= IOU if len(plates) else np.zeros(len(truth), bool)

    assert not hits(model_set.plates.detect_batch([image], [0])[0]).any()  # one window: none
    for closer_look in (True, False):  # with or without vehicles, the photo is searched in tiles of half its side
        cascade = PlateCascade(model_set.vehicles, model_set.plates, vehicle_confidence=0.15, plate_confidence=0.25,
                               closer_look=closer_look)
        plates, vehicles = cascade.detect(image)
        if closer_look or not len(vehicles):
            assert hits(plates).sum() >= 1, (closer_look, len(vehicles))


class _OneVehicle:
    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        return [Detections(np.float32([[40, 40, 600, 320]]), np.float32([0.9]), np.int32([2])) for _ in frames]


class _FaintCropConfidentCloser:
    """Vehicle crops: a faint plate (0.15, under the plate confidence); the whole frame in one window: nothing; the
    whole frame in closer tiles: the same plate, confident (0.7)."""

    tile = 480

    def closer_tile(self, image_hw: tuple[int, ...]) -> int:
        return 320

    def detect_batch(self, images: list[np.ndarray], tiles: list[int] | None = None, **search: object
                     ) -> list[Detections]:
        out = []
        for k, image in enumerate(images):
            closer = tiles is not None and tiles[k] == 320
            if image.shape[:2] == (360, 640) and not closer:
                out.append(Detections(data={"reading_xyxy": np.zeros((0, 4), np.float32)}))
                continue
            # the plate at frame (300, 250, 380, 290); a vehicle crop starts at (0, 12) after its 10 % margin
            box = np.float32([[300, 250, 380, 290]] if closer else [[300, 238, 380, 278]])
            out.append(Detections(box, np.float32([0.7 if closer else 0.15]), np.int32([0]), None,
                                  {"reading_xyxy": box.copy()}))
        return out


def test_a_confident_closer_look_plate_wins_over_the_crops_faint_one() -> None:
    """When no plate reached the plate confidence, the closer look's plates compete with the faint ones on
    confidence (the engine lets a confident whole-frame plate win too): the confident box is kept."""
    cascade = PlateCascade(_OneVehicle(), _FaintCropConfidentCloser(), second_look=False)  # type: ignore[arg-type]
    found, _ = cascade.detect(np.zeros((360, 640, 3), np.uint8))
    confident = found[found.confidence >= 0.25]
    assert len(confident) == 1 and confident.xyxy.tolist() == [[300.0, 250.0, 380.0, 290.0]]
