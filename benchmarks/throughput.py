"""Throughput of the whole service path (RTSP cameras -> ingest -> frame bus -> engine -> Redis) vs a naive baseline.

Usage: ``python -m benchmarks.throughput --streams N --seconds S [--fps F] [--json OUT] [--plot PNG]``,
``--streams-sweep 4,8,12,16,24`` for the live measurement at each camera count, ``--mode files`` for the
same-frames comparison and the answer check.

Both phases run in the same invocation on the same machine:

1. **engine**: N looping RTSP cameras on loopback (:class:`pipeline.testcams.TestCameraServer`, the real footage
   cycling dashcam -> plates, pedestrians/stage -> faces), one capture worker (ffmpeg decode, ``analysis_fps``
   sampling, :class:`pipeline.ingest.worker.CaptureWorkerProcess`) feeding one shared-memory frame bus, and ONE
   engine process (:func:`pipeline.engine.process.run_engine`): dynamic batches across cameras, motion gating,
   the adaptive detection schedule, settled plates, selective face embedding, batched model calls, events to a
   real redis-server.
2. **baseline** (naive): one process per camera, each with its own models and its own capture worker/frame bus,
   the detector per frame, the plate detector per vehicle crop, the reader per plate crop and the face model per
   person crop (the full frame when no person is detected), all as batch-1 calls, no motion gating and no
   per-track plate throttling; same tracking/event code. Each model uses every core (the runtimes' default, what
   an integrator who sets nothing gets); ``--baseline-threads N`` caps them (``CCTV_MODEL_THREADS``), which on the
   2-core host made twelve such processes slower, not faster.

Measured over ``--seconds`` after every process has warmed up (models loaded, first frame analysed) and every
camera has sent a frame, plus ``--settle`` seconds (default 10) in both phases:
analysed frames per second (frames the engine took from the bus and analysed, gated frames included; the frames
that reached the detector are reported separately), event latency from frame capture to event stored in Redis
(p50/p95, measured by the engines), per-stage milliseconds, batch sizes, frames dropped by backpressure, CPU
(cores used by all benchmark processes, ffmpeg included) and memory (RSS). Events per 100 analysed frames are
reported for both phases as a coarse same-accuracy check (same models and event logic in both). The
**models-only limit** ``models_only_ms_per_frame`` is the wall time of the engine's model stages (detect,
plate_detect, rectify, read, face) per analysed frame; ``engine_ms_per_frame`` is the engine process's busy wall
time (not waiting for frames) per analysed frame, and ``engine_cpu_ms_per_frame`` its CPU.

``--streams-sweep`` repeats the live measurement at each camera count (fresh Redis, cameras and engine each
time, one after another: warm-up + ``--seconds`` per phase per count) and plots analysed fps and event latency
p95 against the number of cameras.

``--mode files`` (or ``both``) runs the SAME decoded frames through the engine, a **reference** run (every frame,
every model, on ONNX Runtime in f32: ``every_frame`` schedule, motion threshold 0, no early plate settling, no retry
back-off, every face embedded) and the naive baseline inside this process. It compares CPU time per frame, the
models' own CPU time (every model call timed alone: ``models_only_ms_per_frame``; ``engine_ms_per_frame`` is the
engine's CPU per frame), and the **answer check**: ``reference_recall`` (share of the reference's correct distinct
plate reads ``(camera, text)``, those of the plates legible by eye in ``benchmarks/data/footage_plates.csv``, and of
its face events that the engine also produced; goal >= 0.98; ``reference_recall_all_reads`` counts the reference's
guesses at illegible plates too) and ``extra_event_rate``
(events the engine made that the reference did not, over the reference's count; goal <= 0.02). Deterministic and
independent of machine load, apart from the times.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

from benchmarks.report import add_engine_set, engine_settings
from pipeline.config import Config
from pipeline.models.plate_detector import SECOND_LOOK_ANGLES
from pipeline.settings import get_settings

logger = logging.getLogger("benchmarks.throughput")

VIDEOS = (  # (stem, analytics)
    ("thai_bangkok_night_dashcam_bus", {"plates": True, "faces": False}),
    ("pedestrians_walking_toward_camera", {"plates": False, "faces": True}),
    ("short_hamilton_clip", {"plates": False, "faces": True}),
)
WARMUP_TIMEOUT_S = 600.0
FOOTAGE_PLATES = Path(__file__).with_name("data") / "footage_plates.csv"
"""Plates legible by eye in the test videos: the answer check's correct reads (the reference also reads guesses
at plates too blurred for anyone to read; those count as extra or missed reads but not against its recall)."""


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
                queue_size: int = 2, precision: str = "auto", engine_overrides: dict[str, Any] | None = None,
                freshest_when_full: bool = True) -> Config:
    """cameras.yaml equivalent for the benchmark cameras (analysis only, no recording).

    Camera ``k`` of the benchmark (``first`` + position here) shows video ``k mod 3`` with that video's analytics.
    ``engine_overrides`` are set on the ``engine`` section last (the answer check's reference run).
    ``freshest_when_full`` is ``ingest.freshest_when_full``.
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
    engine.update(engine_overrides or {})
    return Config.model_validate({"ingest": {"max_width": width, "queue_size": queue_size,
                                             "freshest_when_full": freshest_when_full},
                                  "engine": engine, "cameras": cameras})


class _PerItem:
    """Naive wrapper: one batch-1 model call per image (other attributes are the model's own)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def detect_batch(self, frames: list[Any], tiles: list[int] | None = None, **options: Any) -> list[Any]:
        if tiles is None:
            return [self.model.detect_batch([f], **options)[0] for f in frames]
        return [self.model.detect_batch([f], [t], **options)[0] for f, t in zip(frames, tiles, strict=True)]

    def look_again(self, crops: list[Any], found: list[Any], min_confidence: float = 0.0,
                   eligible: list[int] | None = None, tiles: list[int] | None = None) -> list[Any]:
        for k in range(len(crops)) if eligible is None else eligible:
            own_tiles = None if tiles is None else [tiles[k]]
            found[k] = self.model.look_again([crops[k]], [found[k]], min_confidence, tiles=own_tiles)[0]
        return found

    def detect_rotated(self, crops: list[Any], angles: tuple[float, ...] = SECOND_LOOK_ANGLES,
                       tiles: list[int] | None = None) -> list[Any]:
        return [self.model.detect_rotated([c], angles, None if tiles is None else [tiles[k]])[0]
                for k, c in enumerate(crops)]

    def read_batch(self, crops: list[Any], layouts: list[str] | None = None,
                   outputs: dict[tuple[int, str], Any] | None = None) -> list[Any]:
        reads = []
        for i, crop in enumerate(crops):
            own: dict[tuple[int, str], Any] | None = {} if outputs is not None else None
            extra = {} if own is None else {"outputs": own}
            reads.append(self.model.read_batch([crop], None if layouts is None else [layouts[i]], **extra)[0])
            if own and outputs is not None:  # the network outputs under this crop's index in the whole batch
                outputs.update({(i, form): value for (_, form), value in own.items()})
        return reads

    def read_views(self, views: list[Any], layouts: list[str] | None = None,
                   known: dict[tuple[int, str], Any] | None = None) -> list[Any]:
        out = []
        for k, plate_views in enumerate(views):
            own = None if known is None else {(0, form): value for (j, form), value in known.items() if j == k}
            out.append(self.model.read_views([plate_views], None if layouts is None else [layouts[k]],
                                             known=own)[0])
        return out

    def rectify_batch(self, crops: list[Any]) -> list[Any]:
        return [self.model.rectify_batch([c])[0] for c in crops]


MODEL_METHODS = ("detect_batch", "look_again", "read_batch", "rectify_batch")
MODEL_STAGES = ("detect", "plate_detect", "rectify", "read", "face")  # engine stages that are model calls
LOOK_COUNTERS = ("turned_looks", "unsure_turned_looks", "unsure_turned_kept", "tiled_looks", "whole_looks",
                 "closer_looks", "regrown_plates", "regrown_kept")
"""Engine counters of the plate search's extra looks, reported per 100 analysed frames beside the events."""
FACE_COUNTERS = ("faces_embedded", "faces_not_embedded")
"""Engine counters of the face stage: faces embedded, and faces found but not embedded (they could not improve)."""
ALL_STAGES = ("decode_wait", "gate", "detect", "plate_detect", "rectify", "read", "face", "track", "publish")


class ModelClock:
    """CPU and wall seconds spent inside model calls (every thread of this process: ONNX Runtime's too)."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, model: Any) -> Any:
        """``model`` (or None) with its inference methods timed by this clock."""
        return None if model is None else _Timed(model, self)

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` timed (a call nested in a timed call is counted once, by the outer one)."""
        if self._depth:
            return method(*args, **kwargs)
        self._depth += 1
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            self.cpu_s += time.process_time() - cpu0
            self.wall_s += time.perf_counter() - wall0
            self.calls += 1
            self._depth -= 1


class _Timed:
    """A model whose inference methods (:data:`MODEL_METHODS`) are timed by a :class:`ModelClock`."""

    def __init__(self, model: Any, clock: ModelClock) -> None:
        self._model = model
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._model, name)
        if name not in MODEL_METHODS:
            return attr
        return lambda *args, **kwargs: self._clock.call(attr, *args, **kwargs)


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


