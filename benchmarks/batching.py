"""What batching buys: images/s of each model's network call at batch 1, 4, 8, 16 vs a loop of batch-1 calls.

Usage: ``python -m benchmarks.batching [--batches 1 4 8 16] [--images 16] [--repeat 2] [--json OUT] [--plot PNG]
[--models yolo yolo_fp32 plate plate_fp32 scrfd embedder]``

Baseline (same run): the upstream batch-1 file run image by image. Candidates: the derived batch-capable file
(``pipeline.models.derive``) at each batch size; ``*_fp32`` rows use the dequantised variant of the int8
models (same weights, float convolutions; outputs differ from int8 by its activation-quantisation noise). Inputs are real: frames of the sample dashcam clip for the
detectors (letterboxed like the backends do), face crops of the enrolment stills for the embedder. The time is
the median over ``--repeat`` rounds of ``--images`` images; every round times the baseline and all batch sizes
one after the other and the speed-up is the median of the per-round ratios (robust to a changing machine load);
every session and shape is warmed up first.
The equivalence of the outputs is checked by the derivation itself and by the tests, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.models.derive import batch_model_path, check_images
from pipeline.models.onnx_utils import create_session, letterbox, to_blob
from pipeline.settings import get_settings

MODELS = {
    "yolo": ("yolo/yolov8n_int8.onnx", 640, (0.0, 255.0), "int8"),
    "yolo_fp32": ("yolo/yolov8n_int8.onnx", 640, (0.0, 255.0), "fp32"),
    "plate": ("plate/license_plate_detector_int8.onnx", 320, (0.0, 255.0), "int8"),
    "plate_fp32": ("plate/license_plate_detector_int8.onnx", 320, (0.0, 255.0), "fp32"),
    "scrfd": ("insightface/models/buffalo_s/det_500m.onnx", 640, (127.5, 128.0), "int8"),
    "embedder": ("insightface/models/buffalo_s/mobilefacenet.onnx", 112, (127.5, 127.5), "int8"),
}


def _inputs(n: int, size: int, norm: tuple[float, float], faces: bool) -> np.ndarray:
    frames, _ = check_images(max(4, n if not faces else 4))
    if faces:
        stills = sorted((get_settings().videos_dir / "enroll").glob("*.png"))
        frames = [cv2.imread(str(p)) for p in stills] or frames
    images = [letterbox(frames[i % len(frames)], size)[0] for i in range(n)]
    return to_blob(images, mean=norm[0], std=norm[1])


def _time(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_model(name: str, batches: list[int], n_images: int, repeat: int, device: str) -> dict:
    """Images/s of the batch-1 loop (upstream file) and of the derived file at each batch size."""
    rel, size, norm, precision = MODELS[name]
    settings = get_settings()
    source = settings.model_dir / rel
    derived = batch_model_path(rel, settings.model_dir, settings.derived_model_dir, precision)
    blob = _inputs(n_images, size, norm, faces=name == "embedder")
    base_sess, new_sess = create_session(source, device), create_session(derived, device)
    base_in, new_in = base_sess.get_inputs()[0].name, new_sess.get_inputs()[0].name
    base_sess.run(None, {base_in: blob[:1]})
    for b in batches:
        new_sess.run(None, {new_in: blob[:b]})  # warm-up per shape

    def loop() -> None:
        for i in range(len(blob)):
            base_sess.run(None, {base_in: blob[i : i + 1]})

    def batched(b: int) -> None:
        for i in range(0, len(blob), b):
            new_sess.run(None, {new_in: blob[i : i + b]})

    # Rounds interleave the baseline and every batch size, so a change in machine load hits all of them alike;
    # the speed-up is the median over rounds of the per-round ratio.
    base_times: list[float] = []
    times: dict[int, list[float]] = {b: [] for b in batches}
    for r in range(repeat):
        base_times.append(_time(loop, 1))
        for b in batches:
            times[b].append(_time(lambda b=b: batched(b), 1))
        print(f"  {name:10s} round {r + 1}/{repeat}: loop {n_images / base_times[-1]:.1f} img/s, "
              + ", ".join(f"b{b} {n_images / times[b][-1]:.1f}" for b in batches), file=sys.stderr, flush=True)
    return {
        "model": name, "file": rel, "precision": precision, "derived": str(derived), "input": size,
        "images": n_images, "baseline_loop_ips": n_images / float(np.median(base_times)),
        "batched_ips": {str(b): n_images / float(np.median(times[b])) for b in batches},
        "speedup": {str(b): float(np.median([bt / t for bt, t in zip(base_times, times[b], strict=True)]))
                    for b in batches},
        "raw_seconds": {"loop": base_times, **{str(b): times[b] for b in batches}},
    }


def print_table(rows: list[dict], batches: list[int]) -> None:
    """Print images/s and speed-up against the batch-1 loop."""
    head = f"{'model':10s} {'loop b1':>9s} " + " ".join(f"{'b' + str(b):>15s}" for b in batches)
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = " ".join(f"{r['batched_ips'][str(b)]:7.1f} ({r['speedup'][str(b)]:4.2f}x)" for b in batches)
        print(f"{r['model']:10s} {r['baseline_loop_ips']:9.1f} {cells}")
    print("images/s (speed-up vs the upstream batch-1 file run in a loop, same run)")


def plot(rows: list[dict], batches: list[int], path: Path) -> None:
    """Speed-up vs batch size, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.plot(batches, [r["speedup"][str(b)] for b in batches], marker="o", label=r["model"])
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("batch size")
    ax.set_ylabel("speed-up vs batch-1 loop")
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_title("Batched ONNX Runtime inference (CPU)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--images", type=int, default=16, help="images per pass (multiple of the largest batch)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="PNG plot (default: next to --json)")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, args.batches, args.images, args.repeat, args.device))
    print_table(rows, args.batches)
    result = {"device": args.device, "batches": args.batches, "images": args.images, "repeat": args.repeat,
              "models": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    png = args.plot or (args.json.with_suffix(".png") if args.json else None)
    if png:
        plot(rows, args.batches, png)
        print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
