"""Licence-plate detector (one-class Ultralytics YOLO, 320 px) run batched on vehicle crops.

Two things sit between the raw network and the rest of the pipeline:

- **search windows**: a large vehicle crop (a bus, a truck, a van close to the camera) shrunk to the 320 px
  input leaves its plate a few pixels tall, so crops larger than :attr:`PlateDetector.tile` are searched as a
  whole *and* as overlapping tiles of that size; every window goes into the same batched network call and the
  detections are merged by NMS.
- **box calibration**: the upstream detector draws its box with a margin around the plate that grows with the
  plate's width (about 4 % of the width left and right, 7 % above and below). :class:`BoxCalibration` maps it to
  the tight plate rectangle (``benchmarks.plate_detection --fit`` measures the two factors on labelled scenes).
  The detector's own box is kept in ``data["reading_xyxy"]``: the reader was trained on crops with that margin.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.detections import Detections
from pipeline.models.onnx_utils import box_overlap, nms
from pipeline.models.yolo import VEHICLE_CLASSES, UltralyticsDetector, YoloOnnxDetector, load_yolo_detector

logger = logging.getLogger(__name__)

PLATE_CLASS = 0
TILE_FACTOR = 1.5  # tile side = 1.5 x the network input (480 px for the 320 px detector)
TILE_OVERLAP = 0.25
ONE_WINDOW_SLACK = 1.2  # an image up to this many tile sides long is searched as one window
MERGE_IOU = 0.5
MERGE_IOS = 0.6  # intersection over the smaller box above which two plate boxes are one plate
VEHICLE_MARGIN = 0.1  # vehicle crops grow by 10 % of the box on each side (plates sit on the bumper edge)
WHOLE_FRAME_MODES = ("off", "window", "tiles")
COARSE_SHARP_PLATE_PX = 64.0
"""Width (network input pixels) from which the box of a plate found by the whole-crop look is sharp enough to read
from without a tile around it (coarse first)."""
CANVAS_SIDES = (256, 320)
"""With ``engine.plate_canvas: fit`` a window's canvas is 320 px one way and the smallest of these that holds it
the other (three canvases, made at load). A 16:9 whole frame is not put on 192 x 320, which holds it: on that
canvas (grey above and below it 6 px instead of 70) the detector saw large false plates around vehicles and lost
one plate of the OpenALPR US frames (2026-12-03, the cascade of ``benchmarks.plate_detection``: with 192 too, US
144 -> 143 plates found, 174 -> 183 boxes; with 256 and 320 only, US 144 -> 145, 174 -> 177 boxes, EU 71 -> 71,
Thai motorcycle photos 102 -> 103 at IoU 0.3, plate search per plate found 12-14 % less time; README)."""
MAX_CANVASES = 2 * len(CANVAS_SIDES) - 1
"""Canvases the plate detector keeps a rewritten network for (about 18 MB each): the square and the others."""
SECOND_LOOK_ANGLES = (-25.0, 25.0)  # crops with no plate are searched again turned by these (rolled plates)
COARSE_TILE_SHARE = 0.6
"""A whole frame searched turned in one window loses the plates a tile finds, and in tiles of the upright search's
side costs 10-30 windows an angle; :meth:`PlateDetector.coarse_tile` sizes its tiles at this share of the turned
frame's longer side: the turned frame whole and 2 x 2 tiles, five windows an angle. An image searched upright in one
window (a vehicle crop, ``crop=True``) is searched turned in one window too: its turned canvas is about a fifth
larger, and in tiles of the upright side it took five windows an angle (90 ms for a 500 x 360 crop on the 2-core CPU,
against 15 ms upright). A whole frame keeps its 2 x 2 tiles even when small: in one window the turned 512 x 384
scenes of the angle sweep lose plates rolled 30 degrees (0.89 -> 0.83 read)."""


@dataclass(frozen=True)
class BoxCalibration:
    """Detector box -> tight plate box: ``w' = width_scale * w``, ``h' = h - height_trim * w``, same centre.

    Defaults: medians over 210 matched plates of the OpenALPR US and EU development scenes
    (``python -m benchmarks.plate_detection --fit``); the height never shrinks below ``min_height`` of itself.
    """

    width_scale: float = 0.90
    height_trim: float = 0.146
    min_height: float = 0.4

    def apply(self, xyxy: np.ndarray) -> np.ndarray:
        """Calibrated copy of ``[N, 4]`` boxes."""
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
        nw = w * self.width_scale
        nh = np.maximum(h - self.height_trim * w, h * self.min_height)
        return np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], axis=1).astype(np.float32)


IDENTITY = BoxCalibration(1.0, 0.0, 1.0)


def _turn_back(xyxy: np.ndarray, inverse: np.ndarray, width: int, height: int) -> np.ndarray:
    """Axis-aligned boxes (clipped to ``width`` x ``height``) around boxes of a turned image mapped back by the
    2x3 affine ``inverse``."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    corners = np.stack([xyxy[:, [0, 1]], xyxy[:, [2, 1]], xyxy[:, [2, 3]], xyxy[:, [0, 3]]], axis=1)  # N,4,2
    back = corners @ inverse[:, :2].T.astype(np.float32) + inverse[:, 2].astype(np.float32)
    lo, hi = back.min(axis=1), back.max(axis=1)
    lo = np.clip(lo, 0, [width, height])
    hi = np.clip(hi, 0, [width, height])
    return np.concatenate([lo, hi], axis=1).astype(np.float32)


