"""Plate reading accuracy benchmark.

Usage::

    python -m benchmarks.plates --labels PATH/labels.csv [--json OUT] [--scenes] [--backend crnn|easyocr]

The labels file has ``relative_path,label[,province,...]`` with paths relative to the labels file. Labels may
contain spaces/hyphens (compared after :func:`pipeline.plates.grammar.normalise_plate`). Reported:

- ``n`` images, ``exact`` (registration exact match), ``char_accuracy`` (1 - edit distance / label length),
- ``province_accuracy`` over rows that carry a province (``n_province`` of them), ``exact_both`` (registration
  and province right, over those rows), ``valid_rate`` (reads matching a Thai grammar),
- ``ms_per_plate``: reader wall time per plate (batched; preprocessing + inference + decoding, no disk I/O).

With ``--scenes`` each image is a whole scene: the vehicle -> plate detector cascade (plus full-frame plate
detection) finds plates, every plate crop is read and the most confident valid read is scored;
``ms_per_plate`` is then the reader time per detected plate and ``ms_per_image`` the whole cascade.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.plates.grammar import normalise_plate
from pipeline.plates.provinces import levenshtein, match_province
from pipeline.plates.reader import PlateRead, load_plate_reader

logger = logging.getLogger(__name__)


def read_rows(labels: Path) -> list[dict[str, str]]:
    """Rows of the labels file with ``path`` resolved against its folder."""
    with labels.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str(labels.parent / r["relative_path"])
    return rows


def score(rows: list[dict[str, str]], reads: list[PlateRead]) -> dict[str, float]:
    """Accuracy figures of ``reads`` against the labelled ``rows``."""
    n = len(rows)
    exact = char_err = char_tot = 0
    n_prov = prov_ok = both_ok = valid = 0
    for row, rd in zip(rows, reads, strict=True):
        gt = normalise_plate(row["label"])
        pred = normalise_plate(rd.text)
        ok = pred == gt
        exact += ok
        char_err += min(levenshtein(pred, gt), len(gt))
        char_tot += len(gt)
        valid += rd.valid
        gp = match_province(row.get("province") or "")
        if gp is not None:
            n_prov += 1
            pok = rd.province == gp.thai
            prov_ok += pok
            both_ok += ok and pok
    return {
        "n": n,
        "exact": exact / n if n else 0.0,
        "char_accuracy": 1.0 - char_err / char_tot if char_tot else 0.0,
        "n_province": n_prov,
        "province_accuracy": prov_ok / n_prov if n_prov else float("nan"),
        "exact_both": both_ok / n_prov if n_prov else float("nan"),
        "valid_rate": valid / n if n else 0.0,
    }


def run_crops(rows: list[dict[str, str]], reader, batch: int) -> tuple[list[PlateRead], float]:
    """Read plate crops in batches; returns reads and reader milliseconds per plate."""
    reads: list[PlateRead] = []
    elapsed = 0.0
    for i in range(0, len(rows), batch):
        crops = []
        for r in rows[i:i + batch]:
            img = cv2.imread(r["path"], cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"cannot read {r['path']}")
            crops.append(img)
        t0 = time.perf_counter()
        reads += reader.read_batch(crops)
        elapsed += time.perf_counter() - t0
    return reads, elapsed * 1000 / max(len(rows), 1)


def run_scenes(rows: list[dict[str, str]], reader) -> tuple[list[PlateRead], float, float, int]:
    """Cascade on whole scenes; returns best read per scene, ms/plate (reader), ms/image, plates read."""
    from benchmarks.plate_detection import build_cascade
    from pipeline.engine.engine import READING_PAD, crop_box

    cascade = build_cascade(0.25, 0.15)
    reads: list[PlateRead] = []
    t_reader = t_total = 0.0
    n_plates = 0
    for r in rows:
        img = cv2.imread(r["path"], cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {r['path']}")
        t0 = time.perf_counter()
        plates, _ = cascade.detect(img)
        crops = []
        for box in np.asarray(plates.data.get("reading_xyxy", plates.xyxy), np.float32).reshape(-1, 4):
            crop, _, _ = crop_box(img, box, *READING_PAD)  # the engine's reading crop
            if crop.shape[0] >= 4 and crop.shape[1] >= 4:
                crops.append(crop)
        t1 = time.perf_counter()
        got = reader.read_batch(crops) if crops else []
        t2 = time.perf_counter()
        t_reader += t2 - t1
        t_total += t2 - t0
        n_plates += len(crops)
        if got:
            best = max(got, key=lambda p: (p.valid, p.confidence))
        else:
            best = PlateRead("", 0.0, [], [], None, None, 0.0, False)
        logger.info("%s: %d plates, best %s %s", r["path"], len(crops), best.text, best.province)
        reads.append(best)
    return reads, t_reader * 1000 / max(n_plates, 1), t_total * 1000 / max(len(rows), 1), n_plates


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None, help="write the metrics as a flat JSON object")
    ap.add_argument("--scenes", action="store_true", help="images are whole scenes: run the detector cascade")
    ap.add_argument("--backend", default="crnn", choices=["crnn", "easyocr"])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="only the first N rows")
    ap.add_argument("--show", type=int, default=0, help="print N wrong reads")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = read_rows(args.labels)
    if args.limit:
        rows = rows[: args.limit]
    reader = load_plate_reader(args.backend, args.model_dir, args.device)
    if args.scenes:
        reads, ms_plate, ms_image, n_plates = run_scenes(rows, reader)
        extra = {"ms_per_image": ms_image, "plates_detected": n_plates}
    else:
        reads, ms_plate = run_crops(rows, reader, args.batch)
        extra = {}
    res: dict[str, float] = {**score(rows, reads), "ms_per_plate": ms_plate, **extra,
                             "backend": args.backend, "scenes": args.scenes}
    print(f"{'metric':<20}{'value':>12}")
    for k, v in res.items():
        print(f"{k:<20}{v:>12.4f}" if isinstance(v, float) else f"{k:<20}{v!s:>12}")
    if args.show:
        shown = 0
        for row, rd in zip(rows, reads, strict=True):
            if normalise_plate(rd.text) != normalise_plate(row["label"]) and shown < args.show:
                print(f"  {row['relative_path']}: gt {row['label']} {row.get('province', '')} -> {rd.text} "
                      f"{rd.province} ({rd.confidence:.2f}) {rd.candidates[:3]}")
                shown += 1
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in res.items()}
        args.json.write_text(json.dumps(clean, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
