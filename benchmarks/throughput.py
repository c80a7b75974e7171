"""Throughput of the whole service path (RTSP cameras -> ingest -> frame bus -> engine -> Redis) vs a naive baseline.

Usage: ``python -m benchmarks.throughput --streams N --seconds S [--fps F] [--json OUT] [--plot PNG]``

Both phases run in the same invocation on the same machine:

1. **engine**: N looping RTSP cameras on loopback (:class:`pipeline.testcams.TestCameraServer`, the real footage
   cycling dashcam -> plates, pedestrians/stage -> faces), one capture worker (ffmpeg decode, ``analysis_fps``
   sampling, :class:`pipeline.ingest.worker.CaptureWorkerProcess`) feeding one shared-memory frame bus, and ONE
   engine process (:func:`pipeline.engine.process.run_engine`): dynamic batches across cameras, motion gating,
   batched model calls, events to a real redis-server.
2. **baseline** (naive): one process per camera, each with its own models and its own capture worker/frame bus,
   the detector per frame, the plate detector per vehicle crop, the reader per plate crop and the face model per
   frame, all as batch-1 calls, no motion gating and no per-track plate throttling; same tracking/event code.

Measured over ``--seconds`` after every process has warmed up (models loaded, first frame analysed):
analysed frames per second (frames the engine took from the bus and analysed, gated frames included; the frames
that reached the detector are reported separately), event latency from frame capture to event stored in Redis
(p50/p95, measured by the engines), per-stage milliseconds, batch sizes, frames dropped by backpressure, CPU
(cores used by all benchmark processes, ffmpeg included) and memory (RSS). Events per 100 analysed frames are
reported for both phases as a coarse same-accuracy check (same models and event logic in both).
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

import psutil
import redis

from pipeline.config import Config
from pipeline.settings import get_settings

logger = logging.getLogger("benchmarks.throughput")

VIDEOS = (  # (stem, analytics)
    ("thai_bangkok_night_dashcam_bus", {"plates": True, "faces": False}),
    ("pedestrians_walking_toward_camera", {"plates": False, "faces": True}),
    ("short_hamilton_clip", {"plates": False, "faces": True}),
)
WARMUP_TIMEOUT_S = 600.0


# -- infrastructure ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A private redis-server on a free loopback port."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (scripts/install.sh installs it)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def make_config(urls: dict[str, str], fps: float, width: int, spool_dir: Path, naive: bool, first: int = 0,
                queue_size: int = 2) -> Config:
    """cameras.yaml equivalent for the benchmark cameras (analysis only, no recording).

    Camera ``k`` of the benchmark (``first`` + position here) shows video ``k mod 3`` with that video's analytics.
    """
    cameras = []
    for i, (camera_id, url) in enumerate(urls.items()):
        analytics = VIDEOS[(first + i) % len(VIDEOS)][1]
        cameras.append({"id": camera_id, "name": camera_id, "url": url, "analytics": analytics, "analysis_fps": fps,
                        "recording": {"enabled": False}})
    engine: dict[str, Any] = {"device": "auto", "spool_dir": str(spool_dir), "metrics_port": 0}
    if naive:
        engine.update({"max_batch_size": 1, "max_wait_ms": 0, "motion_threshold": 0.0, "detector_keepalive_s": 0.1,
                       "plate_reads_per_track": 1000})
    return Config.model_validate({"ingest": {"max_width": width, "queue_size": queue_size}, "engine": engine,
                                  "cameras": cameras})


class _PerItem:
    """Naive wrapper: one batch-1 model call per image."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def detect_batch(self, frames: list[Any]) -> list[Any]:
        return [self.model.detect_batch([f])[0] for f in frames]

    def read_batch(self, crops: list[Any]) -> list[Any]:
        return [self.model.read_batch([c])[0] for c in crops]


