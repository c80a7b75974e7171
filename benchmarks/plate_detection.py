"""Plate detection benchmark: recall and precision at IoU 0.5, full frame and vehicle-crop cascade.

Usage::

    python -m benchmarks.plate_detection --labels ../shared/data/plates_openalpr_us/labels.csv [--json OUT]

The labels file has ``relative_path,label,x,y,w,h,...`` (one row per plate, paths relative to the labels file).
``recall``/``precision`` are for the plate detector on the whole frame; ``cascade_recall``/``cascade_precision``
for the cascade (COCO vehicles -> crop with margin -> plate detector at 320 -> boxes mapped back, merged with the
full-frame detections by NMS). Each ground-truth box matches at most one detection (greedy by score).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from benchmarks._yolo_onnx import Detections, PlateCascade, iou_matrix

logger = logging.getLogger(__name__)


def read_boxes(labels: Path) -> dict[Path, list[list[float]]]:
    """Ground-truth plate boxes (x1, y1, x2, y2) per image."""
    out: dict[Path, list[list[float]]] = defaultdict(list)
    with labels.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            out[labels.parent / row["relative_path"]].append([x, y, x + w, y + h])
    return out


def match(dets: Detections, gt: np.ndarray, iou: float = 0.5) -> tuple[int, int]:
    """(true positives, number of detections) with greedy one-to-one matching by score."""
    if len(dets.boxes) == 0:
        return 0, 0
    m = iou_matrix(dets.boxes, gt)
    used: set[int] = set()
    tp = 0
    for i in np.argsort(-dets.scores):
        if m.shape[1] == 0:
            break
        j = int(np.argmax(np.where([k in used for k in range(m.shape[1])], -1, m[i])))
        if m[i, j] >= iou and j not in used:
            used.add(j)
            tp += 1
    return tp, len(dets.boxes)


def run(labels: Path, conf: float = 0.25, vehicle_conf: float = 0.25, margin: float = 0.1) -> dict[str, float]:
    """Evaluate one labels file; returns the flat metrics dict."""
    gt = read_boxes(labels)
    cascade = PlateCascade(plate_conf=conf, vehicle_conf=vehicle_conf, margin=margin)
    n_gt = tp_full = n_full = tp_cas = n_cas = 0
    t0 = time.perf_counter()
    for path, boxes in gt.items():
        img = cv2.imread(str(path))
        if img is None:
            raise FileNotFoundError(f"cannot read {path}")
        g = np.asarray(boxes, np.float32)
        n_gt += len(g)
        full = cascade.full_frame(img)
        a, b = match(full, g)
        tp_full += a
        n_full += b
        plates, _ = cascade.cascade(img)
        a, b = match(plates, g)
        tp_cas += a
        n_cas += b
    ms = (time.perf_counter() - t0) * 1000 / max(len(gt), 1)
    return {
        "n": len(gt),
        "n_plates": n_gt,
        "recall": tp_full / max(n_gt, 1),
        "precision": tp_full / n_full if n_full else 0.0,
        "cascade_recall": tp_cas / max(n_gt, 1),
        "cascade_precision": tp_cas / n_cas if n_cas else 0.0,
        "plate_conf": conf,
        "vehicle_conf": vehicle_conf,
        "ms_per_image": ms,
    }


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None, help="write the metrics as a flat JSON object")
    ap.add_argument("--conf", type=float, default=0.25, help="plate detector confidence threshold")
    ap.add_argument("--vehicle-conf", type=float, default=0.25)
    ap.add_argument("--margin", type=float, default=0.1, help="margin around vehicle crops (fraction)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    res = run(args.labels, args.conf, args.vehicle_conf, args.margin)
    print(f"{'metric':<20}{'value':>10}")
    for k, v in res.items():
        print(f"{k:<20}{v:>10.4f}" if isinstance(v, float) else f"{k:<20}{v:>10}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
