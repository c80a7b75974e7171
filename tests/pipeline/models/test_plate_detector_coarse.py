"""Coarse-first plate search (``PlateDetector.detect_batch(coarse_first=True)``, ``engine.plate_search``) with the
real plate detector on real photos (OpenALPR US scenes with labelled plate boxes): large crops are searched whole
first and with their tiles only where the whole look found no readable plate; it finds the plates the full
search finds, with fewer detector windows, and still tiles a crop whose plate is too small for the whole look.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from benchmarks.plate_detection import read_boxes
from pipeline.detections import Detections
from pipeline.models.plate_detector import PlateCascade, PlateDetector, search_windows
from pipeline.models.registry import ModelSet

N_PHOTOS = 10
SIDE = 900  # longest side of a test crop: larger than the 480 px tile x 1.2, so the full search tiles it
CONF = 0.25


class CountingDetector:
    """The real network, counting the windows it is given."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.windows = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        self.windows += len(images)
        return self.detector.detect_batch(images)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def found(dets: Detections, truth: np.ndarray) -> bool:
    return any(iou(np.asarray(box), truth) >= 0.3 for box, c in zip(dets.data["reading_xyxy"], dets.confidence,
                                                                     strict=True) if c >= CONF)


@pytest.fixture(scope="module")
def photos(shared_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(image, plate box)`` of the first photos of the OpenALPR US set, scaled to :data:`SIDE` px."""
    root = shared_dir / "data" / "plates_openalpr_us"
    out = []
    with (root / "labels.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            image = cv2.imread(str(root / row["relative_path"]))
            if image is None or max(image.shape[:2]) < SIDE // 2:
                continue
            scale = SIDE / max(image.shape[:2])
            x, y, w, h = (float(row[k]) * scale for k in ("x", "y", "w", "h"))
            out.append((cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                        np.float32([x, y, x + w, y + h])))
            if len(out) == N_PHOTOS:
                break
    assert len(out) == N_PHOTOS, f"expected {N_PHOTOS} usable photos in {root}"
    return out


def search(model_set: ModelSet, crops: list[np.ndarray], coarse_first: bool) -> tuple[list[Detections], int]:
    counting = CountingDetector(model_set.plates.detector)
    detector = PlateDetector(counting, tile=model_set.plates.tile, calibration=model_set.plates.calibration)
    return detector.detect_batch(crops, coarse_first=coarse_first, min_confidence=CONF), counting.windows


def test_coarse_first_finds_what_the_full_search_finds_with_fewer_windows(
        model_set: ModelSet, photos: list[tuple[np.ndarray, np.ndarray]]) -> None:
    crops = [image for image, _ in photos]
    full, full_windows = search(model_set, crops, coarse_first=False)
    coarse, coarse_windows = search(model_set, crops, coarse_first=True)
    full_hits = [found(d, truth) for d, (_, truth) in zip(full, photos, strict=True)]
    coarse_hits = [found(d, truth) for d, (_, truth) in zip(coarse, photos, strict=True)]
    assert sum(full_hits) >= N_PHOTOS // 2, f"the full search found only {sum(full_hits)} of {N_PHOTOS} plates"
    lost = [k for k in range(N_PHOTOS) if full_hits[k] and not coarse_hits[k]]
    assert not lost, f"coarse-first lost the plates of photos {lost}"
    assert coarse_windows < full_windows, (coarse_windows, full_windows)
    # the plate boxes agree where both found the plate: the reader gets the same region
    for k in range(N_PHOTOS):
        if full_hits[k] and coarse_hits[k]:
            truth = photos[k][1]
            best_full = max(full[k].data["reading_xyxy"], key=lambda b: iou(np.asarray(b), truth))
            best_coarse = max(coarse[k].data["reading_xyxy"], key=lambda b: iou(np.asarray(b), truth))
            assert iou(np.asarray(best_full), np.asarray(best_coarse)) >= 0.6, k


def test_a_plate_small_in_a_huge_crop_is_found_with_fewer_windows(
        model_set: ModelSet, photos: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A photo scaled 3x (a bus filling the view): the whole look sees its plate small, a tile finds it."""
    hits = 0
    for image, truth in photos[:4]:
        big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
        full, full_windows = search(model_set, [big], coarse_first=False)
        coarse, coarse_windows = search(model_set, [big], coarse_first=True)
        assert coarse_windows <= full_windows
        if found(full[0], truth * 3):
            assert found(coarse[0], truth * 3), "coarse-first lost a plate the full search found"
            hits += 1
    assert hits, "the full search found none of the plates in the scaled-up photos"


def test_a_crop_without_plate_gets_every_tile(model_set: ModelSet) -> None:
    blank = np.full((900, 1200, 3), 127, np.uint8)
    dets, windows = search(model_set, [blank], coarse_first=True)
    assert not len(dets[0])
    assert windows == len(search_windows(1200, 900, model_set.plates.tile))


def moto_photos(shared_dir: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(photo, plate box)`` of the first ``n`` motorcycle photos with one labelled plate (close-ups, 432 px)."""
    boxes = read_boxes(shared_dir / "data" / "plates_thai_moto" / "detection.csv")
    single = [(path, b[0]) for path, b in boxes.items() if len(b) == 1][:n]
    return [(cv2.imread(str(path)), np.float32(box)) for path, box in single]


def test_a_close_up_frame_searched_in_tiles_is_searched_whole_first(model_set: ModelSet, shared_dir: Path) -> None:
    """A frame searched whole in tiles (no vehicle found on it, or a closer look) with coarse-first: the whole
    frame first, its tiles only where that found no plate; a plate the whole look saw small gets one tile of
    the frame's own (closer) tile side around it. Real close-up motorcycle photos: the same plates as the full
    tiled search, with fewer windows."""
    photos = moto_photos(shared_dir, N_PHOTOS)
    assert len(photos) == N_PHOTOS
    frames = [image for image, _ in photos]
    tiles = [model_set.plates.closer_tile(f.shape) for f in frames]
    counting = CountingDetector(model_set.plates.detector)
    detector = PlateDetector(counting, tile=model_set.plates.tile, calibration=model_set.plates.calibration)
    full = detector.detect_batch(frames, tiles)
    full_windows = counting.windows
    coarse = detector.detect_batch(frames, tiles, coarse_first=True, min_confidence=CONF)
    coarse_windows = counting.windows - full_windows
    full_hits = [found(d, truth) for d, (_, truth) in zip(full, photos, strict=True)]
    coarse_hits = [found(d, truth) for d, (_, truth) in zip(coarse, photos, strict=True)]
    assert sum(full_hits) >= N_PHOTOS // 2, f"the tiled search found only {sum(full_hits)} of {N_PHOTOS} plates"
    lost = [k for k in range(N_PHOTOS) if full_hits[k] and not coarse_hits[k]]
    assert not lost, f"coarse-first lost the plates of photos {lost}"
    assert coarse_windows <= full_windows // 2, (coarse_windows, full_windows)


def test_the_sharpening_tile_has_the_frames_tile_side(model_set: ModelSet) -> None:
    """The one tile around a plate the whole look saw small is of the tile side asked for (a closer look's),
    not the vehicle crops' default: a smaller tile is a closer look at the plate."""
    detector = PlateDetector(model_set.plates.detector, tile=model_set.plates.tile)
    image = np.zeros((900, 900, 3), np.uint8)
    small = Detections(np.float32([[400, 400, 440, 420]]), np.float32([0.9]), np.zeros(1, np.int64))
    windows = search_windows(900, 900, 300)
    more = detector._after_whole_look(small, image, windows, CONF, 300)
    assert len(more) == 1
    x0, y0, x1, y1 = more[0]
    assert (x1 - x0, y1 - y0) == (300, 300) and x0 <= 400 and x1 >= 440


def test_the_cascades_closer_look_is_coarse_first(model_set: ModelSet, shared_dir: Path) -> None:
    """``PlateCascade``'s closer look (a frame without vehicles, the benchmark's single photos) searches coarse
    first like the engine: a close-up whose plate the whole look finds costs one or two windows, not the
    whole frame's tiles."""
    image, truth = moto_photos(shared_dir, 1)[0]
    counts = {}
    for coarse in (False, True):
        counting = CountingDetector(model_set.plates.detector)
        plates = PlateDetector(counting, tile=model_set.plates.tile, calibration=model_set.plates.calibration)
        cascade = PlateCascade(model_set.vehicles, plates, coarse_first=coarse, plate_confidence=CONF)
        dets = cascade._closer_look(image)
        assert found(dets, truth)
        counts[coarse] = counting.windows
    assert counts[True] <= 2 < counts[False], counts