def run_baseline_camera(config: Config, bus: Any, stop_event: Any, redis_url: str, engine_id: str) -> None:
    """Baseline process of ONE camera: batch-1 model calls per frame and per crop, no gating, no throttling."""
    logging.basicConfig(level=logging.WARNING)
    import pipeline.engine.aggregate as aggregate
    from pipeline.engine.process import build_engine, load_plate_reader_or_none
    from pipeline.models.registry import load_model_set

    aggregate.PLATE_INTERVAL_S = 0.0  # read the plate on every frame
    models = load_model_set(config.engine, device=config.engine.device)
    models.vehicles, models.plates, models.faces = (_PerItem(models.vehicles), _PerItem(models.plates),
                                                    _PerItem(models.faces))
    reader = load_plate_reader_or_none(config.engine.plate_reader, device=config.engine.device)
    engine, publisher, client = build_engine(config, redis_url=redis_url, models=models,
                                             plate_reader=_PerItem(reader) if reader is not None else None,
                                             engine_id=engine_id, live=True)
    camera_id = config.cameras[0].id
    next_export = 0.0
    try:
        while not stop_event.is_set():
            start = time.perf_counter()
            items = bus.get_batch(1, 0.25)
            engine.metrics.observe_stage("decode_wait", time.perf_counter() - start)
            try:
                engine.process_batch(items)
            finally:
                for item in items:
                    bus.release(item)
            engine.tick()
            publisher.flush()
            if time.monotonic() >= next_export:
                next_export = time.monotonic() + 2.0
                engine.metrics.set_queues({camera_id: bus.depth(camera_id)}, {camera_id: bus.dropped(camera_id)})
                engine.metrics.export_redis(client)
    finally:
        engine.finish()
        publisher.flush(force=True)
        engine.metrics.export_redis(client)
        bus.close()


# -- measurement ------------------------------------------------------------------------------------------------


def engine_hashes(client: redis.Redis) -> dict[str, dict[str, str]]:
    """Every engine's metrics hash, by engine id."""
    out = {}
    for key in client.scan_iter("metrics:engine:*"):
        raw = client.hgetall(key)
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        out[fields.get("engine_id", key.decode())] = fields
    return out


def _sum(hashes: dict[str, dict[str, str]], field: str) -> float:
    return sum(float(h.get(field, 0) or 0) for h in hashes.values())


def descendants_cpu_rss() -> tuple[float, float]:
    """(CPU seconds, RSS bytes) summed over every descendant process of this one."""
    cpu = rss = 0.0
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return cpu, rss


def wait_warm(client: redis.Redis, expected_engines: int, deadline_s: float, label: str) -> None:
    """Wait until every engine has exported metrics with at least one analysed frame."""
    start = time.monotonic()
    last_note = 0.0
    while time.monotonic() - start < deadline_s:
        hashes = engine_hashes(client)
        warm = [h for h in hashes.values() if float(h.get("count_frames", 0) or 0) > 0]
        if len(warm) >= expected_engines:
            return
        if time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            print(f"  [{label}] warming up: {len(warm)}/{expected_engines} engines analysing "
                  f"({time.monotonic() - start:.0f}s)", flush=True)
        time.sleep(1.0)
    raise SystemExit(f"{label}: engines did not start analysing within {deadline_s:.0f}s")


