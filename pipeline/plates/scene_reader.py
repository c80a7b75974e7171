"""Whole frames to plate reads, outside the engine: the plate cascade, the rectifier and the reader in a row.

The engine runs the same steps inside its batches (with tracking in between); this is the stand-alone form the
benchmarks and tools use, so that what they measure is what the engine does: the plate detector's box grown by
the engine's reading pad, rectified (corners and layout) when a rectifier is given, read in the layout the
rectifier found (``auto`` on motorcycles when it is unsure), uncertain plates read again from margin views
(:mod:`pipeline.plates.second_read`), plates read unsure given a turned look of their region
(:mod:`pipeline.plates.turned_look`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.detections import Detections
from pipeline.models.onnx_utils import box_overlap
from pipeline.models.plate_detector import VEHICLE_MARGIN, PlateCascade
from pipeline.models.yolo import COCO_MOTORCYCLE
from pipeline.plates.geometry import READING_PAD, crop_box
from pipeline.plates.rectifier import PlateRectifier, RectifiedPlate, reading_layout
from pipeline.plates.regrow import better_regrown_read, found_box, regrown_box
from pipeline.plates.second_read import read_plates
from pipeline.plates.turned_look import (
    SAME_PLATE_IOU,
    TURN_MIN_REGION_WIDTH,
    TurnedPlate,
    better_read,
    large_enough,
    turned_plates,
    wants_turned_look,
)
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
                 plate_confidence: float = 0.25, second_read: bool = True, turn_unread: bool = True,
                 regrow: bool = True) -> None:
        self.cascade = cascade
        self.reader = reader
        self.rectifier = rectifier
        self.plate_confidence = plate_confidence
        self.second_read = second_read  # uncertain rectified plates read again from margin views
        self.turn_unread = turn_unread  # plates read unsure: their region searched turned (needs the rectifier)
        self.regrow = regrow  # plates the rectifier finds cut by their box: grown and read again

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
        found = self.read_crops(crops, on_moto, [plates.xyxy[i] for i in keep], [reading[i] for i in keep],
                                [float(plates.confidence[i]) for i in keep])
        if self.regrow and self.rectifier is not None:
            self._regrow_cut(frame, found, on_moto)
        if self.turn_unread and self.rectifier is not None:
            shapes = [reading_crop(frame, plate.reading_box).shape for plate in found]  # grown plates' own crops
            self._turn_unread(frame, found, shapes, [owner[i] for i in keep], vehicles, on_moto)
        return found

    def _regrow_cut(self, frame: np.ndarray, found: list[ScenePlate], on_moto: list[bool]) -> None:
        """Plates whose rectified corners say the detector's box cut them (:func:`regrown_box`): the grown box's
        crop is rectified and read, and replaces the plate when :func:`better_regrown_read`."""
        grown = [(j, *regrowth) for j, plate in enumerate(found) if plate.rectified is not None
                 for regrowth in [regrown_box(frame, plate.reading_box, plate.rectified, on_moto[j])]
                 if regrowth is not None]
        if not grown:
            return
        cuts = [crop_box(frame, box, *READING_PAD) for _, box, _ in grown]
        again = self.read_crops([crop for crop, _, _ in cuts], [on_moto[j] for j, _, _ in grown],
                                [box for _, box, _ in grown], [box for _, box, _ in grown],
                                [found[j].score for j, _, _ in grown])
        for (j, _, cut), (crop, ox, oy), plate in zip(grown, cuts, again, strict=True):
            if better_regrown_read(plate.read, found[j].read, cut):
                if plate.rectified is not None:  # the tight box from the corners found in the grown crop
                    plate.box = found_box(plate.rectified, (ox, oy), crop.shape[:2], found[j].box)
                found[j] = plate

    def _turn_unread(self, frame: np.ndarray, found: list[ScenePlate], crop_shapes: list[tuple[int, ...]],
                     owners: list[int], vehicles: Detections, on_moto: list[bool]) -> None:
        """Plates read unsure (:func:`wants_turned_look`) get a turned look of their region, as in the engine: the
        vehicle's crop (once per vehicle; its best plate's read replaces the plate's when better), and the whole
        frame when a plate that belongs to no vehicle, or every plate, read unsure (each plate found turned there
        replaces the plate it overlaps when it reads better, or joins ``found`` when valid and overlapping none)."""
        unsure = [j for j, plate in enumerate(found) if wants_turned_look(plate.read)]
        targets = list({owners[j]: j for j in reversed(unsure)
                        if 0 <= owners[j] < len(vehicles) and large_enough(crop_shapes[j])}.values())
        regions = [crop_box(frame, vehicles.xyxy[owners[j]], VEHICLE_MARGIN, VEHICLE_MARGIN) for j in targets]
        keep = [k for k, (region, _, _) in enumerate(regions) if region.shape[1] >= TURN_MIN_REGION_WIDTH]
        targets, regions = [targets[k] for k in keep], [regions[k] for k in keep]
        whole = (bool(found) and len(unsure) == len(found)) or any(not 0 <= owners[j] < len(vehicles) for j in unsure)
        crops = [r for r, _, _ in regions] + ([frame] if whole else [])
        detector = self.cascade.plates
        tiles = [detector.coarse_tile(r.shape, crop=True) for r, _, _ in regions] + \
            [detector.coarse_tile(frame.shape)] * whole
        turned = turned_plates(detector, crops, self.plate_confidence, tiles)
        for j, (_, ox, oy), in_region in zip(targets, regions, turned, strict=False):  # the frame's look is last
            if in_region:
                again = self._read_turned(in_region[:1], (ox, oy), on_moto[j])[0]
                if better_read(again.read, found[j].read):
                    found[j] = again
        if whole and turned[-1]:
            for plate in self._read_turned(turned[-1], (0, 0), False):
                self._merge_turned(found, plate)

    def _read_turned(self, plates: list[TurnedPlate], offset: tuple[int, int], on_moto: bool) -> list[ScenePlate]:
        """Turned plates of a region at ``offset`` in the frame, rectified and read, boxes in frame pixels."""
        shift = np.float32([offset[0], offset[1]] * 2)
        return self.read_crops([p.crop for p in plates], [on_moto] * len(plates), [p.box + shift for p in plates],
                               [p.reading_box + shift for p in plates], [p.score for p in plates])

    @staticmethod
    def _merge_turned(found: list[ScenePlate], plate: ScenePlate) -> None:
        """A plate the whole frame's turned look read: replaces the plate of ``found`` it overlaps (IoU at least
        :data:`SAME_PLATE_IOU`) when its read is better; joins ``found`` when valid and overlapping none."""
        if found:
            ious = box_overlap(np.asarray(plate.box, np.float32), np.stack([np.asarray(p.box, np.float32)
                                                                              for p in found]))
            j = int(np.argmax(ious))
            if ious[j] >= SAME_PLATE_IOU:
                if better_read(plate.read, found[j].read):
                    found[j] = plate
                return
        if plate.read.valid:
            found.append(plate)

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