def reference_overrides(plate_reads_per_track: int = 8) -> dict[str, Any]:
    """Engine settings of the answer check's reference run: every frame, every model.

    Every frame passes the motion gate (threshold 0, keepalive at its minimum, shorter than any frame interval the
    benchmark uses), every moving frame is detected (``every_frame`` schedule), and a vehicle's plate is read until
    ``plate_reads_per_track`` agreeing reads (no early settling). Faces are searched on the whole frame and all
    embedded by :func:`reference_engine_class`, and the plate retry interval is 0 during the run (see
    :func:`run_file_mode`).
    """
    return {"detection_schedule": "every_frame", "plate_settle_reads": plate_reads_per_track,
            "motion_threshold": 0.0, "detector_keepalive_s": 0.1, "face_search": "frame"}


def reference_engine_class() -> type:
    """The reference run's Engine: every detected face is embedded (no selective face embedding)."""
    import numpy as np

    from pipeline.engine.engine import Engine

    class ReferenceEngine(Engine):
        def _faces_worth_embedding(self, g: Any, faces: Any) -> np.ndarray:
            return np.ones(len(faces), bool)

    return ReferenceEngine


def run_baseline_camera(config: Config, bus: Any, stop_event: Any, redis_url: str, engine_id: str,
                        model_threads: int = 0) -> None:
    """Baseline process of ONE camera: batch-1 model calls per frame and per crop, no gating, no throttling;
    ``model_threads`` > 0 caps each model's CPU threads in this process (``CCTV_MODEL_THREADS``)."""
    logging.basicConfig(level=logging.WARNING)
    if model_threads:
        os.environ["CCTV_MODEL_THREADS"] = str(model_threads)
        get_settings.cache_clear()
    import pipeline.engine.aggregate as aggregate
    from pipeline.engine.process import build_engine, load_plate_reader_or_none
    from pipeline.models.registry import load_model_set

    aggregate.PLATE_INTERVAL_S = 0.0  # read the plate on every frame
    models = load_model_set(config.engine, device=config.engine.device)
    models.vehicles, models.plates, models.faces = (_PerItem(models.vehicles), _PerItem(models.plates),
                                                    _PerItem(models.faces))
    reader = load_plate_reader_or_none(config.engine.plate_reader, device=config.engine.device,
                                       runtime=config.engine.runtime)
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


def wait_cameras_settled(published: dict[str, Callable[[], int]], settle_s: float, deadline_s: float,
                         label: str) -> None:
    """Wait until every camera has put a frame on its frame bus (``published[camera]()`` counts them), then
    ``settle_s`` more, so that the measured window holds no camera still connecting and no burst of new scenes.

    Both phases wait the same way: the baseline's warm-up already needs every camera (one process each), the
    engine's would otherwise start measuring when its first camera was analysed, with the others still starting
    their ffmpeg and every scene new."""
    start = time.monotonic()
    last_note = start
    while True:
        missing = [camera for camera, count in published.items() if count() < 1]
        if not missing:
            break
        if time.monotonic() - start > deadline_s:
            raise SystemExit(f"{label}: cameras {', '.join(missing)} sent no frame within {deadline_s:.0f}s")
        if time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            print(f"  [{label}] waiting for {len(missing)} of {len(published)} cameras", flush=True)
        time.sleep(0.5)
    if settle_s > 0:
        print(f"  [{label}] every camera up after {time.monotonic() - start:.1f}s; settling {settle_s:g}s",
              flush=True)
        time.sleep(settle_s)


