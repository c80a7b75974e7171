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
   person crop (the full frame when no person is detected), all as batch-1 calls, no motion gating and no
   per-track plate throttling; same tracking/event code.

``--mode files`` (or ``both``) also runs the two configurations on the SAME decoded frames inside this process and
compares CPU time per frame and the events produced (a same-accuracy check independent of machine load).

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
from collections import Counter
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
                queue_size: int = 2, precision: str = "auto") -> Config:
    """cameras.yaml equivalent for the benchmark cameras (analysis only, no recording).

    Camera ``k`` of the benchmark (``first`` + position here) shows video ``k mod 3`` with that video's analytics.
    """
    cameras = []
    for i, (camera_id, url) in enumerate(urls.items()):
        analytics = VIDEOS[(first + i) % len(VIDEOS)][1]
        cameras.append({"id": camera_id, "name": camera_id, "url": url, "analytics": analytics, "analysis_fps": fps,
                        "recording": {"enabled": False}})
    engine: dict[str, Any] = {"device": "auto", "spool_dir": str(spool_dir), "metrics_port": 0,
                              "model_precision": precision}
    if naive:
        engine.update({"max_batch_size": 1, "max_wait_ms": 0, "motion_threshold": 0.0, "detector_keepalive_s": 0.1,
                       "plate_reads_per_track": 1000, "person_tracks_for_faces": True})  # the detector on every frame
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


def naive_engine_class() -> type:
    """The baseline's Engine: the face model per person crop (batch-1), full frame only when nobody is detected."""
    from pipeline.detections import Detections
    from pipeline.engine.engine import Engine
    from pipeline.plates.geometry import crop_box

    class NaiveEngine(Engine):
        def _faces(self, gated: list[Any]) -> None:
            for g in gated:
                if not g.cam.camera.analytics.faces:
                    continue
                with self.metrics.stage("face"):
                    frame = g.item.frame
                    if len(g.persons):
                        parts = []
                        for box in g.persons.xyxy:
                            crop, ox, oy = crop_box(frame, box, pad_x=0.05, pad_y=0.05)
                            if crop.size:
                                parts.append(self.models.faces.detect_batch([crop])[0].with_offset(ox, oy))
                        faces = Detections.merge(parts)
                    else:
                        faces = self.models.faces.detect_batch([frame])[0]
                with self.metrics.stage("track"):
                    self._attach_faces(g, faces)

    return NaiveEngine


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
    engine.__class__ = naive_engine_class()  # same state, naive face path
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
            engine.tick(lambda cam: bus.depth(cam) > 0)
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

    config = make_config(urls, args.fps, args.width, work / "spool-engine", naive=False, queue_size=args.queue_size,
                         precision=args.precision)
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
                                 queue_size=args.queue_size, precision=args.precision)
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


# -- file mode: the same decoded frames through both configurations, in this process ------------------------------


def decode_camera_frames(streams: int, fps: float, seconds: float, width: int) -> list[list[Any]]:
    """Per benchmark camera, the frames of its clip sampled at ``fps`` (looping the clip to fill ``seconds``)."""
    from pipeline.engine.filesource import iter_video_frames

    videos_dir = get_settings().videos_dir
    start = time.time()
    clips: dict[str, list[Any]] = {}
    cameras = []
    for k in range(streams):
        stem = VIDEOS[k % len(VIDEOS)][0]
        if stem not in clips:
            clips[stem] = list(iter_video_frames(videos_dir / f"{stem}.mp4", stem, 0.0, sample_fps=fps,
                                                 max_width=width))
        frames, t, i = [], 0.0, 0
        source = clips[stem]
        duration = source[-1].capture_time + 1.0 / fps
        while t < seconds:
            item = source[i % len(source)]
            loop = i // len(source)
            t = item.capture_time + loop * duration
            frames.append(type(item)(f"cam{k + 1:02d}", i + 1, start + t, item.frame))
            i += 1
        cameras.append(frames)
    return cameras