def search_windows(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    """The whole image plus, when it is larger than ``tile``, overlapping ``tile``-sized windows covering it."""
    windows = [(0, 0, width, height)]
    if max(width, height) <= tile * ONE_WINDOW_SLACK:
        return windows

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        n = int(np.ceil((size - tile * TILE_OVERLAP) / (tile * (1 - TILE_OVERLAP))))
        n = max(n, 2)
        return [round(i * (size - tile) / (n - 1)) for i in range(n)]

    for y0 in starts(height):
        for x0 in starts(width):
            windows.append((x0, y0, min(width, x0 + tile), min(height, y0 + tile)))
    return windows


def centred_window(box: np.ndarray, width: int, height: int, tile: int) -> tuple[int, int, int, int]:
    """A ``tile``-sized window (clipped to the image) centred on ``box``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0 = int(min(max(0.0, cx - tile / 2), max(0, width - tile)))
    y0 = int(min(max(0.0, cy - tile / 2), max(0, height - tile)))
    return x0, y0, min(width, x0 + tile), min(height, y0 + tile)


def touches_inner_edge(xyxy: np.ndarray, origin: tuple[int, int], tile_hw: tuple[int, int],
                       image_hw: tuple[int, int], tolerance: float = 2.0) -> np.ndarray:
    """Mask of tile boxes (tile pixels) that reach a tile edge lying inside the image (cut objects)."""
    x0, y0 = origin
    th, tw = tile_hw
    ih, iw = image_hw
    cut = np.zeros(len(xyxy), bool)
    if x0 > 0:
        cut |= xyxy[:, 0] <= tolerance
    if y0 > 0:
        cut |= xyxy[:, 1] <= tolerance
    if x0 + tw < iw:
        cut |= xyxy[:, 2] >= tw - tolerance
    if y0 + th < ih:
        cut |= xyxy[:, 3] >= th - tolerance
    return cut


def suppress_overlapping(xyxy: np.ndarray, scores: np.ndarray, threshold: float = MERGE_IOS) -> np.ndarray:
    """Sorted indices of the boxes to keep: a box whose intersection with a better-scoring kept box covers
    ``threshold`` of the smaller of the two goes (a plate cut by a tile edge next to the whole plate)."""
    return np.sort(nms(xyxy, scores, threshold, over="smaller"))


class PlateDetector:
    """Finds plates in vehicle crops; ``detect_batch(crops)`` returns boxes in each crop's own pixels.

    Boxes (``xyxy``) are calibrated to the tight plate rectangle; ``data["reading_xyxy"]`` holds the detector's
    own box, the region to hand the plate reader.
    """

    def __init__(self, detector: YoloOnnxDetector | UltralyticsDetector, tile: int | None = None,
                 calibration: BoxCalibration | None = None) -> None:
        self.detector = detector
        self.imgsz = int(getattr(detector, "imgsz", None) or 320)
        self.tile = int(tile if tile is not None else round(self.imgsz * TILE_FACTOR))
        self.calibration = calibration or BoxCalibration()

    def coarse_tile(self, image_hw: tuple[int, ...], crop: bool = False) -> int:
        """Tile side for searching an image of ``image_hw`` turned: :data:`COARSE_TILE_SHARE` of the longer side of
        the image turned by the second look's steepest angle, never below :attr:`tile`; for a ``crop`` (a vehicle's)
        searched upright in one window (no larger than :func:`search_windows` takes whole), one window."""
        h, w = image_hw[:2]
        a = np.radians(max(abs(v) for v in SECOND_LOOK_ANGLES))
        side = max(w * np.cos(a) + h * np.sin(a), h * np.cos(a) + w * np.sin(a))
        if crop and max(h, w) <= self.tile * ONE_WINDOW_SLACK:
            return int(np.ceil(side))
        return max(self.tile, int(np.ceil(COARSE_TILE_SHARE * side)))

    def closer_tile(self, image_hw: tuple[int, ...]) -> int:
        """Tile side of a closer look at a whole frame: :attr:`tile`, but at most half the frame's longer side (a
        frame smaller than two tiles would get no zoom from them), never below half the network input (2x zoom)."""
        return max(self.imgsz // 2, min(self.tile, int(np.ceil(max(image_hw[:2]) / 2))))

    def detect_batch(self, crops: list[np.ndarray], tiles: list[int] | None = None, coarse_first: bool = False,
                     min_confidence: float = 0.0) -> list[Detections]:
        """Detect plates in every crop (and its tiles) with batched network calls (class id 0).

        ``tiles[i]`` overrides the tile side for crop ``i``: 0 searches it as one window only (a cheap whole-frame
        look for large plates), a side below the network input zooms into it (small plates).

        ``coarse_first`` searches every crop whole first, then, in one more batched call, only where it helps: a
        crop where that look found no plate of at least ``min_confidence`` is searched with all its tiles; one
        where it found a plate that the network saw narrower than :data:`COARSE_SHARP_PLATE_PX` pixels gets one
        tile (of the crop's tile side) centred on that plate (its box sharpened at tile resolution); one whose
        plate the network saw wide enough needs nothing more. A large vehicle whose plate the whole look finds
        costs one or two windows instead of five or more; so does a close-up frame searched whole in tiles.
        """
        windows = [self._windows(crop, None if tiles is None else tiles[i]) for i, crop in enumerate(crops)]
        if not coarse_first:
            return [self._finish(Detections.merge(p)) for p in self._search(crops, windows)]
        parts = self._search(crops, [w[:1] for w in windows])
        fine: list[int] = []
        fine_windows: list[list[tuple[int, int, int, int]]] = []
        for i, wins in enumerate(windows):
            if len(wins) > 1:
                side = self._tile_side(crops[i], None if tiles is None else tiles[i])
                more = self._after_whole_look(parts[i][0], crops[i], wins, min_confidence, side)
                if more:
                    fine.append(i)
                    fine_windows.append(more)
        if fine:
            for i, extra in zip(fine, self._search([crops[i] for i in fine], fine_windows), strict=True):
                parts[i].extend(extra)
        return [self._finish(Detections.merge(p)) for p in parts]

    def _tile_side(self, crop: np.ndarray, tile: int | None) -> int:
        """The tile side a crop is searched with: :attr:`tile` by default, ``tile`` when given, the crop's longer
        side for 0 (one window)."""
        return self.tile if tile is None else tile or max(crop.shape[:2])

    def _windows(self, crop: np.ndarray, tile: int | None) -> list[tuple[int, int, int, int]]:
        """The crop's search windows: the whole crop first, then its tiles."""
        h, w = crop.shape[:2]
        if not (h and w):
            return []
        return search_windows(w, h, self._tile_side(crop, tile))

    def _search(self, crops: list[np.ndarray], windows: list[list[tuple[int, int, int, int]]]
                ) -> list[list[Detections]]:
        """One batched network call over the given windows of each crop; per crop, its windows' detections in
        crop pixels (a plate cut by a tile's inner edge dropped)."""
        images: list[np.ndarray] = []
        owners: list[tuple[int, int, int]] = []
        for i, (crop, wins) in enumerate(zip(crops, windows, strict=True)):
            for x0, y0, x1, y1 in wins:
                images.append(crop[y0:y1, x0:x1])
                owners.append((i, x0, y0))
        raw = self.detector.detect_batch(images) if images else []
        parts: list[list[Detections]] = [[] for _ in crops]
        for (i, x0, y0), image, dets in zip(owners, images, raw, strict=True):
            if image.shape[:2] != crops[i].shape[:2]:  # a tile: a plate cut by an inner edge is not a plate
                dets = dets[~touches_inner_edge(dets.xyxy, (x0, y0), image.shape[:2], crops[i].shape[:2])]
            parts[i].append(dets.with_offset(x0, y0) if x0 or y0 else dets)
        return parts

    def _after_whole_look(self, whole: Detections, crop: np.ndarray, windows: list[tuple[int, int, int, int]],
                          min_confidence: float, side: int) -> list[tuple[int, int, int, int]]:
        """The windows a crop still needs after its whole look found ``whole`` (coarse first): every tile when no
        plate reached ``min_confidence``, one tile of ``side`` pixels centred on the best plate when the network
        saw it narrower than :data:`COARSE_SHARP_PLATE_PX`, none otherwise."""
        confident = whole[whole.confidence >= min_confidence] if len(whole) else whole
        if not len(confident):
            return windows[1:]
        best = confident.xyxy[int(np.argmax(confident.confidence))]
        if (best[2] - best[0]) * self.imgsz / max(crop.shape[:2]) >= COARSE_SHARP_PLATE_PX:
            return []
        return [centred_window(best, crop.shape[1], crop.shape[0], side)]

    def detect_rotated(self, crops: list[np.ndarray], angles: tuple[float, ...] = SECOND_LOOK_ANGLES,
                       tiles: list[int] | None = None) -> list[Detections]:
        """Second look for plates rolled too far for the upright detector: each crop is searched turned by each
        of ``angles`` (degrees, on a canvas that holds the whole turned crop), in one batched call. A plate found
        there comes back as the crop-pixel box around the turned-back detector box (the reading box likewise),
        so it holds the whole rolled plate; the rectifier straightens it. ``tiles[i]`` is crop ``i``'s tile side
        as in :meth:`detect_batch` (0: each turned canvas is one window, as the whole-frame window searches it
        upright)."""
        images: list[np.ndarray] = []
        image_tiles: list[int] = []
        owners: list[tuple[int, np.ndarray]] = []
        for i, crop in enumerate(crops):
            h, w = crop.shape[:2]
            if min(h, w) < 8:
                continue
            for angle in angles:
                m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
                cos, sin = abs(m[0, 0]), abs(m[0, 1])
                nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
                m[0, 2] += nw / 2 - w / 2
                m[1, 2] += nh / 2 - h / 2
                images.append(cv2.warpAffine(crop, m, (nw, nh), flags=cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_REPLICATE))
                image_tiles.append(self.tile if tiles is None else tiles[i])
                owners.append((i, cv2.invertAffineTransform(m)))
        found = self.detect_batch(images, image_tiles) if images else []
        parts: list[list[Detections]] = [[] for _ in crops]
        for (i, inverse), dets in zip(owners, found, strict=True):
            if not len(dets):
                continue
            h, w = crops[i].shape[:2]
            boxes = _turn_back(dets.xyxy, inverse, w, h)
            reading = _turn_back(np.asarray(dets.data["reading_xyxy"], np.float32), inverse, w, h)
            parts[i].append(Detections(boxes, dets.confidence, dets.class_id, None, {"reading_xyxy": reading}))
        out = []
        for p in parts:
            merged = Detections.merge(p)
            if len(merged) > 1:
                merged = merged[np.sort(nms(merged.xyxy, merged.confidence, MERGE_IOU))]
            if not len(merged):
                merged.data["reading_xyxy"] = np.zeros((0, 4), np.float32)
            out.append(merged)
        return out

    def look_again(self, crops: list[np.ndarray], found: list[Detections], min_confidence: float = 0.0,
                   eligible: list[int] | None = None, tiles: list[int] | None = None) -> list[Detections]:
        """``found`` (one result per crop, updated in place and returned) with every crop in which no plate
        reached ``min_confidence`` searched again turned (:meth:`detect_rotated`, ``tiles`` per crop as there);
        ``eligible`` limits that to some crop indices."""
        candidates = range(len(crops)) if eligible is None else eligible
        missed = [k for k in candidates if not has_plate(found[k], min_confidence)]
        if missed:
            turned = self.detect_rotated([crops[k] for k in missed],
                                         tiles=None if tiles is None else [tiles[k] for k in missed])
            for k, dets in zip(missed, turned, strict=True):
                found[k] = dets
        return found

    def _finish(self, dets: Detections) -> Detections:
        if len(dets) > 1:
            dets = dets[np.sort(nms(dets.xyxy, dets.confidence, MERGE_IOU))]
            dets = dets[suppress_overlapping(dets.xyxy, dets.confidence)]
        data = dict(dets.data)
        data["reading_xyxy"] = dets.xyxy.copy()
        return Detections(self.calibration.apply(dets.xyxy), dets.confidence, dets.class_id, dets.tracker_id, data)


def load_plate_detector(
    path: Path, conf: float = 0.25, iou: float = 0.45, device: str = "auto", backend: str = "auto",
    max_batch: int | None = None, calibration: BoxCalibration | None = None, runtime: str = "onnxruntime",
    canvas: str = "square",
) -> PlateDetector:
    """Load the plate detector from an ONNX file (ONNX Runtime, or OpenVINO with ``runtime="openvino"``) or any
    Ultralytics format. ``canvas="fit"`` runs each window on the smallest of a few canvases that holds it
    (:data:`CANVAS_SIDES`), their networks made at load."""
    detector = load_yolo_detector(path, conf=conf, iou=iou, classes=None, device=device, backend=backend,
                                  max_batch=max_batch, runtime=runtime, canvas=canvas,
                                  canvas_sides=CANVAS_SIDES, max_canvases=MAX_CANVASES)
    if isinstance(detector, YoloOnnxDetector):
        detector.prepare_canvases()
    return PlateDetector(detector, calibration=calibration)


def crop_boxes(frame: np.ndarray, xyxy: np.ndarray, margin: float = 0.0) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Cut ``frame`` at each box (grown by ``margin`` of its size); returns ``(crop, (x0, y0))`` per box.

    Plate boxes found in a crop map back to the frame with ``Detections.with_offset(x0, y0)``.
    """
    h, w = frame.shape[:2]
    out: list[tuple[np.ndarray, tuple[int, int]]] = []
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float32).reshape(-1, 4):
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        x0, y0 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
        x3, y3 = int(min(w, np.ceil(x2 + mx))), int(min(h, np.ceil(y2 + my)))
        x3, y3 = max(x3, x0 + 1), max(y3, y0 + 1)
        out.append((frame[y0:y3, x0:x3], (x0, y0)))
    return out


class PlateCascade:
    """Vehicle detector -> vehicle crops (with margin) -> plate detector; plates in frame pixels.

    The engine runs the same steps inside its batches (with tracking in between); this class is the stand-alone
    form used by the benchmarks and tools. ``data["vehicle"]`` is the index of the vehicle a plate belongs to
    (-1: none). Like the engine:

    - a frame without any vehicle (a close-up gate view) is searched whole, with tiles of
      :meth:`PlateDetector.closer_tile` (``engine.plates_without_vehicle``);
    - a vehicle crop or whole frame in which no plate reaches the plate confidence is searched again turned by
      +-25 degrees (``engine.plate_second_look``: plates rolled too far for the upright detector, which often
      gives them a weak upright hit); the whole frame of a frame with vehicles too when no window found a plate
      (a rolled plate of a vehicle the vehicle detector missed), turned as it was searched upright (one window
      in ``window`` mode); the engine gives such frames that look on its ten-second schedule;
    - a vehicle crop larger than the plate detector's tile, and a frame searched in tiles (without vehicles, or
      a closer look), is searched whole first and with its tiles only where no readable plate was found
      (``engine.plate_search: coarse_first``; ``all_windows``: every window at once);
    - a frame with vehicles is also searched whole (``engine.plates_whole_frame``: ``window``, one window;
      ``tiles``, one window plus overlapping tiles of ``whole_frame_tile`` pixels; ``off``), in the same batched
      call as the vehicle crops: a plate found there that no vehicle crop found is added (a close-up motorcycle
      the vehicle detector missed or boxed badly, a plate cut off by a vehicle box), owned by the vehicle whose
      box holds its centre;
    - a frame with vehicles in which nothing of that found a plate gets a closer look (``closer_look``): searched
      whole in tiles of :meth:`PlateDetector.closer_tile` (a night scene whose vehicle boxes miss the plates,
      plates too small for one window); the engine gives the camera's next frame that look, at most every 2 s.
    """

    def __init__(self, vehicles: YoloOnnxDetector | UltralyticsDetector, plates: PlateDetector,
                 vehicle_confidence: float = 0.15, margin: float = VEHICLE_MARGIN,
                 without_vehicle: bool = True, whole_frame: str = "window", whole_frame_tile: int = 0,
                 second_look: bool = True, coarse_first: bool = True, plate_confidence: float = 0.25,
                 closer_look: bool = True) -> None:
        if whole_frame not in WHOLE_FRAME_MODES:
            raise ValueError(f"whole_frame must be one of {WHOLE_FRAME_MODES}, not {whole_frame!r}")
        self.vehicles = vehicles
        self.plates = plates
        self.vehicle_confidence = vehicle_confidence
        self.margin = margin
        self.without_vehicle = without_vehicle
        self.whole_frame = whole_frame
        self.whole_frame_tile = whole_frame_tile or plates.tile
        self.second_look = second_look
        self.coarse_first = coarse_first
        self.plate_confidence = plate_confidence
        self.closer_look = closer_look
        self.seconds = {"vehicles": 0.0, "plates": 0.0}
        """Wall time :meth:`detect` spent so far in the vehicle detector and in the plate search after it."""

    def find_vehicles(self, frame: np.ndarray) -> Detections:
        """COCO vehicles (car, motorcycle, bus, truck) above the vehicle confidence."""
        dets = self.vehicles.detect_batch([frame])[0]
        return dets[np.isin(dets.class_id, VEHICLE_CLASSES) & (dets.confidence >= self.vehicle_confidence)]

    def detect(self, frame: np.ndarray) -> tuple[Detections, Detections]:
        """``(plates, vehicles)`` of one frame; plates from all vehicle crops in one batch, merged by NMS."""
        start = time.perf_counter()
        vehicles = self.find_vehicles(frame)
        searched = time.perf_counter()
        self.seconds["vehicles"] += searched - start
        try:
            return self._plates_of(frame, vehicles), vehicles
        finally:
            self.seconds["plates"] += time.perf_counter() - searched

    def _plates_of(self, frame: np.ndarray, vehicles: Detections) -> Detections:
        """The plates of one frame given its vehicles (the plate-search part of :meth:`detect`)."""
        if not len(vehicles) and self.without_vehicle:
            plates = self._closer_look(frame)
            if self.second_look:
                plates = self.plates.look_again([frame], [plates], self.plate_confidence)[0]
            plates.data["vehicle"] = [-1] * len(plates)
            return plates
        crops = crop_boxes(frame, vehicles.xyxy, self.margin)
        whole = [frame] if self.whole_frame != "off" and len(vehicles) else []
        whole_tile = self.whole_frame_tile if self.whole_frame == "tiles" else 0
        found = self.plates.detect_batch([c for c, _ in crops], coarse_first=self.coarse_first,
                                         min_confidence=self.plate_confidence)
        found += self.plates.detect_batch(whole, [whole_tile] * len(whole))
        if self.second_look:
            held = plates_held(found[-1], vehicles.xyxy, self.plate_confidence) if whole else set()
            eligible = [k for k in range(len(crops)) if k not in held]
            if whole and not any(has_plate(d, self.plate_confidence) for d in found):
                eligible.append(len(crops))  # no plate anywhere: perhaps a rolled one no vehicle box holds
            # crops and the whole frame (a rolled plate no vehicle box holds) in coarse tiles
            tiles = [self.plates.coarse_tile(c.shape, crop=True) for c, _ in crops] + \
                [self.plates.coarse_tile(frame.shape)] * len(whole)
            self.plates.look_again([c for c, _ in crops] + whole, found, self.plate_confidence, eligible=eligible,
                                   tiles=tiles)
        parts, cut = [], []
        for k, ((crop, (x0, y0)), dets) in enumerate(zip(crops, found[:len(crops)], strict=True)):
            own = np.asarray(dets.data["reading_xyxy"], np.float32).reshape(-1, 4)  # the detector's box
            cut.append(touches_inner_edge(own, (x0, y0), crop.shape[:2], frame.shape[:2]))
            dets = dets.with_offset(x0, y0)
            dets.data["reading_xyxy"] = np.asarray(dets.data["reading_xyxy"]) + np.float32([x0, y0, x0, y0])
            dets.data["vehicle"] = [k] * len(dets)
            parts.append(dets)
        plates = Detections.merge(parts)
        cut_mask = np.concatenate(cut) if cut else np.zeros(0, bool)
        if len(plates) > 1:
            keep = merge_crop_plates(plates.xyxy, plates.confidence, cut_mask)
            plates, cut_mask = plates[keep], cut_mask[keep]
        if len(found) > len(crops):
            plates = add_missed_plates(plates, found[-1], vehicles.xyxy, cut_mask)
            if self.closer_look and not has_plate(plates, self.plate_confidence):
                # every plate so far is below the plate confidence: they and the closer look's compete on
                # confidence (as in the engine, where a confident whole-frame plate wins)
                plates = add_missed_plates(plates, self._closer_look(frame), vehicles.xyxy,
                                           np.ones(len(plates), bool))
        return plates

    def _closer_look(self, frame: np.ndarray) -> Detections:
        """The whole frame searched in tiles of :meth:`PlateDetector.closer_tile`."""
        return self.plates.detect_batch([frame], [self.plates.closer_tile(frame.shape)], coarse_first=self.coarse_first,
                                        min_confidence=self.plate_confidence)[0]

    def full_frame(self, frame: np.ndarray) -> Detections:
        """The plate detector on the whole frame (with its search windows), for comparison."""
        return self.plates.detect_batch([frame])[0]


def has_plate(dets: Detections, min_confidence: float = 0.0) -> bool:
    """Whether a plate detector result holds a plate at ``min_confidence`` or better."""
    return bool((dets.confidence >= min_confidence).any())


def merge_crop_plates(xyxy: np.ndarray, scores: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Sorted indices of the plates (frame pixels) found on overlapping vehicle crops to keep: NMS at
    :data:`MERGE_IOU`, a plate that its crop's edge cuts (``cut``, :func:`touches_inner_edge`) ranking below every
    whole one; then a cut plate that lies mostly inside a kept whole plate (intersection over the smaller box at
    least :data:`MERGE_IOS`) goes: it is a part of that plate, seen whole on another vehicle's crop."""
    cut = np.asarray(cut, bool)
    rank = np.asarray(scores, np.float32) + (~cut).astype(np.float32)
    keep = np.sort(nms(xyxy, rank, MERGE_IOU))
    whole = keep[~cut[keep]]
    parts = [i for i in keep[cut[keep]] if not (box_overlap(xyxy[i], xyxy[whole], over="smaller") >= MERGE_IOS).any()]
    return np.sort(np.r_[whole, np.asarray(parts, np.int64)]).astype(np.int64)