def pids_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of the processes ``pids`` (those that are gone count 0)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def measure(client: redis.Redis, seconds: float, label: str, dropped: Any,
            engine_pids: list[int] | None = None) -> dict[str, Any]:
    """Counters over a ``seconds`` window, with progress lines.

    ``engine_pids`` are the analysing processes (not the capture workers): their CPU per analysed frame is
    ``engine_cpu_ms_per_frame``. ``models_only_ms_per_frame`` sums the model stages' wall time
    (:data:`MODEL_STAGES`) per analysed frame; ``engine_busy_ms_per_frame`` is the engines' wall time minus their
    wait for frames (``decode_wait``) per analysed frame, so their ratio compares wall with wall.
    """
    hashes0 = engine_hashes(client)
    cpu0, _ = descendants_cpu_rss()
    engine_cpu0 = pids_cpu(engine_pids or [])
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
    engine_cpu = pids_cpu(engine_pids or []) - engine_cpu0
    frames = _sum(hashes1, "count_frames") - _sum(hashes0, "count_frames")
    detector = _sum(hashes1, "count_frames_analysed") - _sum(hashes0, "count_frames_analysed")
    events = {k: _sum(hashes1, f"count_{k}") - _sum(hashes0, f"count_{k}")
              for k in ("plate_events", "face_events", "alerts", "plates_detected", *LOOK_COUNTERS)}
    p50 = max((float(h.get("event_latency_p50_s", 0) or 0) for h in hashes1.values()), default=0.0)
    p95 = max((float(h.get("event_latency_p95_s", 0) or 0) for h in hashes1.values()), default=0.0)
    stages = {}
    for stage in ALL_STAGES:
        total = _sum(hashes1, f"stage_{stage}_total_s") - _sum(hashes0, f"stage_{stage}_total_s")
        stages[stage] = 1000.0 * total / max(frames, 1)
    batch_sizes = [float(h.get("batch_size_mean", 0) or 0) for h in hashes1.values()]
    models_only = sum(stages[s] for s in MODEL_STAGES)
    busy = max(1000.0 * elapsed * max(len(engine_pids or []), 1) / max(frames, 1) - stages["decode_wait"], 0.0)
    return {
        "models_only_ms_per_frame": models_only,
        "engine_cpu_ms_per_frame": 1000.0 * engine_cpu / max(frames, 1) if engine_pids else None,
        "engine_busy_ms_per_frame": busy,
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
                         precision=args.precision, engine_overrides=args.engine_set,
                         freshest_when_full=not args.oldest_first)
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    stop = MP_CONTEXT.Event()
    bus = FrameBus(list(urls), **config.ingest.bus_options())
    capture = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, work / "rec", stop_event=stop)
    engine = MP_CONTEXT.Process(target=run_engine, args=(config, bus, stop), name="engine")
    try:
        engine.start()
        capture.start()
        wait_warm(client, 1, WARMUP_TIMEOUT_S, "engine")
        wait_cameras_settled({c: (lambda c=c: bus.published(c)) for c in urls}, args.settle, WARMUP_TIMEOUT_S,
                             "engine")
        return measure(client, args.seconds, "engine", lambda: sum(bus.dropped(c) for c in urls),
                       engine_pids=[engine.pid])
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
                                 queue_size=args.queue_size, precision=args.precision,
                                 freshest_when_full=not args.oldest_first)
            bus = FrameBus([camera_id], **config.ingest.bus_options())
            buses.append(bus)
            captures.append(CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, work / "rec",
                                                 stop_event=stop, name=f"capture-{i}"))
            procs.append(MP_CONTEXT.Process(target=run_baseline_camera,
                                            args=(config, bus, stop, redis_url, f"baseline-{i}",
                                                  args.baseline_threads), name=f"base-{i}"))
        for proc in procs:
            proc.start()
        for capture in captures:
            capture.start()
        wait_warm(client, len(procs), WARMUP_TIMEOUT_S, "baseline")
        wait_cameras_settled({c: (lambda b=b, c=c: b.published(c)) for b, c in zip(buses, urls, strict=True)},
                             args.settle, WARMUP_TIMEOUT_S, "baseline")
        return measure(client, args.seconds, "baseline",
                       lambda: sum(b.dropped(c) for b, c in zip(buses, urls, strict=True)),
                       engine_pids=[proc.pid for proc in procs])
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


@dataclass(frozen=True)
class FaceSpan:
    """A face event reduced to what the answer check compares: camera, time span and embedding."""

    camera_id: str
    start: float
    end: float
    embedding: tuple[float, ...] | None = None


FACE_MATCH_SLACK_S = 1.0  # two face events of a camera match when their spans overlap or lie this close
FACE_MATCH_SIMILARITY = 0.5  # ... and their best faces' embeddings (when both have one) are at least this similar


def event_keys(events: Iterable[tuple[str, Any]]) -> tuple[set[tuple[str, str]], list[FaceSpan]]:
    """What an engine's published events answered: the distinct plate reads ``(camera, text)`` (non-empty text)
    and the face events, each from the last version of its event."""
    latest: dict[str, tuple[str, Any]] = {}
    for kind, event in events:
        if kind not in ("plate", "face"):
            continue
        seen = latest.get(event.event_id)
        if seen is None or event.version >= seen[1].version:
            latest[event.event_id] = (kind, event)
    plates = {(ev.camera_id, ev.plate_text) for kind, ev in latest.values() if kind == "plate" and ev.plate_text}
    faces = [FaceSpan(ev.camera_id, float(ev.started_at), float(ev.ended_at),
                      tuple(float(x) for x in ev.embedding) if getattr(ev, "embedding", None) else None)
             for kind, ev in latest.values() if kind == "face"]
    return plates, faces


def _similarity(a: FaceSpan, b: FaceSpan) -> float | None:
    if a.embedding is None or b.embedding is None or len(a.embedding) != len(b.embedding):
        return None
    dot = sum(x * y for x, y in zip(a.embedding, b.embedding, strict=True))
    norm = (sum(x * x for x in a.embedding) * sum(y * y for y in b.embedding)) ** 0.5
    return dot / norm if norm > 0 else 0.0


def match_faces(measured: list[FaceSpan], reference: list[FaceSpan]) -> list[tuple[int, int]]:
    """One-to-one pairs ``(measured index, reference index)`` of face events that are the same answer: same
    camera, spans overlapping (within :data:`FACE_MATCH_SLACK_S`), embeddings at least
    :data:`FACE_MATCH_SIMILARITY` alike when both have one; the most similar, then most overlapping pairs first."""
    candidates = []
    for i, m in enumerate(measured):
        for j, r in enumerate(reference):
            if m.camera_id != r.camera_id:
                continue
            overlap = min(m.end, r.end) - max(m.start, r.start)
            if overlap < -FACE_MATCH_SLACK_S:
                continue
            sim = _similarity(m, r)
            if sim is not None and sim < FACE_MATCH_SIMILARITY:
                continue
            candidates.append((-(sim if sim is not None else 1.0), -overlap, i, j))
    pairs, used_m, used_r = [], set(), set()
    for _, _, i, j in sorted(candidates):
        if i in used_m or j in used_r:
            continue
        used_m.add(i)
        used_r.add(j)
        pairs.append((i, j))
    return sorted(pairs)


