"""Detector input canvas: the square 640x640 letterbox against the fitted canvas (``engine.detector_canvas``).

Usage::

    python -m benchmarks.canvas [--batches 1,4,8] [--repeat 15] [--json OUT] [--png OUT.png]

The engine's vehicle/person detector (the derived batch-capable file of ``engine.detector_model`` at the default
precision) runs on evenly spaced frames of every clip in ``../shared/data/videos`` (all 16:9: the fitted canvas is
384x640). Per batch size, the two variants take turns call by call, so the host's load falls on both alike;
``ms_per_frame`` is the median call time (letterbox and network, as the engine calls it) over ``--repeat`` calls
divided by the batch, and ``ratio`` the square's time over the fitted canvas's in the same run. Agreement: boxes of
both variants over all frames matched one to one (same class, IoU > 0.7): ``match_rate`` = 2 x matched / boxes of
both, ``min_iou`` of the matched pairs (:func:`benchmarks.runtimes.match_detections`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import save_results
from benchmarks.runtimes import match_detections, video_frames
from pipeline.config import EngineConfig
from pipeline.models.derive import batch_model_path
from pipeline.models.onnx_utils import select_providers
from pipeline.models.registry import resolve_precision
from pipeline.models.yolo import TRAFFIC_CLASSES, YoloOnnxDetector
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)

VARIANTS = ("square", "fit")
MATCH_IOU = 0.7


def agreement(frames: list[np.ndarray], square: YoloOnnxDetector, fit: YoloOnnxDetector) -> dict[str, Any]:
    """Boxes of the two variants on ``frames`` matched one to one (same class, IoU > :data:`MATCH_IOU`)."""
    result = match_detections([square.detect_batch([f])[0] for f in frames],
                              [fit.detect_batch([f])[0] for f in frames], min_iou=MATCH_IOU)
    return {"boxes": result["boxes_ref"] + result["boxes"], "match_rate": result["match_rate"],
            "min_iou": result["min_iou"]}


def time_batches(frames: list[np.ndarray], detectors: dict[str, YoloOnnxDetector], batches: list[int],
                 repeat: int) -> list[dict[str, Any]]:
    """Median ms per frame of each variant per batch size, the variants taking turns call by call."""
    rows = []
    for batch in batches:
        chunk = [frames[i % len(frames)] for i in range(batch)]
        times: dict[str, list[float]] = {name: [] for name in detectors}
        for detector in detectors.values():
            detector.detect_batch(chunk)  # warm-up (and the fitted canvas's session)
        for k in range(repeat):
            for name, detector in detectors.items():
                begin = time.perf_counter()
                detector.detect_batch(chunk)
                times[name].append(time.perf_counter() - begin)
            print(f"  batch {batch}: {k + 1}/{repeat}", end="\r", flush=True)
        ms = {name: 1000 * statistics.median(t) / batch for name, t in times.items()}
        rows.append({"batch": batch, **{f"{name}_ms_per_frame": round(ms[name], 2) for name in detectors},
                     "ratio": round(ms["square"] / ms["fit"], 3)})
    print()
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load both variants of the engine's detector, check their agreement and time them."""
    settings = get_settings()
    config = EngineConfig()
    precision = resolve_precision(config.model_precision, select_providers("cpu"))
    path = batch_model_path(config.detector_model, Path(settings.model_dir), Path(settings.derived_model_dir),
                            precision)
    detectors = {name: YoloOnnxDetector(path, conf=config.vehicle_confidence, classes=TRAFFIC_CLASSES, device="cpu",
                                        canvas=name) for name in VARIANTS}
    frames = video_frames(args.per_video)
    shapes = sorted({f.shape[:2] for f in frames})
    print(f"{len(frames)} frames of shapes {shapes}; canvases {[detectors['fit'].canvas_of(s) for s in shapes]}")
    return {"model": str(path), "frames": len(frames), "canvases": [list(detectors["fit"].canvas_of(s))
                                                                     for s in shapes],
            "agreement": agreement(frames, detectors["square"], detectors["fit"]),
            "batches": time_batches(frames, detectors, args.batches, args.repeat)}


def print_table(result: dict[str, Any]) -> None:
    """The timing table and the agreement line."""
    print(f"\n{'batch':>5} {'square ms/frame':>16} {'fit ms/frame':>13} {'square / fit':>13}")
    for row in result["batches"]:
        print(f"{row['batch']:>5} {row['square_ms_per_frame']:>16.1f} {row['fit_ms_per_frame']:>13.1f} "
              f"{row['ratio']:>12.2f}x")
    a = result["agreement"]
    print(f"agreement: {a['boxes']} boxes, match_rate {a['match_rate']}, min IoU {a['min_iou']}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Bars of ms per frame per batch size for both variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["batches"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, name in enumerate(VARIANTS):
        ax.bar(x + (k - 0.5) * 0.38, [r[f"{name}_ms_per_frame"] for r in rows], 0.38, label=name)
    ax.set_xticks(x, [str(r["batch"]) for r in rows])
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per frame (median)")
    ax.set_title(f"vehicle detector input canvas (match rate {result['agreement']['match_rate']})")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--per-video", type=int, default=8, help="frames taken from each clip")
    parser.add_argument("--json", type=Path, default=Path("var/bench/canvas.json"))
    parser.add_argument("--png", type=Path, default=Path("var/bench/canvas.png"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    save_results(run(args), args, print_table, plot)


if __name__ == "__main__":
    main()
