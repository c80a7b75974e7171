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

from pipeline.detections import Detections
from pipeline.models.plate_detector import PlateDetector, search_windows
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