def load_footage_plates(path: Path = FOOTAGE_PLATES) -> dict[str, set[str]]:
    """The plates legible by eye in each test video (:data:`FOOTAGE_PLATES`): video stem -> registrations."""
    legible: dict[str, set[str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            video, plate = (row.get("video") or "").strip(), (row.get("plate") or "").strip()
            if not video or not plate:
                raise ValueError(f"{path}:{line}: a row needs both 'video' and 'plate'")
            legible.setdefault(video, set()).add(plate)
    return legible


def camera_plate_truth(camera_ids: list[str], legible: dict[str, set[str]]) -> dict[str, set[str]]:
    """Legible plates per benchmark camera (camera ``k`` shows video ``k mod 3``); cameras whose video has no
    labels are left out (every read of theirs counts as correct)."""
    truth = {}
    for k, camera_id in enumerate(camera_ids):
        stem = VIDEOS[k % len(VIDEOS)][0]
        if stem in legible:
            truth[camera_id] = legible[stem]
    return truth


def answer_check(measured_plates: set[tuple[str, str]], measured_faces: list[FaceSpan],
                 reference_plates: set[tuple[str, str]], reference_faces: list[FaceSpan],
                 legible: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """Compare the measured run's answers with the reference run's (every frame, every model).

    ``reference_recall``: share of the reference's *correct* distinct plate reads and of its face events that the
    measured run also produced. A read is correct when its camera's footage has plates labelled by eye
    (``legible``: camera -> registrations) and it is one of them; on a camera without labels every read counts
    (``reference_recall_all_reads`` counts every read everywhere: a guess at an illegible plate included).
    ``extra_event_rate``: the measured run's plate reads and face events that the reference did not produce, over
    the reference's count. Both are None when the reference produced nothing.
    """
    legible = legible or {}

    def correct(reads: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(cam, text) for cam, text in reads if cam not in legible or text in legible[cam]}

    matched_plates = measured_plates & reference_plates
    reference_correct = correct(reference_plates)
    matched_correct = measured_plates & reference_correct
    pairs = match_faces(measured_faces, reference_faces)
    reference_n = len(reference_plates) + len(reference_faces)
    correct_n = len(reference_correct) + len(reference_faces)
    extra_plates = measured_plates - reference_plates
    extra_faces = len(measured_faces) - len(pairs)

    def texts(reads: set[tuple[str, str]]) -> list[str]:
        return sorted(f"{cam}:{text}" for cam, text in reads)

    return {
        "reference_plate_reads": len(reference_plates), "reference_face_events": len(reference_faces),
        "reference_correct_plate_reads": len(reference_correct),
        "plate_truth": f"by eye on {', '.join(sorted(legible))}" if legible else "every read",
        "measured_plate_reads": len(measured_plates), "measured_face_events": len(measured_faces),
        "matched_plate_reads": len(matched_plates), "matched_correct_plate_reads": len(matched_correct),
        "matched_face_events": len(pairs),
        "reference_plate_texts": texts(reference_plates),
        "missed_plate_texts": texts(reference_plates - measured_plates),
        "missed_correct_plate_texts": texts(reference_correct - measured_plates),
        "extra_plate_texts": texts(extra_plates),
        "missed_face_events": len(reference_faces) - len(pairs), "extra_face_events": extra_faces,
        "reference_recall": (len(matched_correct) + len(pairs)) / correct_n if correct_n else None,
        "reference_recall_all_reads": (len(matched_plates) + len(pairs)) / reference_n if reference_n else None,
        "extra_event_rate": (len(extra_plates) + extra_faces) / reference_n if reference_n else None,
    }


def run_file_mode(args: argparse.Namespace) -> dict[str, Any]:
    """The same decoded frames through the engine, the reference run (every frame, every model; the answer
    check) and the naive per-camera batch-1 loop, in this process: CPU and wall time per analysed frame, the
    models' own time (:class:`ModelClock`) and the answers."""
    import pipeline.engine.aggregate as aggregate
    from pipeline.engine.engine import Engine
    from pipeline.engine.filesource import interleave
    from pipeline.engine.process import load_plate_reader_or_none, load_plate_rectifier_or_none
    from pipeline.models.registry import load_model_set

    cameras = [frames[::args.keep_every] for frames in decode_camera_frames(args.streams, args.fps, args.seconds,
                                                                          args.width)]
    urls = {f"cam{k + 1:02d}": f"/videos/cam{k + 1:02d}.mp4" for k in range(args.streams)}
    work = Path(tempfile.mkdtemp(prefix="cctv-throughput-files-"))
    try:
        config = make_config(urls, args.fps, args.width, work / "spool", naive=False, precision=args.precision,
                             engine_overrides=args.engine_set)
        ec = config.engine
        models = load_model_set(ec)
        reader = load_plate_reader_or_none(ec.plate_reader, device=ec.device, runtime=ec.runtime)
        rectifier = load_plate_rectifier_or_none(ec.device, ec.runtime) if ec.plate_rectification else None
        total = sum(len(c) for c in cameras)
        kept = f", every {args.keep_every}th analysed" if args.keep_every > 1 else ""
        print(f"file mode: {args.streams} cameras, {total} frames ({args.fps:g} fps x {args.seconds:g} s of video each"
              f"{kept})"
              f"{'' if reader is not None else ' -- NO PLATE READER: plate events have no text'}", flush=True)

        def timed(label: str, body: Any, clock: ModelClock) -> dict[str, Any]:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            body()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            print(f"  [{label}] {total} frames in {wall:.1f} s wall, {cpu:.1f} s CPU "
                  f"({1000 * cpu / total:.0f} ms CPU per frame, {1000 * clock.cpu_s / total:.0f} of them in models)",
                  flush=True)
            return {"wall_s": wall, "cpu_s": cpu, "models_cpu_s": clock.cpu_s, "models_wall_s": clock.wall_s}

        def batched_run(label: str, engine_class: type, run_config: Config, run_models: Any = models,
                        small: tuple[Any, Any] = (reader, rectifier)) -> tuple[dict[str, Any], Any]:  # noqa: ANN401
            clock = ModelClock()
            timed_models = type("TimedModels", (), {"vehicles": clock.wrap(run_models.vehicles),
                                                    "plates": clock.wrap(run_models.plates),
                                                    "faces": clock.wrap(run_models.faces)})()
            engine = engine_class(run_config, timed_models, clock.wrap(small[0]), recordings_dir=work / "rec",
                                  plate_rectifier=clock.wrap(small[1]))

            def body() -> None:
                for batch in interleave([iter(c) for c in cameras], run_config.engine.max_batch_size):
                    engine.process_batch(batch)
                engine.finish()

            result = timed(label, body, clock)
            return {**result, "events": _events([engine]), "stage_ms": _stage_ms(engine, total)}, engine

        warm = Engine(config, models, reader, recordings_dir=work / "warm", plate_rectifier=rectifier)
        for batch in interleave([iter(c[:2]) for c in cameras], ec.max_batch_size):
            warm.process_batch(batch)  # first calls (allocations, lazy initialisation) are paid by no run
        out: dict[str, Any] = {"frames": total, "plate_reader": reader is not None, "keep_every": args.keep_every}
        if args.barrier:
            out["barrier_wait_s"] = wait_at_barrier(args.barrier, args.barrier_count)
        out["engine"], engine = batched_run("engine", Engine, config)
        if not args.no_reference:
            ref_config = make_config(urls, args.fps, args.width, work / "spool", naive=False, precision=args.precision,
                                     engine_overrides=reference_overrides(ec.plate_reads_per_track))
            ref_models = reference_models(models, ec)
            interval, aggregate.PLATE_INTERVAL_S = aggregate.PLATE_INTERVAL_S, 0.0  # no retry back-off either
            try:
                out["reference"], reference = batched_run("reference", reference_engine_class(), ref_config,
                                                          ref_models, reference_small_models(reader, rectifier, ec))
            finally:
                aggregate.PLATE_INTERVAL_S = interval
            out["answer_check"] = answer_check(*event_keys(engine.events), *event_keys(reference.events),
                                               legible=camera_plate_truth(list(urls), load_footage_plates()))
        if not args.no_baseline:
            out["baseline"] = run_naive_files(args, cameras, urls, models, reader, rectifier, work, total, timed)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


BARRIER_TIMEOUT_S = 600.0


def wait_at_barrier(folder: Path, count: int, timeout_s: float = BARRIER_TIMEOUT_S) -> float:
    """Mark this process ready in ``folder`` and wait until ``count`` processes are (parallel file-mode engines
    start their measured runs together, after each has loaded its models and decoded its frames); the seconds
    waited. Raises ``TimeoutError`` after ``timeout_s``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"ready-{os.getpid()}").touch()
    start = time.monotonic()
    while len(list(folder.glob("ready-*"))) < count:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{folder}: {len(list(folder.glob('ready-*')))} of {count} processes ready after "
                               f"{timeout_s:.0f} s")
        time.sleep(0.01)
    return time.monotonic() - start


def reference_small_models(reader: Any, rectifier: Any, engine_config: Any) -> tuple[Any, Any]:  # noqa: ANN401
    """The reference run's plate reader and rectifier: the engine's own where they run on ONNX Runtime, else fresh
    ones on ONNX Runtime on the CPU (the torch runtime moves them to the GPU; the answer check judges that too)."""
    from pipeline.engine.process import load_plate_reader_or_none, load_plate_rectifier_or_none
    from pipeline.models.onnx_utils import session_runtime

    def on_onnxruntime(model: Any) -> bool:  # noqa: ANN401
        session = getattr(model, "session", None)
        return session is None or (session_runtime(session) == "onnxruntime"
                                   and list(session.get_providers())[:1] == ["CPUExecutionProvider"])

    if reader is not None and not on_onnxruntime(reader):
        reader = load_plate_reader_or_none(engine_config.plate_reader, device="cpu", runtime="onnxruntime")
    if rectifier is not None and not on_onnxruntime(rectifier):
        rectifier = load_plate_rectifier_or_none("cpu", "onnxruntime")
    return reader, rectifier


def reference_models(models: Any, engine_config: Any) -> Any:  # noqa: ANN401
    """The reference run's models: ONNX Runtime in f32 for every model, the most exact runtime and precision, and
    the plate detector on its square input, so that the answer check also judges the runtime, the precision and
    the plate canvas the engine took (``engine.runtime: auto`` picks OpenVINO on some CPUs, ``openvino-bf16`` and
    ``torch-fp16`` move answers; the reference runs on the CPU, as ONNX Runtime's CUDA build may be missing; ``engine.model_precision: auto`` runs the plate detector in static int8); the engine's own models
    when they already run so."""
    from pipeline.models.registry import load_model_set

    if (set(models.runtimes.values()) <= {"onnxruntime", "ultralytics"} and engine_config.plate_canvas == "square"
            and set(models.precisions.values()) <= {"fp32"}):
        return models
    print(f"  [reference] models on ONNX Runtime in fp32, plates on the square canvas (the engine runs "
          f"{models.runtimes}, {models.precisions}, plate canvas {engine_config.plate_canvas})", flush=True)
    return load_model_set(engine_config.model_copy(update={"plate_canvas": "square"}), runtime="onnxruntime",
                          precision="fp32", device="cpu")


def run_naive_files(args: argparse.Namespace, cameras: list[list[Any]], urls: dict[str, str], models: Any,
                    reader: Any, rectifier: Any, work: Path, total: int, timed: Any) -> dict[str, Any]:
    """The naive baseline on the file frames: per camera its own engine, batch-1 model calls, no gating."""
    import pipeline.engine.aggregate as aggregate

    clock = ModelClock()
    naive_models = type("NaiveModels", (), {"vehicles": clock.wrap(_PerItem(models.vehicles)),
                                            "plates": clock.wrap(_PerItem(models.plates)),
                                            "faces": clock.wrap(_PerItem(models.faces))})()
    naive_reader = clock.wrap(_PerItem(reader)) if reader is not None else None
    naive_rectifier = clock.wrap(_PerItem(rectifier)) if rectifier is not None else None
    naive_class = naive_engine_class()
    interval, aggregate.PLATE_INTERVAL_S = aggregate.PLATE_INTERVAL_S, 0.0
    naive_engines: list[Any] = []

    def body() -> None:
        for k, frames in enumerate(cameras):
            camera_id = f"cam{k + 1:02d}"
            naive_config = make_config({camera_id: urls[camera_id]}, args.fps, args.width, work / "spool",
                                       naive=True, first=k, precision=args.precision)
            naive = naive_class(naive_config, naive_models, naive_reader, recordings_dir=work / "rec",
                                plate_rectifier=naive_rectifier)
            naive_engines.append(naive)
            for item in frames:
                naive.process_batch([item])
            naive.finish()

    try:
        result = timed("baseline", body, clock)
    finally:
        aggregate.PLATE_INTERVAL_S = interval
    stage_ms = {k: sum(_stage_ms(e, total)[k] for e in naive_engines) for k in _stage_ms(naive_engines[0], 1)}
    return {**result, "events": _events(naive_engines), "stage_ms": stage_ms}


def _events(engines: list[Any]) -> dict[str, int]:
    """Event counts of file-mode engines (every published version counts once per event)."""
    finals: dict[str, tuple[str, Any]] = {ev.event_id: (kind, ev) for e in engines for kind, ev in e.events
                                          if kind in ("plate", "face")}
    kinds = Counter(kind for kind, _ in finals.values())
    long_tracks = sum(1 for kind, ev in finals.values() if kind == "plate" and ev.ended_at - ev.started_at >= 10)
    plates, _ = event_keys(ev for e in engines for ev in e.events)
    return {"plate_events": kinds["plate"], "face_events": kinds["face"], "distinct_plate_reads": len(plates),
            "long_vehicle_tracks": long_tracks,
            "plates_detected": sum(int(e.metrics.counters["plates_detected"]) for e in engines),
            **{name: sum(int(e.metrics.counters[name]) for e in engines) for name in FACE_COUNTERS + LOOK_COUNTERS},
            "detector_frames": sum(int(e.metrics.counters["frames_analysed"]) for e in engines)}


PLATE_CASCADE_STAGES = ("plate_detect", "rectify", "read")


def plate_cascade_ms_per_plate_found(phase: dict[str, Any], frames: int) -> float | None:
    """The plate cascade's time (plate detector, rectifier, reader: the stages' batched wall time) per plate found
    in a file-mode phase, or None when it found none."""
    found = phase["events"].get("plates_detected", 0)
    if not found:
        return None
    return sum(phase["stage_ms"].get(s, 0.0) for s in PLATE_CASCADE_STAGES) * frames / found


def _stage_ms(engine: Any, frames: int) -> dict[str, float]:
    snap = engine.metrics.snapshot()
    return {stage: 1000.0 * float(snap.get(f"stage_{stage}_total_s", 0.0)) / max(frames, 1)
            for stage in ALL_STAGES if stage != "decode_wait"}


def files_fields(files: dict[str, Any]) -> dict[str, Any]:
    """Flat JSON fields of a file-mode run (``files_`` prefixed, plus the answer check and models-only figures)."""
    n = files["frames"]
    out: dict[str, Any] = {"files_frames": n, "files_plate_reader": files.get("plate_reader"),
                           "files_keep_every": files.get("keep_every", 1),
                           "files_barrier_wait_s": _round(files.get("barrier_wait_s"))}
    for phase in ("engine", "reference", "baseline"):
        p = files.get(phase)
        if not p:
            continue
        out.update({f"files_{phase}_cpu_ms_per_frame": round(1000 * p["cpu_s"] / n, 1),
                    f"files_{phase}_wall_ms_per_frame": round(1000 * p["wall_s"] / n, 1),
                    f"files_{phase}_models_cpu_ms_per_frame": round(1000 * p["models_cpu_s"] / n, 1),
                    f"files_{phase}_fps": round(n / p["wall_s"], 3),
                    f"files_{phase}_plate_cascade_ms_per_plate_found": _round(plate_cascade_ms_per_plate_found(p, n)),
                    **{f"files_{phase}_{k}": v for k, v in p["events"].items()}})
    e, b = files["engine"], files.get("baseline")
    out["files_cpu_ratio"] = round(b["cpu_s"] / e["cpu_s"], 3) if b else None
    out["models_only_ms_per_frame"] = round(1000 * e["models_cpu_s"] / n, 1)
    out["engine_ms_per_frame"] = round(1000 * e["cpu_s"] / n, 1)
    out["engine_over_models_only"] = round(e["cpu_s"] / max(e["models_cpu_s"], 1e-9), 3)
    out["models_only_basis"] = "cpu: model calls alone, same frames (--mode files)"
    out["engine_ms_basis"] = "cpu: whole engine per analysed frame (--mode files)"
    check = files.get("answer_check")
    out["reference_recall"] = round(check["reference_recall"], 4) if check and check["reference_recall"] is not None \
        else None
    out["extra_event_rate"] = round(check["extra_event_rate"], 4) if check and check["extra_event_rate"] is not None \
        else None
    if check:
        out.update({f"answer_{k}": v for k, v in check.items() if k not in ("reference_recall", "extra_event_rate")})
    return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_file_mode(files: dict[str, Any]) -> None:
    """Table of the file-mode comparison (engine, reference, baseline; the answer check)."""
    n = files["frames"]
    phases = [p for p in ("engine", "reference", "baseline") if files.get(p)]
    print(f"\nfile mode ({n} frames, same frames for every run):")
    print(f"{'':30s}" + "".join(f"{p:>12s}" for p in phases))

    def row(label: str, fmt: str, value: Any) -> None:
        print(f"{label:30s}" + "".join(f"{fmt.format(value(files[p])):>12s}" for p in phases))

    row("CPU ms per frame", "{:.0f}", lambda p: 1000 * p["cpu_s"] / n)
    row("  models alone (CPU ms/frame)", "{:.0f}", lambda p: 1000 * p["models_cpu_s"] / n)
    row("  engine / models alone", "{:.2f}x", lambda p: p["cpu_s"] / max(p["models_cpu_s"], 1e-9))
    row("frames per CPU-second", "{:.2f}", lambda p: n / p["cpu_s"])
    row("frames per wall-second", "{:.2f}", lambda p: n / p["wall_s"])
    for stage in files["engine"]["stage_ms"]:
        row(f"  {stage} ms/frame", "{:.1f}", lambda p, stage=stage: p["stage_ms"][stage])
    for key in files["engine"]["events"]:
        row(f"  {key}", "{:d}", lambda p, key=key: p["events"][key])
    row("plate cascade ms per plate found", "{}", lambda p: _round(plate_cascade_ms_per_plate_found(p, n)))
    if files.get("baseline"):
        print(f"ratio (CPU per frame, baseline / engine): {files['baseline']['cpu_s'] / files['engine']['cpu_s']:.2f}x")
    check = files.get("answer_check")
    if check:
        recall, extra = check["reference_recall"], check["extra_event_rate"]
        print(f"answer check against the reference (every frame, every model): "
              f"reference_recall {_rate(recall)} (goal >= 0.98), extra_event_rate {_rate(extra)} (goal <= 0.02)")
        print(f"  plate reads: {check['matched_correct_plate_reads']}/{check['reference_correct_plate_reads']} of the "
              f"reference's correct ones ({check['plate_truth']}), {check['matched_plate_reads']}/"
              f"{check['reference_plate_reads']} of all its reads (recall "
              f"{_rate(check['reference_recall_all_reads'])} counting every read), "
              f"{len(check['extra_plate_texts'])} extra; face events: {check['matched_face_events']}/"
              f"{check['reference_face_events']}, {check['extra_face_events']} extra")
        if check["missed_plate_texts"] or check["extra_plate_texts"]:
            print(f"  missed reads: {check['missed_plate_texts']}; extra reads: {check['extra_plate_texts']}")


# -- report -----------------------------------------------------------------------------------------------------


def print_table(engine: dict[str, Any], baseline: dict[str, Any] | None, args: argparse.Namespace,
                streams: int | None = None) -> None:
    """Human-readable comparison of one live measurement."""
    streams = args.streams if streams is None else streams
    rows = [("analysed frames/s", "analysed_fps", "{:.2f}"), ("detector frames/s", "detector_fps", "{:.2f}"),
            ("event latency p50 (s)", "latency_p50_s", "{:.2f}"), ("event latency p95 (s)", "latency_p95_s", "{:.2f}"),
            ("dropped frames", "dropped_frames", "{:.0f}"), ("mean batch size", "batch_size_mean", "{:.2f}"),
            ("CPU cores used", "cpu_cores", "{:.2f}"), ("RSS (MB)", "rss_mb", "{:.0f}"),
            ("models-only ms/frame (wall)", "models_only_ms_per_frame", "{:.1f}"),
            ("engine busy ms/frame (wall)", "engine_busy_ms_per_frame", "{:.1f}"),
            ("engine CPU ms/frame", "engine_cpu_ms_per_frame", "{:.1f}")]
    print(f"\n{streams} RTSP cameras offered at {args.fps:g} fps each ({streams * args.fps:g} frames/s), "
          f"{args.seconds:g} s measured per phase")
    print(f"{'':30s}{'engine':>12s}{'baseline':>12s}")
    for label, key, fmt in rows:
        base = fmt.format(baseline[key]) if baseline and baseline.get(key) is not None else "-"
        mine = fmt.format(engine[key]) if engine.get(key) is not None else "-"
        print(f"{label:30s}{mine:>12s}{base:>12s}")
    print("stage ms per analysed frame:")
    for stage, value in engine["stage_ms_per_frame"].items():
        base = f"{baseline['stage_ms_per_frame'][stage]:.1f}" if baseline else "-"
        print(f"  {stage:28s}{value:>12.1f}{base:>12s}")
    print("events per 100 analysed frames:")
    for kind, value in engine["events_per_100_frames"].items():
        base = f"{baseline['events_per_100_frames'][kind]:.2f}" if baseline else "-"
        print(f"  {kind:28s}{value:>12.2f}{base:>12s}")
    if baseline:
        ratio = engine["analysed_fps"] / max(baseline["analysed_fps"], 1e-9)
        print(f"\nratio engine / naive baseline (analysed frames/s): {ratio:.2f}x")


def plot(result: dict[str, Any], path: Path) -> None:
    """Bars of analysed fps and stacked stage times per frame (one camera count)."""
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
        values = [result[p]["stage_ms_per_frame"].get(stage, 0.0) for p in phases]
        ax2.bar(phases, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax2.set_ylabel("stage wall ms per analysed frame\n(summed over processes)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


LATENCY_GOAL_S = 2.0  # issue 13: event latency p95 under 2 s at 16 cameras x 1 fps


def plot_sweep(points: list[dict[str, Any]], path: Path) -> None:
    """Analysed fps (with the offered rate) and event latency p95 against the number of cameras.

    ``points`` are the flat results of a sweep (``streams``, ``fps_per_camera``, ``analysed_fps``,
    ``latency_p95_s``; ``baseline_fps`` and ``baseline_latency_p95_s`` drawn when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(points, key=lambda p: p["streams"])
    cams = [p["streams"] for p in points]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(cams, [p["streams"] * p["fps_per_camera"] for p in points], ls="--", color="tab:red", label="offered")
    ax1.plot(cams, [p["analysed_fps"] for p in points], marker="o", color="tab:green", label="engine")
    if any(p.get("baseline_fps") is not None for p in points):
        base = [(p["streams"], p["baseline_fps"]) for p in points if p.get("baseline_fps") is not None]
        ax1.plot(*zip(*base, strict=True), marker="s", color="tab:gray", label="naive baseline")
    ax1.set_xlabel("cameras")
    ax1.set_ylabel("analysed frames / s")
    ax1.set_xticks(cams)
    ax1.set_title(f"{points[0]['fps_per_camera']:g} fps offered per camera" if points else "")
    ax1.legend()
    ax2.plot(cams, [p["latency_p95_s"] if p.get("latency_p95_s") is not None else float("nan") for p in points],
             marker="o", color="tab:green", label="engine")
    if any(p.get("baseline_latency_p95_s") is not None for p in points):
        base = [(p["streams"], p["baseline_latency_p95_s"]) for p in points
                if p.get("baseline_latency_p95_s") is not None]
        ax2.plot(*zip(*base, strict=True), marker="s", color="tab:gray", label="naive baseline")
    ax2.axhline(LATENCY_GOAL_S, ls="--", color="tab:red", label=f"goal {LATENCY_GOAL_S:g} s")
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("cameras")
    ax2.set_ylabel("event latency p95 (s)")
    ax2.set_xticks(cams)
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_json(path: Path | None, flat: dict[str, Any]) -> None:
    """Write the flat results (when ``--json`` was given)."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(flat, indent=2))
        print(f"wrote {path}")


def write_file_mode(args: argparse.Namespace, files: dict[str, Any]) -> int:
    """JSON of a files-only run: fps are frames per wall-second, ratio is CPU-time based."""
    e, b, n = files["engine"], files.get("baseline"), files["frames"]
    flat = {"mode": "files", "streams": args.streams, "fps_per_camera": args.fps, "seconds": args.seconds,
            "analysed_fps": round(n / e["wall_s"], 3), "baseline_fps": round(n / b["wall_s"], 3) if b else None,
            "ratio": round(b["cpu_s"] / e["cpu_s"], 3) if b else None, "ratio_basis": "cpu_time_per_frame",
            "latency_p50_s": None, "latency_p95_s": None, "dropped_frames": 0, **files_fields(files)}
    write_json(args.json, flat)
    return 0


def live_flat(engine: dict[str, Any], baseline: dict[str, Any] | None, streams: int,
              args: argparse.Namespace) -> dict[str, Any]:
    """Flat JSON fields of one live measurement."""
    ratio = engine["analysed_fps"] / max(baseline["analysed_fps"], 1e-9) if baseline else None
    models_only = engine["models_only_ms_per_frame"]
    return {
        "streams": streams, "fps_per_camera": args.fps, "seconds": args.seconds, "settle_s": args.settle,
        "baseline_model_threads": args.baseline_threads if baseline else None,
        "queue_size": args.queue_size, "freshest_when_full": not args.oldest_first,
        "analysed_fps": round(engine["analysed_fps"], 3), "detector_fps": round(engine["detector_fps"], 3),
        "baseline_fps": round(baseline["analysed_fps"], 3) if baseline else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "latency_p50_s": engine["latency_p50_s"], "latency_p95_s": engine["latency_p95_s"],
        "baseline_latency_p95_s": baseline["latency_p95_s"] if baseline else None,
        "dropped_frames": engine["dropped_frames"],
        "baseline_dropped_frames": baseline["dropped_frames"] if baseline else None,
        "batch_size_mean": round(engine["batch_size_mean"], 2),
        "cpu_cores": round(engine["cpu_cores"], 2), "rss_mb": round(engine["rss_mb"], 1),
        "baseline_cpu_cores": round(baseline["cpu_cores"], 2) if baseline else None,
        "baseline_rss_mb": round(baseline["rss_mb"], 1) if baseline else None,
        "models_only_ms_per_frame": round(models_only, 1),
        "engine_ms_per_frame": round(engine["engine_busy_ms_per_frame"], 1),
        "engine_cpu_ms_per_frame": (round(engine["engine_cpu_ms_per_frame"], 1)
                                    if engine.get("engine_cpu_ms_per_frame") is not None else None),
        "engine_over_models_only": round(engine["engine_busy_ms_per_frame"] / models_only, 3) if models_only else None,
        "models_only_basis": "wall: model stages of the engine process (live)",
        "engine_ms_basis": "wall: engine process busy (not waiting for frames) per analysed frame (live)",
        **{f"stage_{k}_ms": round(v, 2) for k, v in engine["stage_ms_per_frame"].items()},
        **{f"events_per_100_{k}": round(v, 2) for k, v in engine["events_per_100_frames"].items()},
        **({f"baseline_events_per_100_{k}": round(v, 2) for k, v in baseline["events_per_100_frames"].items()}
           if baseline else {}),
    }


def run_live(args: argparse.Namespace, streams: int, label: str = "") -> dict[str, Any]:
    """One live measurement at ``streams`` cameras: its own redis-server and test cameras, the engine phase,
    then the baseline phase unless ``--no-baseline``. Returns ``{"streams", "fps", ..., "engine", "baseline"}``."""
    from pipeline.testcams import TestCameraServer

    work = Path(tempfile.mkdtemp(prefix="cctv-throughput-"))
    os.environ["CCTV_RECORDINGS_DIR"] = str(work / "rec")
    redis_proc, redis_url = start_redis(work)
    os.environ["CCTV_REDIS_URL"] = redis_url  # the engine process reads it from its settings
    aliases = {f"cam{i + 1:02d}": VIDEOS[i % len(VIDEOS)][0] for i in range(streams)}
    result: dict[str, Any] = {"streams": streams, "fps": args.fps, "seconds": args.seconds, "width": args.width}
    phases = 1 if args.no_baseline else 2
    try:
        with TestCameraServer(get_settings().videos_dir, port=free_port(), names=[], aliases=aliases) as cams:
            urls = {name: cams.url(name) for name in aliases}
            print(f"{label}phase 1/{phases}: engine ({streams} cameras -> capture worker -> frame bus -> "
                  f"1 engine process)", flush=True)
            result["engine"] = run_engine_phase(urls, args, redis_url, work)
            if not args.no_baseline:
                print(f"{label}phase 2/2: naive baseline ({streams} processes, batch-1 calls, no gating)", flush=True)
                result["baseline"] = run_baseline_phase(urls, args, redis_url, work)
    finally:
        redis_proc.kill()
        redis_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    engine, baseline = result["engine"], result.get("baseline")
    result["ratio"] = engine["analysed_fps"] / max(baseline["analysed_fps"], 1e-9) if baseline else None
    return result


def parse_sweep(text: str) -> list[int]:
    """``"4,8,12"`` -> ``[4, 8, 12]`` (positive, in the given order, duplicates dropped)."""
    counts: list[int] = []
    for part in text.split(","):
        if not part.strip():
            continue
        n = int(part)
        if n < 1:
            raise ValueError(f"camera counts must be positive, not {n}")
        if n not in counts:
            counts.append(n)
    if not counts:
        raise ValueError("no camera counts given")
    return counts


def sweep_result(points: list[dict[str, Any]], args: argparse.Namespace, wall_s: float) -> dict[str, Any]:
    """The JSON of a sweep: one flat result per camera count under ``sweep``, the counts and the time it took."""
    return {"mode": "sweep", "fps_per_camera": args.fps, "seconds": args.seconds,
            "streams_sweep": [p["streams"] for p in points], "sweep_wall_s": round(wall_s, 1), "sweep": points}


def print_sweep(points: list[dict[str, Any]]) -> None:
    """One line per camera count."""
    print(f"\n{'cameras':>8s}{'offered/s':>11s}{'analysed/s':>12s}{'p50 (s)':>9s}{'p95 (s)':>9s}{'dropped':>9s}"
          f"{'models ms':>11s}{'engine ms':>11s}{'baseline/s':>12s}")
    for p in points:
        base = f"{p['baseline_fps']:.2f}" if p.get("baseline_fps") is not None else "-"
        print(f"{p['streams']:>8d}{p['streams'] * p['fps_per_camera']:>11.1f}{p['analysed_fps']:>12.2f}"
              f"{p['latency_p50_s']:>9.2f}{p['latency_p95_s']:>9.2f}{p['dropped_frames']:>9.0f}"
              f"{p['models_only_ms_per_frame']:>11.1f}{p['engine_ms_per_frame']:>11.1f}{base:>12s}")


def main(argv: list[str] | None = None) -> int:
    """Run the requested measurements and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=8, help="number of RTSP cameras")
    parser.add_argument("--streams-sweep", type=str, default=None, metavar="N,N,...",
                        help="live measurement at each of these camera counts, one after another (e.g. 4,8,12,16,24); "
                             "the plot shows analysed fps and event latency p95 against the number of cameras")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per phase (video seconds per "
                                                                    "camera in --mode files)")
    parser.add_argument("--fps", type=float, default=1.0, help="analysis fps per camera")
    parser.add_argument("--width", type=int, default=960, help="analysis frame width (ingest.max_width)")
    parser.add_argument("--baseline-threads", type=int, default=0,
                        help="CPU threads each model of each baseline process may use (default 0: every core, as "
                             "an integrator who sets nothing gets; 1 keeps N processes from oversubscribing the "
                             "cores)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="live mode: seconds to wait after every camera has sent its first frame (and every "
                             "engine analysed one) before measuring, in both phases (default 10; 0 measures the "
                             "start-up too)")
    parser.add_argument("--queue-size", type=int, default=2,
                        help="frames queued per camera before the oldest is dropped (ingest.queue_size)")
    parser.add_argument("--oldest-first", action="store_true",
                        help="ingest.freshest_when_full off in both live phases: a camera's oldest waiting frame is "
                             "taken even when the engine has fallen a whole queue behind it")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline phase (both modes)")
    parser.add_argument("--no-reference", action="store_true",
                        help="--mode files: skip the reference run (every frame, every model) and the answer check")
    parser.add_argument("--precision", choices=("auto", "int8", "fp32", "int8-static"), default="auto",
                        help="engine.model_precision for both phases (auto: the plate detector int8-static, the "
                             "vehicle detector fp32, on ONNX Runtime on the CPU)")
    parser.add_argument("--mode", choices=("live", "files", "both"), default="live",
                        help="live: RTSP + ingest + engine process + Redis (default); files: the same decoded frames "
                             "through engine, reference and baseline in this process, compared by CPU time per "
                             "frame and by their answers")
    add_engine_set(parser, "an engine setting of the measured engine (not the reference or the baseline), e.g. "
                           "plate_search=all_windows; repeatable")
    parser.add_argument("--keep-every", type=int, default=1, metavar="N",
                        help="--mode files: analyse only every Nth decoded frame of each camera (its configured "
                             "analysis fps stays --fps): an engine that keeps up with a share of each camera's frames, "
                             "as at saturation, on frames that are the same for every run")
    parser.add_argument("--barrier", type=Path, default=None, metavar="DIR",
                        help="--mode files: once loaded and warm, wait in DIR for --barrier-count processes before "
                             "the measured run (parallel engines, benchmarks.gpu)")
    parser.add_argument("--barrier-count", type=int, default=1, metavar="N", help="processes meeting at --barrier")
    parser.add_argument("--json", type=Path, help="write the flat results here")
    parser.add_argument("--plot", type=Path, help="PNG plot (default: next to --json)")
    args = parser.parse_args(argv)
    args.engine_set = engine_settings(parser, args.engine_set)
    if args.streams < 1 or args.seconds <= 0 or args.fps <= 0:
        parser.error("--streams, --seconds and --fps must be positive")
    if args.baseline_threads < 0:
        parser.error(f"--baseline-threads must be 0 or more, not {args.baseline_threads}")
    if args.settle < 0:
        parser.error(f"--settle must be 0 or more, not {args.settle}")
    if args.keep_every < 1:
        parser.error(f"--keep-every must be 1 or more, not {args.keep_every}")
    if args.barrier_count < 1:
        parser.error(f"--barrier-count must be 1 or more, not {args.barrier_count}")
    if args.barrier and args.mode != "files":
        parser.error("--barrier meets parallel file-mode engines (--mode files)")
    sweep = None
    if args.streams_sweep:
        try:
            sweep = parse_sweep(args.streams_sweep)
        except ValueError as exc:
            parser.error(f"--streams-sweep: {exc}")
        if args.mode != "live":
            parser.error("--streams-sweep runs live measurements (--mode live)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    files = run_file_mode(args) if args.mode in ("files", "both") else None
    if files is not None:
        print_file_mode(files)
    if args.mode == "files":
        return write_file_mode(args, files)
    print("preparing models (derives the batch-capable files once, so that no phase pays for it)", flush=True)
    from pipeline.models.registry import load_model_set

    prep = Path(tempfile.mkdtemp(prefix="cctv-throughput-prep-"))
    try:
        load_model_set(make_config({"cam": "rtsp://127.0.0.1/x"}, 1.0, args.width, prep, naive=False,
                                   precision=args.precision).engine)
    finally:
        shutil.rmtree(prep, ignore_errors=True)
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json else None)
    if sweep is not None:
        start, points = time.monotonic(), []
        per_count = (1 if args.no_baseline else 2) * args.seconds
        print(f"sweep over {sweep} cameras at {args.fps:g} fps: {len(sweep)} measurements one after another, "
              f"{per_count:g} s measured each plus warm-up and shutdown (about a minute or more each)", flush=True)
        for k, streams in enumerate(sweep):
            elapsed = time.monotonic() - start
            print(f"sweep {k + 1}/{len(sweep)}: {streams} cameras ({elapsed:.0f} s since the sweep started)",
                  flush=True)
            result = run_live(args, streams, label=f"[{streams} cams] ")
            print_table(result["engine"], result.get("baseline"), args, streams)
            points.append(live_flat(result["engine"], result.get("baseline"), streams, args))
        wall = time.monotonic() - start
        print_sweep(points)
        print(f"sweep took {wall:.0f} s")
        write_json(args.json, sweep_result(points, args, wall))
        if plot_path:
            plot_sweep(points, plot_path)
            print(f"wrote {plot_path}")
        return 0
    result = run_live(args, args.streams)
    engine, baseline = result["engine"], result.get("baseline")
    print_table(engine, baseline, args)
    flat = {**(files_fields(files) if files else {}), **live_flat(engine, baseline, args.streams, args)}
    write_json(args.json, flat)
    if plot_path:
        plot(result, plot_path)
        print(f"wrote {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