def run_file_mode(args: argparse.Namespace) -> dict[str, Any]:
    """CPU and wall time per analysed frame of the engine vs the naive per-camera batch-1 loop, same frames."""
    import pipeline.engine.aggregate as aggregate
    from pipeline.engine.engine import Engine
    from pipeline.engine.filesource import interleave
    from pipeline.models.registry import load_model_set

    cameras = decode_camera_frames(args.streams, args.fps, args.seconds, args.width)
    urls = {f"cam{k + 1:02d}": f"/videos/cam{k + 1:02d}.mp4" for k in range(args.streams)}
    work = Path(tempfile.mkdtemp(prefix="cctv-throughput-files-"))
    try:
        config = make_config(urls, args.fps, args.width, work / "spool", naive=False, precision=args.precision)
        models = load_model_set(config.engine)
        total = sum(len(c) for c in cameras)
        print(f"file mode: {args.streams} cameras, {total} frames ({args.fps:g} fps x {args.seconds:g} s of video each)",
              flush=True)

        def timed(label: str, body: Any) -> dict[str, float]:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            body()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            print(f"  [{label}] {total} frames in {wall:.1f} s wall, {cpu:.1f} s CPU "
                  f"({1000 * cpu / total:.0f} ms CPU per frame)", flush=True)
            return {"wall_s": wall, "cpu_s": cpu}

        engine = Engine(config, models, None, recordings_dir=work / "rec")

        def run_engine_files() -> None:
            sources = [iter(c) for c in cameras]
            for batch in interleave(sources, config.engine.max_batch_size):
                engine.process_batch(batch)
            engine.finish()

        engine_t = timed("engine", run_engine_files)
        naive_models = type("NaiveModels", (), {"vehicles": _PerItem(models.vehicles), "plates": _PerItem(models.plates),
                                                 "faces": _PerItem(models.faces)})()
        naive_class = naive_engine_class()
        interval, aggregate.PLATE_INTERVAL_S = aggregate.PLATE_INTERVAL_S, 0.0
        naive_engines = []

        def run_naive_files() -> None:
            for k, frames in enumerate(cameras):
                naive_config = make_config({f"cam{k + 1:02d}": urls[f"cam{k + 1:02d}"]}, args.fps, args.width,
                                           work / "spool", naive=True, first=k, precision=args.precision)
                naive = naive_class(naive_config, naive_models, None, recordings_dir=work / "rec")
                naive_engines.append(naive)
                for item in frames:
                    naive.process_batch([item])
                naive.finish()

        try:
            naive_t = timed("baseline", run_naive_files)
        finally:
            aggregate.PLATE_INTERVAL_S = interval

        def events(engines: list[Any]) -> dict[str, int]:
            kinds = Counter(kind for e in engines for kind, _ in e.events)
            long_tracks = sum(1 for e in engines for kind, ev in e.events
                              if kind == "plate" and ev.ended_at - ev.started_at >= 10)
            return {"plate_events": kinds["plate"], "face_events": kinds["face"], "long_vehicle_tracks": long_tracks,
                    "plates_detected": sum(int(e.metrics.counters["plates_detected"]) for e in engines),
                    "detector_frames": sum(int(e.metrics.counters["frames_analysed"]) for e in engines)}

        return {
            "frames": total,
            "engine": {**engine_t, "events": events([engine]), "stage_ms": _stage_ms(engine, total)},
            "baseline": {**naive_t, "events": events(naive_engines),
                         "stage_ms": {k: sum(_stage_ms(e, total)[k] for e in naive_engines) for k in _stage_ms(engine, 1)}},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stage_ms(engine: Any, frames: int) -> dict[str, float]:
    snap = engine.metrics.snapshot()
    return {stage: 1000.0 * float(snap.get(f"stage_{stage}_total_s", 0.0)) / max(frames, 1)
            for stage in ("gate", "detect", "plate_detect", "read", "face", "track", "publish")}


def print_file_mode(files: dict[str, Any]) -> None:
    """Table of the file-mode comparison."""
    e, b, n = files["engine"], files["baseline"], files["frames"]
    print(f"\nfile mode ({n} frames, same frames for both):")
    print(f"{'':28s}{'engine':>12s}{'baseline':>12s}")
    print(f"{'CPU ms per frame':28s}{1000 * e['cpu_s'] / n:>12.0f}{1000 * b['cpu_s'] / n:>12.0f}")
    print(f"{'frames per CPU-second':28s}{n / e['cpu_s']:>12.2f}{n / b['cpu_s']:>12.2f}")
    print(f"{'frames per wall-second':28s}{n / e['wall_s']:>12.2f}{n / b['wall_s']:>12.2f}")
    for stage in e["stage_ms"]:
        print(f"  {stage + ' ms/frame':26s}{e['stage_ms'][stage]:>12.1f}{b['stage_ms'][stage]:>12.1f}")
    for key in e["events"]:
        print(f"  {key:26s}{e['events'][key]:>12d}{b['events'][key]:>12d}")
    print(f"ratio (CPU per frame, baseline / engine): {b['cpu_s'] / e['cpu_s']:.2f}x")


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
    ratio = result.get("ratio")
    ratio_text = f"ratio {ratio:.2f}x" if ratio is not None else "no baseline run"
    ax1.set_title(f"{result['streams']} cameras, {ratio_text}")
    ax1.legend()
    bottom = [0.0] * len(phases)
    for stage in result["engine"]["stage_ms_per_frame"]:
        if stage == "decode_wait":
            continue
        values = [result[p]["stage_ms_per_frame"][stage] for p in phases]
        ax2.bar(phases, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax2.set_ylabel("stage wall ms per analysed frame\n(summed over processes)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _file_fields(files: dict[str, Any]) -> dict[str, Any]:
    e, b, n = files["engine"], files["baseline"], files["frames"]
    return {
        "files_frames": n,
        "files_engine_cpu_ms_per_frame": round(1000 * e["cpu_s"] / n, 1),
        "files_baseline_cpu_ms_per_frame": round(1000 * b["cpu_s"] / n, 1),
        "files_cpu_ratio": round(b["cpu_s"] / e["cpu_s"], 3),
        "files_engine_fps": round(n / e["wall_s"], 3), "files_baseline_fps": round(n / b["wall_s"], 3),
        **{f"files_engine_{k}": v for k, v in e["events"].items()},
        **{f"files_baseline_{k}": v for k, v in b["events"].items()},
    }


def write_file_mode(args: argparse.Namespace, files: dict[str, Any]) -> int:
    """JSON (and plot) of a files-only run: fps are frames per wall-second, ratio is CPU-time based."""
    e, b, n = files["engine"], files["baseline"], files["frames"]
    flat = {"mode": "files", "streams": args.streams, "fps_per_camera": args.fps, "seconds": args.seconds,
            "analysed_fps": round(n / e["wall_s"], 3), "baseline_fps": round(n / b["wall_s"], 3),
            "ratio": round(b["cpu_s"] / e["cpu_s"], 3), "ratio_basis": "cpu_time_per_frame",
            "latency_p50_s": None, "latency_p95_s": None, "dropped_frames": 0, **_file_fields(files)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(flat, indent=2))
        print(f"wrote {args.json}")
    return 0


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
    parser.add_argument("--precision", choices=("auto", "int8", "fp32"), default="auto",
                        help="engine.model_precision for both phases (auto: fp32)")
    parser.add_argument("--mode", choices=("live", "files", "both"), default="live",
                        help="live: RTSP + ingest + engine process + Redis (default); files: the same decoded frames "
                             "through engine and baseline in this process, compared by CPU time per frame")
    parser.add_argument("--json", type=Path, help="write the flat results here")
    parser.add_argument("--plot", type=Path, help="PNG plot (default: next to --json)")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.seconds <= 0 or args.fps <= 0:
        parser.error("--streams, --seconds and --fps must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    files = run_file_mode(args) if args.mode in ("files", "both") else None
    if files is not None:
        print_file_mode(files)
    if args.mode == "files":
        return write_file_mode(args, files)
    from pipeline.testcams import TestCameraServer

    work = Path(tempfile.mkdtemp(prefix="cctv-throughput-"))
    os.environ["CCTV_RECORDINGS_DIR"] = str(work / "rec")
    redis_proc, redis_url = start_redis(work)
    os.environ["CCTV_REDIS_URL"] = redis_url  # the engine process reads it from its settings
    aliases = {f"cam{i + 1:02d}": VIDEOS[i % len(VIDEOS)][0] for i in range(args.streams)}
    print("preparing models (derives the batch-capable files once, so that no phase pays for it)", flush=True)
    from pipeline.models.registry import load_model_set

    load_model_set(make_config({"cam": "rtsp://127.0.0.1/x"}, 1.0, args.width, work, naive=False,
                               precision=args.precision).engine)
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
        **(_file_fields(files) if files else {}),
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
