"""Loading the Thai plate crops (``labels.csv`` in the shared format) and the plate-disjoint split."""

from __future__ import annotations

import csv
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.plates.grammar import CHARSET, normalise_plate
from pipeline.plates.provinces import match_province

logger = logging.getLogger(__name__)

CHAR_INDEX = {ch: i + 1 for i, ch in enumerate(CHARSET)}  # 0 is the CTC blank


@dataclass
class PlateSample:
    """One labelled crop."""

    path: Path
    label: str  # canonical registration
    province: int  # class id, -1 when absent/unknown


def read_labels(labels_csv: Path) -> list[PlateSample]:
    """Read ``relative_path,label[,province,...]``; paths are relative to the labels file."""
    labels_csv = Path(labels_csv)
    out: list[PlateSample] = []
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            prov = match_province(row.get("province") or "")
            out.append(PlateSample(labels_csv.parent / row["relative_path"], normalise_plate(row["label"]),
                                   prov.index if prov else -1))
    return out


def plate_disjoint_split(samples: list[PlateSample], val_fraction: float = 0.15,
                         seed: int = 0) -> tuple[list[int], list[int]]:
    """Split sample indices so that no registration string is in both parts (seeded)."""
    plates = sorted({s.label for s in samples})
    random.Random(seed).shuffle(plates)
    val_plates = set(plates[: int(round(len(plates) * val_fraction))])
    train = [i for i, s in enumerate(samples) if s.label not in val_plates]
    val = [i for i, s in enumerate(samples) if s.label in val_plates]
    return train, val


def read_crop(sample: PlateSample) -> np.ndarray:
    """The sample's crop as BGR ``uint8``; FileNotFoundError when it cannot be read."""
    img = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {sample.path}")
    return img


def load_images(samples: list[PlateSample], size: tuple[int, int]) -> np.ndarray:
    """Load all crops as BGR ``uint8`` ``[N, H, W, 3]`` resized to ``size`` = (H, W)."""
    h, w = size
    arr = np.empty((len(samples), h, w, 3), np.uint8)
    for i, s in enumerate(samples):
        arr[i] = cv2.resize(read_crop(s), (w, h), interpolation=cv2.INTER_AREA)
    return arr


def encode_label(label: str) -> list[int]:
    """CTC target ids of a canonical registration (unknown characters are dropped)."""
    return [CHAR_INDEX[ch] for ch in label if ch in CHAR_INDEX]


def write_split(labels_csv: Path, out_dir: Path, val_fraction: float = 0.15, seed: int = 0) -> dict[str, Path]:
    """Write the plate-disjoint split as ``train.csv`` / ``val.csv`` labels files (absolute image paths).

    The files keep every column of the source, so ``python -m benchmarks.plates --labels <out>/val.csv``
    scores exactly the images the trainer held out (same ``val_fraction`` and ``seed`` as ``train``).
    """
    labels_csv = Path(labels_csv).resolve()
    samples = read_labels(labels_csv)
    train_idx, val_idx = plate_disjoint_split(samples, val_fraction, seed)
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, idx in (("train", train_idx), ("val", val_idx)):
        path = out_dir / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for i in idx:
                writer.writerow(rows[i] | {"relative_path": str(labels_csv.parent / rows[i]["relative_path"])})
        written[name] = path
        logger.info("%s: %d images", path, len(idx))
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.plates.dataset --labels L --out DIR``: write the plate-disjoint split."""
    import argparse

    ap = argparse.ArgumentParser(description=write_split.__doc__)
    ap.add_argument("--labels", type=Path, required=True, help="labels.csv in the shared format")
    ap.add_argument("--out", type=Path, required=True, help="folder for train.csv and val.csv")
    ap.add_argument("--val-fraction", type=float, default=0.15, help="share of distinct plates held out")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of the split (as in train --split-seed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_split(args.labels, args.out, args.val_fraction, args.split_seed)


if __name__ == "__main__":
    main()
