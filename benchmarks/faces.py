"""Face recognition benchmark with the engine's own face models (SCRFD + recogniser, batched as in the engine).

Usage: ``python -m benchmarks.faces --labels PATH/labels.csv [--json OUT] [--batch 16] [--device cpu]``

``labels.csv`` is the shared data format (``relative_path,label``, label = identity). Every photo goes through
``FaceAnalyzer.embed_face_images`` (largest face per photo). Reported:

- ``failures_to_detect``: photos where no face was found (left out of the pair statistics below);
- verification over all pairs of detected photos: TAR at FAR 1e-2 and 1e-3 (threshold = the cosine similarity
  that at most that fraction of different-person pairs exceed), genuine/impostor means, pair counts;
- ``rank1``: the first detected photo of each identity is enrolled, every other photo is searched against the
  enrolled gallery (identities with one photo act as distractors); fraction whose best match is the right person;
- ``ms_per_face``: wall time of detection + alignment + embedding per photo, batches of ``--batch`` photos.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.models.registry import load_face_analyzer


def read_labels(path: Path) -> list[tuple[Path, str]]:
    """``(image path, identity)`` rows of a shared-format labels.csv; raises ``ValueError`` naming bad rows."""
    rows: list[tuple[Path, str]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or reader.fieldnames[:2] != ["relative_path", "label"]:
            raise ValueError(f"{path}: first columns must be relative_path,label (got {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            if not row["relative_path"] or not row["label"]:
                raise ValueError(f"{path}:{line}: empty relative_path or label")
            rows.append((path.parent / row["relative_path"], row["label"]))
    return rows


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at the threshold that at most ``far`` of impostor pairs exceed; returns (TAR, threshold)."""
    if not len(genuine) or not len(impostor):
        return float("nan"), float("nan")
    ordered = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(ordered)))
    threshold = float(ordered[min(allowed, len(ordered) - 1)])
    return float((genuine > threshold).mean()), threshold


def rank1(embeddings: list[np.ndarray | None], labels: list[str]) -> tuple[float, int]:
    """Rank-1 identification rate (first detected photo per identity enrolled) and the number of probes."""
    gallery: dict[str, np.ndarray] = {}
    probes: list[tuple[np.ndarray, str]] = []
    for emb, label in zip(embeddings, labels, strict=True):
        if emb is None:
            continue
        if label not in gallery:
            gallery[label] = emb
        else:
            probes.append((emb, label))
    if not probes:
        return float("nan"), 0
    names = list(gallery)
    matrix = np.stack([gallery[n] for n in names])
    hits = sum(names[int(np.argmax(matrix @ emb))] == label for emb, label in probes)
    return hits / len(probes), len(probes)


def evaluate(labels_csv: Path, batch: int = 16, device: str = "cpu") -> dict:
    """Run the benchmark on one labels file and return the figures."""
    rows = read_labels(labels_csv)
    analyzer = load_face_analyzer(device=device)
    embeddings: list[np.ndarray | None] = []
    elapsed = 0.0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        images = []
        for path, _ in chunk:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"{labels_csv}: cannot read image {path}")
            images.append(image)
        began = time.perf_counter()
        embeddings.extend(analyzer.embed_face_images(images))
        elapsed += time.perf_counter() - began
        print(f"\r  {min(start + batch, len(rows))}/{len(rows)} photos", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    labels = [label for _, label in rows]
    found = [i for i, e in enumerate(embeddings) if e is not None]
    matrix = np.stack([embeddings[i] for i in found]) if found else np.zeros((0, analyzer.embedding_size))
    sims = matrix @ matrix.T
    iu = np.triu_indices(len(found), k=1)
    same = np.array([labels[found[a]] == labels[found[b]] for a, b in zip(*iu, strict=True)], dtype=bool)
    scores = sims[iu]
    genuine, impostor = scores[same], scores[~same]
    tar3, thr3 = tar_at_far(genuine, impostor, 1e-3)
    tar2, thr2 = tar_at_far(genuine, impostor, 1e-2)
    r1, probes = rank1(embeddings, labels)
    return {
        "labels": str(labels_csv), "n": len(rows), "identities": len(set(labels)),
        "embedding_size": analyzer.embedding_size, "failures_to_detect": len(rows) - len(found),
        "genuine_pairs": int(same.sum()), "impostor_pairs": int((~same).sum()),
        "tar_at_far_1e-3": tar3, "threshold_at_far_1e-3": thr3, "tar_at_far_1e-2": tar2, "threshold_at_far_1e-2": thr2,
        "genuine_mean": float(genuine.mean()) if len(genuine) else float("nan"),
        "impostor_mean": float(impostor.mean()) if len(impostor) else float("nan"),
        "rank1": r1, "rank1_probes": probes, "ms_per_face": 1000.0 * elapsed / max(len(rows), 1),
        "batch": batch, "device": device,
    }


def print_table(result: dict) -> None:
    """Print the figures as a two-column table."""
    keys = ["n", "identities", "embedding_size", "failures_to_detect", "genuine_pairs", "impostor_pairs",
            "tar_at_far_1e-3", "tar_at_far_1e-2", "genuine_mean", "impostor_mean", "rank1", "rank1_probes",
            "ms_per_face"]
    print(f"face benchmark: {result['labels']}")
    for key in keys:
        value = result[key]
        print(f"  {key:20s} {value:10.4f}" if isinstance(value, float) else f"  {key:20s} {value:>10}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="labels.csv (relative_path,label)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--batch", type=int, default=16, help="photos per batched call")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    if not args.labels.exists():
        parser.error(f"labels file {args.labels} not found")
    result = evaluate(args.labels, args.batch, args.device)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
