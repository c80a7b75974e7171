"""Plate detection benchmark: recall and precision at IoU 0.5, full frame and vehicle-crop cascade.

Usage::

    python -m benchmarks.plate_detection --labels ../shared/data/plates_openalpr_us/labels.csv [--json OUT] [--fit]

The labels file has ``relative_path,label,x,y,w,h,...`` (one row per plate, paths relative to the labels file).
Both figures use the engine's own models and code (:func:`pipeline.models.registry.load_model_set`):
``recall``/``precision`` for the plate detector on the whole frame (with its search windows),
``cascade_recall``/``cascade_precision`` for the cascade the engine runs (COCO vehicles -> crop with margin ->
plate detector on the crop and, for large crops, its tiles -> calibrated boxes mapped back to the frame,
:class:`pipeline.models.plate_detector.PlateCascade`). Each ground-truth box matches at most one detection
(greedy by score); a frame without any vehicle is searched whole, as the engine does. ``vehicle_cascade_recall``
counts only the cascade's plates in frames where the vehicle detector found a vehicle (on the motorcycle photos
about half of the plates are in frames with none); ``raw_cascade_recall`` scores the detector's own (uncalibrated) boxes.
``cascade_ms_per_image`` is the wall time of the cascade alone (vehicle detector and plate search, one frame at a
time, its crops batched); ``plate_search_ms_per_plate_found`` divides the plate search's part (vehicle crops,
whole-frame window, turned looks) and ``cascade_ms_per_plate_found`` the whole cascade's by the plates it found.

``--fit`` also prints the box calibration (:class:`pipeline.models.plate_detector.BoxCalibration`) that these
labels imply: median width ratio and median height excess per unit of width over detections matched at IoU 0.2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.report import add_engine_set, engine_settings
from pipeline.config import EngineConfig
from pipeline.detections import Detections
from pipeline.engine.tracking import iou_matrix
from pipeline.models.onnx_utils import RUNTIMES
from pipeline.models.plate_detector import PlateCascade

logger = logging.getLogger(__name__)


def read_boxes(labels: Path) -> dict[Path, list[list[float]]]:
    """Ground-truth plate boxes (x1, y1, x2, y2) per image."""
    out: dict[Path, list[list[float]]] = defaultdict(list)
    with labels.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            out[labels.parent / row["relative_path"]].append([x, y, x + w, y + h])
    return out


def match(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> int:
    """True positives with greedy one-to-one matching by score."""
    if len(boxes) == 0 or len(gt) == 0:
        return 0
    m = iou_matrix(np.asarray(boxes, np.float32), gt)
    free = np.ones(len(gt), bool)
    tp = 0
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(free, m[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou:
            free[j] = False
            tp += 1
    return tp


def box_ratios(dets: Detections, gt: np.ndarray, iou: float = 0.2) -> list[tuple[float, float]]:
    """``(gt_w / det_w, (det_h - gt_h) / det_w)`` of the detector's own box best matching each ground truth."""
    raw = np.asarray(dets.data.get("reading_xyxy", dets.xyxy), np.float32).reshape(-1, 4)
    if not len(raw):
        return []
    m = iou_matrix(raw, gt)
    out = []
    for j in range(len(gt)):
        i = int(np.argmax(m[:, j]))
        if m[i, j] >= iou:
            dw, dh = raw[i, 2] - raw[i, 0], raw[i, 3] - raw[i, 1]
            gw, gh = gt[j, 2] - gt[j, 0], gt[j, 3] - gt[j, 1]
            out.append((float(gw / dw), float((dh - gh) / dw)))
    return out


