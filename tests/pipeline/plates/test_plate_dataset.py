"""The plate-disjoint split written as labels files that the accuracy benchmark reads."""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.plates.dataset import plate_disjoint_split, read_labels, write_split


def test_write_split_is_plate_disjoint_and_matches_trainer(shared_dir: Path, tmp_path: Path) -> None:
    labels = shared_dir / "data" / "plates_thai" / "labels.csv"
    paths = write_split(labels, tmp_path / "split", 0.15, 0)
    parts = {}
    for name, path in paths.items():
        with path.open(newline="", encoding="utf-8") as fh:
            parts[name] = list(csv.DictReader(fh))
    samples = read_labels(labels)
    train_idx, val_idx = plate_disjoint_split(samples, 0.15, 0)
    assert len(parts["train"]) == len(train_idx) and len(parts["val"]) == len(val_idx)
    assert {r["label"] for r in parts["train"]}.isdisjoint({r["label"] for r in parts["val"]})
    assert all(Path(r["relative_path"]).is_file() for r in parts["val"][:20])
    # Read back through the same loader: the same images, labels and provinces as the trainer's split.
    val_back = read_labels(paths["val"])
    assert [s.label for s in val_back] == [samples[i].label for i in val_idx]
    assert [s.province for s in val_back] == [samples[i].province for i in val_idx]
