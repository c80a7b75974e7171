"""GPU measurement in one command: the engine's models on the GPU (ONNX Runtime's CUDA and TensorRT providers where
this onnxruntime has them, PyTorch CUDA through onnx2torch where torch sees a GPU), and the cameras at 5 analysed fps
one GPU carries.

Usage: ``python -m benchmarks.gpu [--json OUT] [--plot PNG] [--fps 5] [--streams 6] [--seconds 20]
[--batches 1,8,16] [--repeat 10] [--processes 4,8] [--engine-runtimes torch] [--cuda-sync auto,blocking]``

1. **device**: the providers of this onnxruntime build, whether torch (with onnx2torch) sees a CUDA device and,
   where ``nvidia-smi`` runs, the GPU's name and memory.
2. **models**: :mod:`benchmarks.runtimes` on ONNX Runtime's CPU provider (the reference) and on every GPU runtime
   this machine has (``ort-cuda``, ``ort-tensorrt``, ``torch-cuda``, ``torch-cuda-fp16``): milliseconds per frame per
   model and batch, and the agreement of the outputs with the CPU's (the same boxes, embeddings, reads and corners).
3. **engine**: :mod:`benchmarks.throughput` ``--mode files`` with ``engine.device: cuda`` and each GPU runtime of the
   engine (ONNX Runtime where it has CUDA, else ``torch`` and ``torch-fp16``; the CPU where there is no GPU): the
   sample footage's decoded frames at ``--fps`` through the whole engine in one process, its answer check against
   the every-frame reference on the CPU, and the analysed frames per wall-second.
4. **parallel engines** (GPU only, or ``--processes`` given): ``N`` engine processes of ``--streams`` cameras each on
   the one GPU, started together once all have loaded (``--barrier``), CPU threads per model split between them:
   their analysed frames over the longest one's wall time; once per ``--cuda-sync`` mode (how each process waits
   for the GPU: spinning on a core, or sleeping and leaving it to the others). **Cameras at ``--fps`` per GPU** = the best rate of steps
   3-4 / ``--fps`` (the engine's limit on this host's CPUs + GPU; decoding the cameras is extra CPU:
   ``benchmarks.ingest`` gives its cores per camera).

Where there is no GPU (the CPU-only machines; ``pip install onnxruntime-gpu``, or ``pip install .[gpu]`` with a CUDA
build of torch, on a machine with an NVIDIA GPU), steps 2 and 3 run on the CPU, the report says why there is no GPU
figure, and the command still exits 0: the same script is the CPU measurement there. A table is printed, the results
written as JSON (``--json``) and a PNG plot drawn (``--plot``, default next to the JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import runtimes as runtimes_bench
from benchmarks import throughput


def device_report() -> dict[str, Any]:
    """What this machine offers: onnxruntime's providers, whether CUDA can run (through ONNX Runtime or torch), the
    GPU as nvidia-smi (or torch) names it, and the runtimes the engine is measured on."""
    import onnxruntime as ort

    from pipeline.models.torch_runtime import torch_available, torch_cuda_available

    providers = ort.get_available_providers()
    torch_ok, torch_detail = torch_available()
    report: dict[str, Any] = {"onnxruntime": ort.__version__, "providers": providers,
                              "cuda": runtimes_bench.GPU_PROVIDERS[runtimes_bench.ORT_CUDA] in providers,
                              "tensorrt": runtimes_bench.GPU_PROVIDERS[runtimes_bench.ORT_TRT] in providers,
                              "torch": torch_detail, "torch_cuda": torch_ok and torch_cuda_available(),
                              "gpu_name": None}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20, check=False)
            report["gpu_name"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            report["gpu_error"] = f"{type(exc).__name__}: {exc}"
    if report["torch_cuda"] and not report["gpu_name"]:
        import torch

        report["gpu_name"] = torch.cuda.get_device_name(0)
    report["gpu"] = bool(report["cuda"] or report["torch_cuda"])
    report["engine_runtimes"] = (["onnxruntime"] if report["cuda"] else ["torch", "torch-fp16"]
                                 if report["torch_cuda"] else ["auto"])
    if not report["cuda"]:
        why = f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: {', '.join(providers)})"
        report["reason"] = (f"{why}: the GPU runs the models through torch ({torch_detail}, onnx2torch)"
                            if report["torch_cuda"] else
                            f"{why} and torch has no CUDA device ({torch_detail}): no GPU figure, the engine is "
                            "measured on the CPU")
    return report


def engine_run(device: str, fps: float, streams: int, seconds: float, work: Path,
               runtime: str = "auto") -> dict[str, Any]:
    """``benchmarks.throughput --mode files`` on ``device`` and ``runtime`` in this process; its flat JSON."""
    out = work / f"engine-{runtime}.json"
    argv = ["--mode", "files", "--streams", str(streams), "--fps", str(fps), "--seconds", str(seconds),
            "--no-baseline", "--engine-set", f"device={device}", "--engine-set", f"runtime={runtime}",
            "--json", str(out), "--plot", str(work / f"engine-{runtime}.png")]
    throughput.main(argv)
    return json.loads(out.read_text(encoding="utf-8"))


PARALLEL_TIMEOUT_S = 900.0
RECALL_GOAL, EXTRA_GOAL = 0.98, 0.02  # the answer check's goals (issue 13)


def fastest_keeping_answers(engines: dict[str, dict[str, Any]]) -> str:
    """The runtime of the fastest engine run whose answer check meets the goals (reference recall at least
    :data:`RECALL_GOAL`, extra events at most :data:`EXTRA_GOAL`; a run without a check counts as meeting them);
    the fastest of all when none does."""
    def meets(e: dict[str, Any]) -> bool:
        recall, extra = e.get("reference_recall"), e.get("extra_event_rate")
        return (recall is None or recall >= RECALL_GOAL) and (extra is None or extra <= EXTRA_GOAL)

    keeping = [rt for rt, e in engines.items() if meets(e)] or list(engines)
    return max(keeping, key=lambda rt: engines[rt].get("files_engine_fps") or 0.0)


def wait_all(procs: list[subprocess.Popen], timeout_s: float) -> list[int | str]:
    """Wait for every process; when one fails (or the time is up) the others are killed at once, as they would
    wait at the barrier for it. Exit codes, ``"killed"`` for those stopped that way, ``"timeout"`` at the limit."""
    deadline = time.monotonic() + timeout_s
    codes: list[int | str | None] = [None] * len(procs)
    while any(c is None for c in codes):
        for k, proc in enumerate(procs):
            if codes[k] is None:
                codes[k] = proc.poll()
        stop = "killed" if any(c not in (None, 0) for c in codes) else "timeout" if time.monotonic() > deadline \
            else None
        if stop:
            for k, proc in enumerate(procs):
                if codes[k] is None:
                    proc.kill()
                    proc.wait()
                    codes[k] = stop
        else:
            time.sleep(0.1)
    return [c if c is not None else "timeout" for c in codes]


def parallel_engines(device: str, runtime: str, processes: int, fps: float, streams: int, seconds: float,
                     work: Path, cuda_sync: str = "auto") -> dict[str, Any]:
    """``processes`` file-mode engines of ``streams`` cameras each at once (no reference), started together at a
    barrier once all are loaded, waiting for the GPU the ``cuda_sync`` way (``CCTV_CUDA_SYNC``); their analysed
    frames over the longest measured run."""
    work.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"parallel-{runtime}-{processes}-{cuda_sync}-", dir=work))
    threads = max(1, runtimes_bench.host_cores() // processes)
    env = {**os.environ, "CCTV_MODEL_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "CCTV_CUDA_SYNC": cuda_sync}
    procs = []
    for k in range(processes):
        argv = [sys.executable, "-m", "benchmarks.throughput", "--mode", "files", "--streams", str(streams),
                "--fps", str(fps), "--seconds", str(seconds), "--no-baseline", "--no-reference",
                "--engine-set", f"device={device}", "--engine-set", f"runtime={runtime}",
                "--barrier", str(folder / "barrier"), "--barrier-count", str(processes),
                "--json", str(folder / f"p{k}.json"), "--plot", str(folder / f"p{k}.png")]
        log = (folder / f"p{k}.log").open("w", encoding="utf-8")
        procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    codes = wait_all([p for p, _ in procs], PARALLEL_TIMEOUT_S)
    failed = []
    for k, ((_, log), rc) in enumerate(zip(procs, codes, strict=True)):
        log.close()
        if rc != 0:
            tail = (folder / f"p{k}.log").read_text(encoding="utf-8", errors="replace")[-600:]
            failed.append(f"process {k}: exit {rc}: {tail}")
    if failed:
        return {"processes": processes, "runtime": runtime, "cuda_sync": cuda_sync, "error": "; ".join(failed)}
    runs = [json.loads((folder / f"p{k}.json").read_text(encoding="utf-8")) for k in range(processes)]
    frames = sum(r["files_frames"] for r in runs)
    wall = max(r["files_frames"] / r["files_engine_fps"] for r in runs)
    return {"processes": processes, "runtime": runtime, "cuda_sync": cuda_sync, "threads_per_model": threads,
            "frames": frames,
            "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 2),
            "per_process_fps": [r["files_engine_fps"] for r in runs],
            "engine_cpu_ms_per_frame": round(sum(r["engine_ms_per_frame"] * r["files_frames"] for r in runs)
                                             / frames, 1)}


def measure(fps: float, streams: int, seconds: float, batches: list[int], repeat: int,
            models: list[str] | None = None, plates: int = 100, processes: list[int] | None = None,
            engine_runtimes: list[str] | None = None, cuda_syncs: list[str] | None = None) -> dict[str, Any]:
    """The steps of the module docstring; the JSON-ready results. ``processes`` (None: 4 and 8 where there is a GPU,
    none on the CPU) are the parallel engine counts of step 4, each run with every ``cuda_syncs`` mode (None:
    ``auto``); ``engine_runtimes`` (None: all the GPU's) those of step 3."""
    device = device_report()
    print(f"device: onnxruntime {device['onnxruntime']}, providers {device['providers']}, {device['torch']} "
          f"(CUDA {'yes' if device['torch_cuda'] else 'no'}), GPU {device['gpu_name'] or 'none found'}", flush=True)
    if not device["cuda"]:
        print(f"  {device['reason']}", flush=True)
    print("step 2/4: models on onnxruntime (CPU) and the GPU runtimes this machine has", flush=True)
    model_times = runtimes_bench.run(batches, repeat, plates, models, runtimes=list(runtimes_bench.GPU_RUNTIMES))
    engine_device = "cuda" if device["gpu"] else "cpu"
    engines: dict[str, dict[str, Any]] = {}
    parallel: list[dict[str, Any]] = []
    if processes is None:
        processes = [4, 8] if device["gpu"] else []
    with tempfile.TemporaryDirectory(prefix="cctv-gpu-bench-") as tmp:
        for runtime in [rt for rt in device["engine_runtimes"] if not engine_runtimes or rt in engine_runtimes] or \
                device["engine_runtimes"][:1]:
            print(f"step 3/4: the engine on {engine_device} ({runtime}), {streams} cameras' footage at {fps:g} fps",
                  flush=True)
            engines[runtime] = engine_run(engine_device, fps, streams, seconds, Path(tmp), runtime)
        best_runtime = fastest_keeping_answers(engines)
        for n in processes:
            for sync in cuda_syncs or ["auto"]:
                print(f"step 4/4: {n} engine processes on {engine_device} ({best_runtime}, CUDA sync {sync}), "
                      f"{streams} cameras each", flush=True)
                parallel.append(parallel_engines(engine_device, best_runtime, n, fps, streams, seconds, Path(tmp),
                                                 sync))
                print(f"  {parallel[-1]}", flush=True)
    engine = engines[best_runtime]
    single = engine.get("files_engine_fps") or 0.0
    frames_per_s = max([single, *[p.get("frames_per_s") or 0.0 for p in parallel]])
    return {
        "device": device, "engine_device": engine_device, "engine_runtime": best_runtime, "fps_per_camera": fps,
        "gpu_measured": device["gpu"],
        "cameras_at_fps": round(frames_per_s / fps, 1) if fps else None,
        "engine_frames_per_s": frames_per_s, "single_process_frames_per_s": single,
        "engine_cpu_ms_per_frame": engine.get("files_engine_cpu_ms_per_frame"),
        "reference_recall": engine.get("reference_recall"), "extra_event_rate": engine.get("extra_event_rate"),
        "engines": {rt: {k: e.get(k) for k in ("files_engine_fps", "files_engine_cpu_ms_per_frame",
                                                "files_engine_wall_ms_per_frame", "reference_recall",
                                                "extra_event_rate", "files_engine_plate_events",
                                                "files_engine_face_events")}
                    for rt, e in engines.items()},
        "parallel": parallel, "models": model_times,
    }


def print_report(result: dict[str, Any]) -> None:
    """The per-model table of :mod:`benchmarks.runtimes`, then the engine's cameras at the analysed fps."""
    runtimes_bench.print_table(result["models"], show_fastest=False)
    where = "per GPU" if result["gpu_measured"] else "on this CPU (no GPU: " + result["device"].get("reason", "") + ")"
    print(f"\n{'engine run':34s}{'frames/s':>10s}{'CPU ms/frame':>14s}{'recall':>8s}{'extra':>8s}")
    for rt, e in result["engines"].items():
        print(f"{'1 process, ' + rt:34s}{e['files_engine_fps'] or 0:>10.1f}{e['files_engine_cpu_ms_per_frame'] or 0:>14.1f}"
              f"{_fmt(e['reference_recall']):>8s}{_fmt(e['extra_event_rate']):>8s}")
    for p in result["parallel"]:
        label = f"{p['processes']} processes, {p['runtime']}, sync {p.get('cuda_sync', 'auto')}"
        if "error" in p:
            print(f"{label:34s}  failed: {p['error'][:200]}")
        else:
            print(f"{label:34s}{p['frames_per_s']:>10.1f}{p['engine_cpu_ms_per_frame']:>14.1f}")
    print(f"\nengine on {result['engine_device']} ({result['engine_runtime']}): {result['engine_frames_per_s']:.1f} "
          f"analysed frames per second -> {result['cameras_at_fps']} cameras at {result['fps_per_camera']:g} fps "
          f"{where}")
    print(f"answer check against the every-frame reference: reference_recall {result['reference_recall']}, "
          f"extra_event_rate {result['extra_event_rate']}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def plot(result: dict[str, Any], path: Path) -> None:
    """Per-model panels of ms per frame by runtime and batch, titled with the cameras at the analysed fps."""
    where = "per GPU" if result["gpu_measured"] else "on this CPU (no GPU)"
    host = result["models"]["host"]
    runtimes_bench.plot(result["models"], path,
                        title=f"{host['cpu']}, GPU {result['device']['gpu_name'] or 'none'}\nengine on "
                              f"{result['engine_device']} ({result['engine_runtime']}): {result['cameras_at_fps']} "
                              f"cameras\nat "
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
    ap.add_argument("--processes", default=None,
                    help="parallel engine processes of step 4, comma list (default: 4,8 with a GPU, none without)")
    ap.add_argument("--engine-runtimes", default="", help="only these runtimes in step 3, comma list (default: all)")
    ap.add_argument("--cuda-sync", default="auto",
                    help="CUDA sync modes of step 4, comma list of auto, blocking, spin, yield (CCTV_CUDA_SYNC)")
    args = ap.parse_args(argv)
    from pipeline.models.torch_runtime import CUDA_SCHED_FLAGS

    syncs = list(dict.fromkeys(m.strip() for m in args.cuda_sync.split(",") if m.strip()))
    if not syncs or set(syncs) - set(CUDA_SCHED_FLAGS):
        ap.error(f"--cuda-sync takes {', '.join(CUDA_SCHED_FLAGS)}, not {args.cuda_sync!r}")
    try:
        processes = None if args.processes is None else list(dict.fromkeys(
            int(n) for n in args.processes.split(",") if n.strip()))
    except ValueError:
        ap.error(f"--processes must be a comma list of whole numbers, not {args.processes!r}")
    if processes and min(processes) < 1:
        ap.error("--processes must be 1 or more")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = measure(args.fps, args.streams, args.seconds, [int(b) for b in args.batches.split(",") if b.strip()],
                     args.repeat, [m for m in args.models.split(",") if m.strip()] or None, args.plates, processes,
                     [r for r in args.engine_runtimes.split(",") if r.strip()] or None, syncs)
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