def build_cascade(plate_conf: float, vehicle_conf: float, device: str = "auto",
                  precision: str = "auto", whole_frame: str = "window", whole_frame_tile: int = 0,
                  second_look: bool = True, plate_search: str = "coarse_first", runtime: str = "auto",
                  closer_look: bool = True, detector_upscale: bool = False,
                  engine_set: dict[str, Any] | None = None) -> PlateCascade:
    """The engine's models (derived batch files, ``engine.model_precision``, ``engine.runtime``) wired as a
    stand-alone cascade with the engine's plate settings (``engine.plates_whole_frame``,
    ``engine.plate_second_look``, ``engine.plate_search``, ``engine.detector_upscale``); ``engine_set`` sets any
    ``engine:`` setting over these (``plate_canvas``, ``runtime``)."""
    from pipeline.models.registry import load_model_set

    config = EngineConfig(**{"plate_confidence": plate_conf, "vehicle_confidence": vehicle_conf,
                             "model_precision": precision, "runtime": runtime, "detector_upscale": detector_upscale,
                             **(engine_set or {})})
    models = load_model_set(config, device=device)
    return PlateCascade(models.vehicles, models.plates, vehicle_confidence=vehicle_conf, whole_frame=whole_frame,
                        whole_frame_tile=whole_frame_tile, second_look=second_look,
                        coarse_first=plate_search == "coarse_first", plate_confidence=plate_conf,
                        closer_look=closer_look)


def run(labels: Path, conf: float = 0.25, vehicle_conf: float = 0.15, device: str = "auto",
        cascade: PlateCascade | None = None, iou: float = 0.5) -> tuple[dict[str, float], list[tuple[float, float]]]:
    """Evaluate one labels file; returns the flat metrics dict and the box ratios for ``--fit``."""
    gt = read_boxes(labels)
    cascade = cascade or build_cascade(conf, vehicle_conf, device)
    n_gt = tp_full = n_full = tp_cas = n_cas = tp_raw = tp_veh = 0
    ratios: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    spent = dict(cascade.seconds)
    for i, (path, boxes) in enumerate(gt.items()):
        img = cv2.imread(str(path))
        if img is None:
            raise FileNotFoundError(f"cannot read {path}")
        g = np.asarray(boxes, np.float32)
        n_gt += len(g)
        full = cascade.full_frame(img)
        full = full[full.confidence >= conf]
        tp_full += match(full.xyxy, full.confidence, g, iou)
        n_full += len(full)
        plates, vehicles = cascade.detect(img)
        plates = plates[plates.confidence >= conf]
        if len(vehicles):
            tp_veh += match(plates.xyxy, plates.confidence, g, iou)
        tp_cas += match(plates.xyxy, plates.confidence, g, iou)
        tp_raw += match(np.asarray(plates.data.get("reading_xyxy", plates.xyxy), np.float32).reshape(-1, 4),
                        plates.confidence, g, iou)
        n_cas += len(plates)
        ratios += box_ratios(plates, g)
        if (i + 1) % 25 == 0:
            logger.warning("%d/%d images, cascade recall so far %.3f", i + 1, len(gt), tp_cas / max(n_gt, 1))
    ms = (time.perf_counter() - t0) * 1000 / max(len(gt), 1)
    vehicle_s, plate_s = (cascade.seconds[k] - spent[k] for k in ("vehicles", "plates"))
    return {
        "n": len(gt),
        "n_plates": n_gt,
        "recall": tp_full / max(n_gt, 1),
        "precision": tp_full / n_full if n_full else 0.0,
        "cascade_recall": tp_cas / max(n_gt, 1),
        "cascade_precision": tp_cas / n_cas if n_cas else 0.0,
        "raw_cascade_recall": tp_raw / max(n_gt, 1),
        "vehicle_cascade_recall": tp_veh / max(n_gt, 1),
        "iou": iou,
        "plate_conf": conf,
        "vehicle_conf": vehicle_conf,
        "ms_per_image": ms,
        "cascade_ms_per_image": (vehicle_s + plate_s) * 1000 / max(len(gt), 1),
        "plate_search_ms_per_plate_found": plate_s * 1000 / max(tp_cas, 1),
        "cascade_ms_per_plate_found": (vehicle_s + plate_s) * 1000 / max(tp_cas, 1),
    }, ratios


