"""Whole frames to plate reads, outside the engine: the plate cascade, the rectifier and the reader in a row.

The engine runs the same steps inside its batches (with tracking in between); this is the stand-alone form the
benchmarks and tools use, so that what they measure is what the engine does: the plate detector's box grown by
the engine's reading pad, rectified (corners and layout) when a rectifier is given, read in the layout the
rectifier found (``auto`` on motorcycles when it is unsure), uncertain plates read again from margin views
(:mod:`pipeline.plates.second_read`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.models.plate_detector import PlateCascade
from pipeline.models.yolo import COCO_MOTORCYCLE
from pipeline.plates.geometry import READING_PAD, crop_box
from pipeline.plates.rectifier import PlateRectifier, RectifiedPlate, reading_layout
from pipeline.plates.second_read import read_plates
from pipeline.plates.types import PlateRead, PlateReader


@dataclass
class ScenePlate:
    """One plate found in a frame: tight box and detector's box (frame pixels), score, read, rectification."""

    box: np.ndarray
    reading_box: np.ndarray
    score: float
    read: PlateRead
    rectified: RectifiedPlate | None


def reading_crop(frame: np.ndarray, box: np.ndarray, pad: tuple[float, float] = READING_PAD) -> np.ndarray:
    """The region handed to the rectifier and reader: ``box`` (xyxy) grown by ``pad`` of its size, clipped."""
    return crop_box(frame, box, *pad)[0]


class SceneReader:
    """``read(frame)`` -> every plate the cascade finds, rectified and read."""

    def __init__(self, cascade: PlateCascade, reader: PlateReader, rectifier: PlateRectifier | None = None,
                 plate_confidence: float = 0.25, second_read: bool = True) -> None:
        self.cascade = cascade
        self.reader = reader
        self.rectifier = rectifier
        self.plate_confidence = plate_confidence
        self.second_read = second_read  # uncertain rectified plates read again from margin views

    def read(self, frame: np.ndarray) -> list[ScenePlate]:
        """Plates of one frame, best detection first."""
        plates, vehicles = self.cascade.detect(frame)
        plates = plates[plates.confidence >= self.plate_confidence]
        if not len(plates):
            return []
        order = np.argsort(-plates.confidence, kind="stable")
        reading = np.asarray(plates.data.get("reading_xyxy", plates.xyxy), np.float32).reshape(-1, 4)
        owner = list(plates.data.get("vehicle", [-1] * len(plates)))
        keep = [i for i in order if min(reading_crop(frame, reading[i]).shape[:2]) >= 4]
        crops = [reading_crop(frame, reading[i]) for i in keep]
        on_moto = [0 <= owner[i] < len(vehicles) and int(vehicles.class_id[owner[i]]) == COCO_MOTORCYCLE
                   for i in keep]
        return self.read_crops(crops, on_moto, [plates.xyxy[i] for i in keep], [reading[i] for i in keep],
                               [float(plates.confidence[i]) for i in keep])

    def read_crops(self, crops: list[np.ndarray], on_motorcycle: list[bool] | None = None,
                   boxes: list[np.ndarray] | None = None, reading_boxes: list[np.ndarray] | None = None,
                   scores: list[float] | None = None) -> list[ScenePlate]:
        """Rectify (when there is a rectifier) and read reading crops."""
        if not crops:
            return []
        n = len(crops)
        on_motorcycle = on_motorcycle or [False] * n
        rectified = self.rectifier.rectify_batch(crops) if self.rectifier is not None else None
        layouts = [reading_layout(rectified[i] if rectified is not None else None, on_motorcycle[i])
                   for i in range(n)]
        reads = read_plates(self.reader, crops, rectified, layouts, self.second_read, rectifier=self.rectifier)
        empty = np.zeros(4, np.float32)
        return [ScenePlate(boxes[i] if boxes else empty, reading_boxes[i] if reading_boxes else empty,
                           scores[i] if scores else 0.0, reads[i], rectified[i] if rectified is not None else None)
                for i in range(n)]