def measure(client: redis.Redis, seconds: float, label: str, dropped: Any) -> dict[str, Any]:
    """Counters over a ``seconds`` window, with progress lines."""
    hashes0 = engine_hashes(client)
    cpu0, _ = descendants_cpu_rss()
    drop0 = dropped()
    t0 = time.monotonic()
    rss_max = 0.0
    while (elapsed := time.monotonic() - t0) < seconds:
        time.sleep(min(5.0, seconds - elapsed))
        _, rss = descendants_cpu_rss()
        rss_max = max(rss_max, rss)
        now = engine_hashes(client)
        frames = _sum(now, "count_frames") - _sum(hashes0, "count_frames")
        print(f"  [{label}] {time.monotonic() - t0:5.0f}s  analysed {frames:6.0f} frames "
              f"({frames / max(time.monotonic() - t0, 1e-9):.2f}/s)", flush=True)
    time.sleep(2.5)  # one more metrics export
    elapsed = time.monotonic() - t0
    hashes1 = engine_hashes(client)
    cpu1, rss = descendants_cpu_rss()
    frames = _sum(hashes1, "count_frames") - _sum(hashes0, "count_frames")
    detector = _sum(hashes1, "count_frames_analysed") - _sum(hashes0, "count_frames_analysed")
    events = {k: _sum(hashes1, f"count_{k}") - _sum(hashes0, f"count_{k}")
              for k in ("plate_events", "face_events", "alerts", "plates_detected")}
    p50 = max((float(h.get("event_latency_p50_s", 0) or 0) for h in hashes1.values()), default=0.0)
    p95 = max((float(h.get("event_latency_p95_s", 0) or 0) for h in hashes1.values()), default=0.0)
    stages = {}
    for stage in ("decode_wait", "gate", "detect", "plate_detect", "read", "face", "track", "publish"):
        total = _sum(hashes1, f"stage_{stage}_total_s") - _sum(hashes0, f"stage_{stage}_total_s")
        stages[stage] = 1000.0 * total / max(frames, 1)
    batch_sizes = [float(h.get("batch_size_mean", 0) or 0) for h in hashes1.values()]
    return {
        "analysed_fps": frames / elapsed,
        "detector_fps": detector / elapsed,
        "frames": frames,
        "seconds": elapsed,
        "latency_p50_s": p50,
        "latency_p95_s": p95,
        "latency_samples": _sum(hashes1, "event_latency_count"),
        "stage_ms_per_frame": stages,
        "batch_size_mean": sum(batch_sizes) / max(len(batch_sizes), 1),
        "dropped_frames": dropped() - drop0,
        "cpu_cores": (cpu1 - cpu0) / elapsed,
        "rss_mb": max(rss_max, rss) / 2**20,
        "events": events,
        "events_per_100_frames": {k: 100.0 * v / max(frames, 1) for k, v in events.items()},
    }


# -- phases -----------------------------------------------------------------------------------------------------


def run_engine_phase(urls: dict[str, str], args: argparse.Namespace, redis_url: str, work: Path) -> dict[str, Any]:
    """The service path: one capture worker + one frame bus + ONE engine process."""
    from pipeline.engine.process import run_engine
    from pipeline.ingest.framebus import MP_CONTEXT, FrameBus
    from pipeline.ingest.worker import CaptureWorkerProcess

    config = make_config(urls, args.fps, args.width, work / "spool-engine", naive=False, queue_size=args.queue_size)
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    stop = MP_CONTEXT.Event()
    bus = FrameBus(list(urls), queue_size=config.ingest.queue_size, max_width=args.width)
    capture = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, work / "rec", stop_event=stop)
    engine = MP_CONTEXT.Process(target=run_engine, args=(config, bus, stop), name="engine")
    try:
        engine.start()
        capture.start()
        wait_warm(client, 1, WARMUP_TIMEOUT_S, "engine")
        return measure(client, args.seconds, "engine", lambda: sum(bus.dropped(c) for c in urls))
    finally:
        stop.set()
        engine.join(60)
        if engine.is_alive():
            engine.kill()
        capture.stop()
        bus.close()
        bus.unlink()