def fit_calibration(ratios: list[tuple[float, float]]) -> dict[str, float]:
    """Median width scale and height trim (see :class:`~pipeline.models.plate_detector.BoxCalibration`)."""
    if not ratios:
        return {}
    arr = np.asarray(ratios)
    return {"width_scale": float(np.median(arr[:, 0])), "height_trim": float(np.median(arr[:, 1])),
            "matched": len(arr)}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True, nargs="+", help="one or more labels files")
    ap.add_argument("--json", type=Path, default=None, help="write the metrics as a flat JSON object")
    ap.add_argument("--conf", type=float, default=0.25, help="plate detector confidence threshold")
    ap.add_argument("--vehicle-conf", type=float, default=0.15,
                    help="vehicle score; default 0.15, the tracker's floor for continuing a vehicle's track "
                         "(engine.vehicle_confidence / 2); a new track needs engine.vehicle_confidence (0.3): "
                         "--vehicle-conf 0.3 measures what the engine does with a single photo")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=("auto", "int8", "fp32", "int8-static"), default="auto",
                    help="engine.model_precision of the detectors (auto: the plate detector int8-static, the vehicle "
                         "detector fp32, on ONNX Runtime on the CPU)")
    ap.add_argument("--runtime", choices=RUNTIMES, default="auto",
                    help="engine.runtime of the detectors (auto: the fastest measured for this kind of CPU)")
    ap.add_argument("--iou", type=float, default=0.5,
                    help="IoU a detection needs with a labelled box (0.5; 0.3 for labels drawn tight around the "
                         "characters, as plates_thai_moto/detection.csv, whose boxes are smaller than the plate)")
    ap.add_argument("--whole-frame", choices=("off", "window", "tiles"), default="window",
                    help="engine.plates_whole_frame: also search frames with vehicles whole (default window)")
    ap.add_argument("--whole-frame-tile", type=int, default=0, help="tile side of --whole-frame tiles (0: 480)")
    ap.add_argument("--no-second-look", action="store_true", help="engine.plate_second_look off")
    ap.add_argument("--plate-search", choices=("coarse_first", "all_windows"), default="coarse_first",
                    help="engine.plate_search: tiles of a large vehicle crop only where its whole look found no "
                         "readable plate (coarse_first, default) or always (all_windows)")
    ap.add_argument("--no-closer-look", action="store_true",
                    help="no closer look (whole frame in tiles) at frames whose vehicles and windows show no plate")
    ap.add_argument("--detector-upscale", action="store_true",
                    help="engine.detector_upscale on: photos smaller than 640 px enlarged for the vehicle detector")
    add_engine_set(ap, "an engine: setting of the models, e.g. plate_canvas=square; repeatable")
    ap.add_argument("--fit", action="store_true", help="print the box calibration these labels imply")
    args = ap.parse_args(argv)
    args.engine_set = engine_settings(ap, args.engine_set)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cascade = build_cascade(args.conf, args.vehicle_conf, args.device, args.precision, args.whole_frame,
                            args.whole_frame_tile, not args.no_second_look, args.plate_search, args.runtime,
                            closer_look=not args.no_closer_look, detector_upscale=args.detector_upscale,
                            engine_set=args.engine_set)
    results: dict[str, dict[str, float]] = {}
    all_ratios: list[tuple[float, float]] = []
    for labels in args.labels:
        res, ratios = run(labels, args.conf, args.vehicle_conf, args.device, cascade, args.iou)
        results[labels.parent.name] = res
        all_ratios += ratios
    names = list(results)
    print(f"{'metric':<32}" + "".join(f"{n[-22:]:>24}" for n in names))
    for key in results[names[0]]:
        cells = "".join(f"{results[n][key]:>24.4f}" if isinstance(results[n][key], float)
                        else f"{results[n][key]:>24}" for n in names)
        print(f"{key:<32}{cells}")
    if args.fit:
        print("box calibration fit:", json.dumps(fit_calibration(all_ratios)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        flat = results[names[0]] if len(names) == 1 else {f"{n}.{k}": v for n in names for k, v in results[n].items()}
        args.json.write_text(json.dumps(flat, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
