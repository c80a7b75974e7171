"""Plate rectifier benchmark: how well each method finds a plate's four corners, and how fast.

Usage::

    python -m benchmarks.rectifier [--n 600] [--json OUT] [--plot OUT.png]

Validation plates (the plate-disjoint split of ``plates_thai``, the held-out half of ``plates_thai_moto``) are
turned in 3-D into real backgrounds and cut out like a detector box (:mod:`pipeline.plates.warps`, the same
generator as training, another seed and only held-out plates), so every corner is known. Methods:

- ``box``: no rectification, the crop's own corners (what the reader got before);
- ``classical``: a quadrilateral fit (largest convex four-cornered contour of the edge map, else the minimum-area
  rectangle of the largest contour), the textbook approach;
- ``learned``: the shipped corner regressor, one look; ``learned+refine``: with its second look (the default).

Reported per method: mean and 95th-percentile corner error in % of the plate width, the share of plates within
5 % and 10 %, milliseconds per plate (batched, this CPU), split by roll angle (|roll| < 10, 10-25, >= 25 degrees).
Prints a table, writes JSON and a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.plates.dataset import plate_disjoint_split, read_labels
from pipeline.plates.geometry import quad_size
from pipeline.plates.rectifier import PlateRectifier
from pipeline.plates.warps import Backgrounds, WarpedPlate, random_pose, warped_plate

logger = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROLL_BINS = ((0, 10), (10, 25), (25, 90))


def classical_quad(crop: np.ndarray) -> np.ndarray:
    """Quadrilateral fit: the largest convex 4-point polygon of the Canny edge map's contours, ordered TL, TR,
    BR, BL; the minimum-area rectangle of the largest contour when none has four corners; the crop's corners
    when there is no contour."""
    h, w = crop.shape[:2]
    gray = cv2.GaussianBlur(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    edges = cv2.dilate(cv2.Canny(gray, 50, 150), np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)[:10]
    for c in contours:
        if cv2.contourArea(c) < 0.1 * h * w:
            break
        approx = cv2.approxPolyDP(c, 0.03 * cv2.arcLength(c, True), True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            return order_corners(approx.reshape(4, 2).astype(np.float32))
    if contours:
        return order_corners(cv2.boxPoints(cv2.minAreaRect(contours[0])).astype(np.float32))
    return np.float32([[0, 0], [w, 0], [w, h], [0, h]])


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Four points as TL, TR, BR, BL (by the sums and differences of their coordinates)."""
    s, d = pts.sum(axis=1), np.diff(pts, axis=1).ravel()
    return np.float32([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]])


def make_samples(n: int, seed: int) -> tuple[list[WarpedPlate], list[float]]:
    """``n`` held-out plates (a quarter motorcycle) warped into backgrounds; their roll angles."""
    cars = read_labels(SHARED / "plates_thai" / "labels.csv")
    _, car_val = plate_disjoint_split(cars, 0.15, 0)
    motos = read_labels(SHARED / "plates_thai_moto" / "labels.csv")
    _, moto_val = plate_disjoint_split(motos, 0.5, 0)
    bgs = Backgrounds.from_paths([], [SHARED / "plates_openalpr_eu" / "images", SHARED / "plates_openalpr_us" / "images"])
    rng = np.random.default_rng(seed)
    samples, rolls = [], []
    for _ in range(n):
        moto = rng.random() < 0.25
        src = motos[moto_val[int(rng.integers(len(moto_val)))]] if moto else cars[car_val[int(rng.integers(len(car_val)))]]
        img = cv2.imread(str(src.path), cv2.IMREAD_COLOR)
        roll, yaw, pitch = random_pose(rng)
        width = float(math.exp(rng.uniform(math.log(40), math.log(500))))
        samples.append(warped_plate(img, "motorcycle" if moto else "car", bgs, rng, width, roll, yaw, pitch))
        rolls.append(abs(roll))
    return samples, rolls


def errors(pred: list[np.ndarray], samples: list[WarpedPlate]) -> np.ndarray:
    """Mean corner distance in fractions of each plate's width."""
    return np.array([np.linalg.norm(p - s.corners, axis=1).mean() / quad_size(s.corners)[0]
                     for p, s in zip(pred, samples, strict=True)])


def summarise(err: np.ndarray, rolls: np.ndarray, ms: float) -> dict[str, float]:
    """Figures of one method."""
    out = {"mean_pct": float(err.mean() * 100), "p95_pct": float(np.percentile(err, 95) * 100),
           "within_5pct": float((err < 0.05).mean()), "within_10pct": float((err < 0.10).mean()), "ms_per_plate": ms}
    for lo, hi in ROLL_BINS:
        sel = (rolls >= lo) & (rolls < hi)
        out[f"mean_pct_roll_{lo}_{hi}"] = float(err[sel].mean() * 100) if sel.any() else float("nan")
    return out


def run(n: int, seed: int, model_dir: Path) -> dict[str, dict[str, float]]:
    """Every method on the same samples."""
    samples, rolls = make_samples(n, seed)
    rolls_arr = np.asarray(rolls)
    crops = [s.crop for s in samples]
    results: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    box = [np.float32([[0, 0], [c.shape[1], 0], [c.shape[1], c.shape[0]], [0, c.shape[0]]]) for c in crops]
    results["box"] = summarise(errors(box, samples), rolls_arr, (time.perf_counter() - t0) * 1000 / n)
    t0 = time.perf_counter()
    classical = [classical_quad(c) for c in crops]
    results["classical"] = summarise(errors(classical, samples), rolls_arr, (time.perf_counter() - t0) * 1000 / n)
    for name, refine in (("learned", False), ("learned+refine", True)):
        rect = PlateRectifier(model_dir, device="cpu", refine=refine)
        rect.rectify_batch(crops[:8])  # warm-up
        t0 = time.perf_counter()
        out = []
        for i in range(0, n, 64):
            out += rect.rectify_batch(crops[i:i + 64])
        ms = (time.perf_counter() - t0) * 1000 / n
        results[name] = summarise(errors([r.corners for r in out], samples), rolls_arr, ms)
        results[name]["layout_accuracy"] = float(np.mean([
            (r.layout if r.layout != "auto" else "?") == s.layout for r, s in zip(out, samples, strict=True)]))
    return results


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    """Mean corner error per roll bin, one bar group per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(results)
    for k, (lo, hi) in enumerate(ROLL_BINS):
        vals = [results[m][f"mean_pct_roll_{lo}_{hi}"] for m in names]
        ax.bar(np.arange(len(names)) + k * 0.25 - 0.25, vals, 0.25, label=f"|roll| {lo}-{hi} deg")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("mean corner error, % of plate width")
    ax.set_title("Plate corners on held-out plates warped into real backgrounds")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="warped held-out plates")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--model-dir", type=Path, default=Path("models/plate_rectifier"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="PNG (default: next to --json, else benchmarks/results)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = run(args.n, args.seed, args.model_dir)
    keys = list(next(iter(results.values())))
    print(f"{'method':<16}" + "".join(f"{k[:18]:>20}" for k in keys))
    for name, res in results.items():
        print(f"{name:<16}" + "".join(f"{res.get(k, float('nan')):>20.3f}" for k in keys))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n": args.n, "results": results}, indent=1), encoding="utf-8")
    png = args.plot or (args.json.with_suffix(".png") if args.json else Path("benchmarks/results/rectifier.png"))
    plot(results, png)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