def run_baseline_phase(urls: dict[str, str], args: argparse.Namespace, redis_url: str, work: Path) -> dict[str, Any]:
    """The naive baseline: per camera its own capture worker, frame bus and batch-1 process."""
    from pipeline.ingest.framebus import MP_CONTEXT, FrameBus
    from pipeline.ingest.worker import CaptureWorkerProcess

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    stop = MP_CONTEXT.Event()
    buses, captures, procs = [], [], []
    try:
        for i, (camera_id, url) in enumerate(urls.items()):
            config = make_config({camera_id: url}, args.fps, args.width, work / f"spool-base-{i}", naive=True, first=i,
                                 queue_size=args.queue_size)
            bus = FrameBus([camera_id], queue_size=config.ingest.queue_size, max_width=args.width)
            buses.append(bus)
            captures.append(CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, work / "rec",
                                                 stop_event=stop, name=f"capture-{i}"))
            procs.append(MP_CONTEXT.Process(target=run_baseline_camera,
                                            args=(config, bus, stop, redis_url, f"baseline-{i}"), name=f"base-{i}"))
        for proc in procs:
            proc.start()
        for capture in captures:
            capture.start()
        wait_warm(client, len(procs), WARMUP_TIMEOUT_S, "baseline")
        return measure(client, args.seconds, "baseline",
                       lambda: sum(b.dropped(c) for b, c in zip(buses, urls, strict=True)))
    finally:
        stop.set()
        for proc in procs:
            proc.join(60)
            if proc.is_alive():
                proc.kill()
        for capture in captures:
            capture.stop()
        for bus in buses:
            bus.close()
            bus.unlink()


# -- report -----------------------------------------------------------------------------------------------------


def print_table(engine: dict[str, Any], baseline: dict[str, Any] | None, args: argparse.Namespace) -> None:
    """Human-readable comparison."""
    rows = [("analysed frames/s", "analysed_fps", "{:.2f}"), ("detector frames/s", "detector_fps", "{:.2f}"),
            ("event latency p50 (s)", "latency_p50_s", "{:.2f}"), ("event latency p95 (s)", "latency_p95_s", "{:.2f}"),
            ("dropped frames", "dropped_frames", "{:.0f}"), ("mean batch size", "batch_size_mean", "{:.2f}"),
            ("CPU cores used", "cpu_cores", "{:.2f}"), ("RSS (MB)", "rss_mb", "{:.0f}")]
    print(f"\n{args.streams} RTSP cameras offered at {args.fps:g} fps each ({args.streams * args.fps:g} frames/s), "
          f"{args.seconds:g} s measured per phase")
    print(f"{'':28s}{'engine':>12s}{'baseline':>12s}")
    for label, key, fmt in rows:
        base = fmt.format(baseline[key]) if baseline else "-"
        print(f"{label:28s}{fmt.format(engine[key]):>12s}{base:>12s}")
    print("stage ms per analysed frame:")
    for stage, value in engine["stage_ms_per_frame"].items():
        base = f"{baseline['stage_ms_per_frame'][stage]:.1f}" if baseline else "-"
        print(f"  {stage:26s}{value:>12.1f}{base:>12s}")
    print("events per 100 analysed frames:")
    for kind, value in engine["events_per_100_frames"].items():
        base = f"{baseline['events_per_100_frames'][kind]:.2f}" if baseline else "-"
        print(f"  {kind:26s}{value:>12.2f}{base:>12s}")
    if baseline:
        ratio = engine["analysed_fps"] / max(baseline["analysed_fps"], 1e-9)
        print(f"\nratio engine / naive baseline (analysed frames/s): {ratio:.2f}x")