def add_missed_plates(plates: Detections, whole: Detections, vehicle_xyxy: np.ndarray,
                      cut: np.ndarray | None = None) -> Detections:
    """``plates`` plus the plates of the whole-frame window that none of them covers (intersection over the
    smaller box at least :data:`MERGE_IOS`); each added plate is owned (``data["vehicle"]``) by the first vehicle
    whose box holds its centre, or -1. A plate of ``plates`` that its crop's edge cuts (``cut``) does not count as
    covering: it and the whole-frame plate compete on confidence."""
    if not len(whole):
        return plates
    whole = Detections(whole.xyxy, whole.confidence, whole.class_id, whole.tracker_id, dict(whole.data))
    whole.data["vehicle"] = [owner_of(box, vehicle_xyxy) for box in whole.xyxy]
    if not len(plates):
        return whole
    both = Detections.merge([plates, whole])
    # Whole plates found on vehicle crops rank first: a whole-frame box only survives where none of them is.
    first = np.ones(len(plates), np.float32) if cut is None else (~np.asarray(cut, bool)).astype(np.float32)
    rank = both.confidence + np.r_[first, np.zeros(len(whole), np.float32)]
    return both[np.sort(nms(both.xyxy, rank, MERGE_IOS, over="smaller"))]


def plates_held(whole: Detections, vehicle_xyxy: np.ndarray, min_confidence: float) -> set[int]:
    """Indices of the vehicles whose box holds the centre of a whole-frame plate of at least ``min_confidence``:
    their crops need no turned second look when the upright search of the crop finds nothing, the whole-frame
    window has an upright box of their plate (sharper than the hull of a turned one, and two windows cheaper)."""
    if not len(whole):
        return set()
    inside = centres_inside(whole.xyxy[whole.confidence >= min_confidence], vehicle_xyxy)
    return {int(k) for k in np.flatnonzero(inside.any(axis=0))}


def centres_inside(xyxy: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``[len(xyxy), len(boxes)]`` booleans: whether each box of ``boxes`` holds the centre of each of ``xyxy``."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    cx, cy = ((xyxy[:, 0] + xyxy[:, 2]) / 2)[:, None], ((xyxy[:, 1] + xyxy[:, 3]) / 2)[:, None]
    return (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])


def owner_of(box: np.ndarray, vehicle_xyxy: np.ndarray) -> int:
    """Index of the first vehicle box that holds the centre of ``box``, or -1."""
    owners = np.flatnonzero(centres_inside(box, vehicle_xyxy)[0])
    return int(owners[0]) if len(owners) else -1
