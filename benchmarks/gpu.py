"""GPU measurement in one command: the engine's models on ONNX Runtime's CUDA and TensorRT providers, and the
cameras at 5 analysed fps one GPU carries.

Usage: ``python -m benchmarks.gpu [--json OUT] [--plot PNG] [--fps 5] [--streams 6] [--seconds 20]
[--batches 1,8,16] [--repeat 10]``

1. **device**: the providers of this onnxruntime build and, where ``nvidia-smi`` runs, the GPU's name and memory.
2. **models**: :mod:`benchmarks.runtimes` on ONNX Runtime's CPU provider (the reference) and on
   ``ort-cuda`` / ``ort-tensorrt`` where this build has them: milliseconds per frame per model and batch, and the
   agreement of the outputs with the CPU's (the same boxes, embeddings, reads and corners).
3. **engine**: :mod:`benchmarks.throughput` ``--mode files`` with ``engine.device: cuda`` (the CPU where there is no
   CUDA provider): the sample footage's decoded frames at ``--fps`` through the whole engine, its answer check
   against the every-frame reference, and the analysed frames per wall-second. **Cameras at ``--fps`` per GPU**
   = that rate / ``--fps`` (the engine's limit on this host's CPU + GPU; decoding the cameras is extra CPU:
   ``benchmarks.ingest`` gives its cores per camera).

Where this onnxruntime has no CUDA provider (the CPU-only machines; ``pip install onnxruntime-gpu`` on a machine with
an NVIDIA GPU and its driver), steps 2 and 3 run on the CPU, the report says why there is no GPU figure, and the
command still exits 0: the same script is the CPU measurement there. A table is printed, the results written as
JSON (``--json``) and a PNG plot drawn (``--plot``, default next to the JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import runtimes as runtimes_bench
from benchmarks import throughput


def device_report() -> dict[str, Any]:
    """What this machine offers: onnxruntime's providers, whether CUDA can run, and the GPU as nvidia-smi names it."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    report: dict[str, Any] = {"onnxruntime": ort.__version__, "providers": providers,
                              "cuda": runtimes_bench.GPU_PROVIDERS[runtimes_bench.ORT_CUDA] in providers,
                              "tensorrt": runtimes_bench.GPU_PROVIDERS[runtimes_bench.ORT_TRT] in providers,
                              "gpu_name": None}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20, check=False)
            report["gpu_name"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            report["gpu_error"] = f"{type(exc).__name__}: {exc}"
    if not report["cuda"]:
        report["reason"] = (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: "
                            f"{', '.join(providers)}): no GPU figure, the engine is measured on the CPU")
    return report


def engine_run(device: str, fps: float, streams: int, seconds: float, work: Path) -> dict[str, Any]:
    """``benchmarks.throughput --mode files`` on ``device``; its flat JSON results."""
    out = work / "engine.json"
    argv = ["--mode", "files", "--streams", str(streams), "--fps", str(fps), "--seconds", str(seconds),
            "--no-baseline", "--engine-set", f"device={device}", "--json", str(out), "--plot", str(work / "e.png")]
    throughput.main(argv)
    return json.loads(out.read_text(encoding="utf-8"))


def measure(fps: float, streams: int, seconds: float, batches: list[int], repeat: int,
            models: list[str] | None = None, plates: int = 100) -> dict[str, Any]:
    """The three steps of the module docstring; the JSON-ready results."""
    device = device_report()
    print(f"device: onnxruntime {device['onnxruntime']}, providers {device['providers']}, GPU "
          f"{device['gpu_name'] or 'none found'}", flush=True)
    if not device["cuda"]:
        print(f"  {device['reason']}", flush=True)
    gpu_runtimes = [rt for rt, provider in runtimes_bench.GPU_PROVIDERS.items() if provider in device["providers"]]
    print("step 2/3: models on " + ", ".join(["onnxruntime (CPU)", *gpu_runtimes]), flush=True)
    model_times = runtimes_bench.run(batches, repeat, plates, models, runtimes=list(runtimes_bench.GPU_RUNTIMES))
    engine_device = "cuda" if device["cuda"] else "cpu"
    print(f"step 3/3: the engine on {engine_device}, {streams} cameras' footage at {fps:g} fps", flush=True)
    with tempfile.TemporaryDirectory(prefix="cctv-gpu-bench-") as tmp:
        engine = engine_run(engine_device, fps, streams, seconds, Path(tmp))
    frames_per_s = engine.get("files_engine_fps") or 0.0
    return {
        "device": device, "engine_device": engine_device, "fps_per_camera": fps,
        "gpu_measured": bool(device["cuda"]),
        "cameras_at_fps": round(frames_per_s / fps, 1) if fps else None,
        "engine_frames_per_s": frames_per_s,
        "engine_cpu_ms_per_frame": engine.get("files_engine_cpu_ms_per_frame"),
        "reference_recall": engine.get("reference_recall"), "extra_event_rate": engine.get("extra_event_rate"),
        "models": model_times,
    }


def print_report(result: dict[str, Any]) -> None:
    """The per-model table of :mod:`benchmarks.runtimes`, then the engine's cameras at the analysed fps."""
    runtimes_bench.print_table(result["models"], show_fastest=False)
    where = "per GPU" if result["gpu_measured"] else "on this CPU (no GPU: " + result["device"].get("reason", "") + ")"
    print(f"\nengine on {result['engine_device']}: {result['engine_frames_per_s']:.1f} analysed frames per second "
          f"-> {result['cameras_at_fps']} cameras at {result['fps_per_camera']:g} fps {where}")
    print(f"answer check against the every-frame reference: reference_recall {result['reference_recall']}, "
          f"extra_event_rate {result['extra_event_rate']}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Per-model panels of ms per frame by runtime and batch, titled with the cameras at the analysed fps."""
    where = "per GPU" if result["gpu_measured"] else "on this CPU (no CUDA provider)"
    host = result["models"]["host"]
    runtimes_bench.plot(result["models"], path,
                        title=f"{host['cpu']}, GPU {result['device']['gpu_name'] or 'none'}\nengine on "
                              f"{result['engine_device']}: {result['cameras_at_fps']} cameras\nat "
                              f"{result['fps_per_camera']:g} fps {where}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--plot", type=Path, default=None,
                    help="PNG of the results (default: next to --json, or benchmarks/results/gpu.png)")
    ap.add_argument("--fps", type=float, default=5.0, help="analysed fps per camera (5)")
    ap.add_argument("--streams", type=int, default=6, help="cameras' footage through the engine (6: two of each clip)")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of footage per camera")
    ap.add_argument("--batches", default="1,8,16", help="batch sizes of the model timings")
    ap.add_argument("--repeat", type=int, default=10, help="timed calls per model, runtime and batch")
    ap.add_argument("--models", default="", help="only these models, comma list (default: all)")
    ap.add_argument("--plates", type=int, default=100, help="held-out plate crops for the reader's agreement")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = measure(args.fps, args.streams, args.seconds, [int(b) for b in args.batches.split(",") if b.strip()],
                     args.repeat, [m for m in args.models.split(",") if m.strip()] or None, args.plates)
    print_report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.json}")
    plot(result, args.plot or (args.json.with_suffix(".png") if args.json else
                               Path(__file__).resolve().parent / "results" / "gpu.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