def plot(result: dict[str, Any], path: Path) -> None:
    """Bars of analysed fps and stacked stage times per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [p for p in ("engine", "baseline") if result.get(p)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.bar(phases, [result[p]["analysed_fps"] for p in phases], color=["tab:green", "tab:gray"][: len(phases)])
    ax1.axhline(result["streams"] * result["fps"], ls="--", color="tab:red", label="offered")
    ax1.set_ylabel("analysed frames / s")
    ax1.set_title(f"{result['streams']} cameras, ratio {result.get('ratio', 0):.2f}x")
    ax1.legend()
    bottom = [0.0] * len(phases)
    for stage in result["engine"]["stage_ms_per_frame"]:
        if stage == "decode_wait":
            continue
        values = [result[p]["stage_ms_per_frame"][stage] for p in phases]
        ax2.bar(phases, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax2.set_ylabel("ms per analysed frame (process time)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run both phases and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=8, help="number of RTSP cameras")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per phase")
    parser.add_argument("--fps", type=float, default=1.0, help="analysis fps per camera")
    parser.add_argument("--width", type=int, default=960, help="analysis frame width (ingest.max_width)")
    parser.add_argument("--queue-size", type=int, default=2,
                        help="frames queued per camera before the oldest is dropped (ingest.queue_size)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline phase")
    parser.add_argument("--json", type=Path, help="write the flat results here")
    parser.add_argument("--plot", type=Path, help="PNG plot (default: next to --json)")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.seconds <= 0 or args.fps <= 0:
        parser.error("--streams, --seconds and --fps must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pipeline.testcams import TestCameraServer

    work = Path(tempfile.mkdtemp(prefix="cctv-throughput-"))
    os.environ["CCTV_RECORDINGS_DIR"] = str(work / "rec")
    redis_proc, redis_url = start_redis(work)
    os.environ["CCTV_REDIS_URL"] = redis_url  # the engine process reads it from its settings
    aliases = {f"cam{i + 1:02d}": VIDEOS[i % len(VIDEOS)][0] for i in range(args.streams)}
    result: dict[str, Any] = {"streams": args.streams, "fps": args.fps, "seconds": args.seconds, "width": args.width}
    try:
        with TestCameraServer(get_settings().videos_dir, port=free_port(), names=[], aliases=aliases) as cams:
            urls = {name: cams.url(name) for name in aliases}
            print(f"phase 1/2: engine ({args.streams} cameras -> capture worker -> frame bus -> 1 engine process)",
                  flush=True)
            result["engine"] = run_engine_phase(urls, args, redis_url, work)
            if not args.no_baseline:
                print(f"phase 2/2: naive baseline ({args.streams} processes, batch-1 calls, no gating)", flush=True)
                result["baseline"] = run_baseline_phase(urls, args, redis_url, work)
    finally:
        redis_proc.kill()
        redis_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    engine, baseline = result["engine"], result.get("baseline")
    result["ratio"] = engine["analysed_fps"] / max(baseline["analysed_fps"], 1e-9) if baseline else None
    print_table(engine, baseline, args)
    flat = {
        "streams": args.streams, "fps_per_camera": args.fps, "seconds": args.seconds,
        "analysed_fps": round(engine["analysed_fps"], 3), "detector_fps": round(engine["detector_fps"], 3),
        "baseline_fps": round(baseline["analysed_fps"], 3) if baseline else None,
        "ratio": round(result["ratio"], 3) if baseline else None,
        "latency_p50_s": engine["latency_p50_s"], "latency_p95_s": engine["latency_p95_s"],
        "baseline_latency_p95_s": baseline["latency_p95_s"] if baseline else None,
        "dropped_frames": engine["dropped_frames"],
        "baseline_dropped_frames": baseline["dropped_frames"] if baseline else None,
        "batch_size_mean": round(engine["batch_size_mean"], 2),
        "cpu_cores": round(engine["cpu_cores"], 2), "rss_mb": round(engine["rss_mb"], 1),
        "baseline_cpu_cores": round(baseline["cpu_cores"], 2) if baseline else None,
        "baseline_rss_mb": round(baseline["rss_mb"], 1) if baseline else None,
        **{f"stage_{k}_ms": round(v, 2) for k, v in engine["stage_ms_per_frame"].items()},
        **{f"events_per_100_{k}": round(v, 2) for k, v in engine["events_per_100_frames"].items()},
        **({f"baseline_events_per_100_{k}": round(v, 2) for k, v in baseline["events_per_100_frames"].items()}
           if baseline else {}),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(flat, indent=2))
        print(f"wrote {args.json}")
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json else None)
    if plot_path:
        plot(result, plot_path)
        print(f"wrote {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
