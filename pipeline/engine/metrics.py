"""Engine metrics: per-stage timings, batch sizes, queue depths, drops, events and spool state.

Kept in memory (totals plus a sliding window of recent samples) and exported two ways:

- a Redis hash ``metrics:engine:<engine_id>`` refreshed every ~2 s (flat string fields, expires if not refreshed);
- a Prometheus endpoint (``prometheus_client.start_http_server`` bound to 127.0.0.1), own registry per engine.
  Once the engine has a Redis client (its first :meth:`EngineMetrics.export_redis`) the endpoint also shows every
  camera's health, read from Redis at each scrape (:class:`CameraHealthCollector`): ``cctv_camera_up{camera}``
  (1 online in a fresh report, else 0) and ``cctv_camera_last_frame_age_seconds{camera}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.ingest.health import camera_state, read_camera_health, recording_state

logger = logging.getLogger(__name__)

STAGES = ("decode_wait", "gate", "detect", "plate_detect", "read", "face", "track", "publish")
WINDOW = 512
METRICS_KEY_PREFIX = "metrics:engine:"


def metrics_key(engine_id: str) -> str:
    """Redis hash holding the metrics of one engine."""
    return f"{METRICS_KEY_PREFIX}{engine_id}"


class EngineMetrics:
    """Thread-safe counters and timings of one engine."""

    def __init__(self, engine_id: str = "engine-0") -> None:
        self.engine_id = engine_id
        self.started = time.time()
        self._lock = threading.Lock()
        self.stage_total_s: dict[str, float] = defaultdict(float)
        self.stage_calls: dict[str, int] = defaultdict(int)
        self.stage_recent: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.batch_sizes: deque[int] = deque(maxlen=WINDOW)
        self.event_latency_s: deque[float] = deque(maxlen=4096)
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, float] = {}
        self.queue_depth: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.registry = CollectorRegistry()
        self._prom_stage = Histogram(
            "cctv_engine_stage_seconds", "Time spent per engine stage and batch", ["stage"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self._prom_batch = Histogram(
            "cctv_engine_batch_size", "Frames per batch", registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self._prom_latency = Histogram(
            "cctv_engine_event_latency_seconds", "Frame capture to event stored in Redis", registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self._prom_counter = Counter("cctv_engine_total", "Engine counters", ["what"], registry=self.registry)
        self._prom_depth = Gauge("cctv_engine_queue_depth", "Frames queued per camera", ["camera"], registry=self.registry)
        self._prom_dropped = Gauge("cctv_engine_dropped_frames", "Frames dropped per camera", ["camera"],
                                   registry=self.registry)
        self._prom_gauge = Gauge("cctv_engine_gauge", "Engine gauges", ["what"], registry=self.registry)
        self._server: Any = None
        self._camera_health: CameraHealthCollector | None = None

    # -- recording --------------------------------------------------------------------------------------------

    @contextmanager
    def stage(self, name: str) -> Any:
        """Time a block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_stage(name, time.perf_counter() - start)

    def observe_stage(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name``."""
        with self._lock:
            self.stage_total_s[name] += seconds
            self.stage_calls[name] += 1
            self.stage_recent[name].append(seconds)
        self._prom_stage.labels(name).observe(seconds)

    def observe_batch(self, size: int) -> None:
        """Record the size of a processed batch."""
        with self._lock:
            self.batch_sizes.append(size)
            self.counters["batches"] += 1
            self.counters["frames"] += size
        self._prom_batch.observe(size)
        self._prom_counter.labels("frames").inc(size)

    def observe_latency(self, seconds: float) -> None:
        """Record the delay from frame capture to the event being stored."""
        with self._lock:
            self.event_latency_s.append(seconds)
        self._prom_latency.observe(max(seconds, 0.0))

    def count(self, what: str, n: int = 1) -> None:
        """Increase counter ``what`` by ``n``."""
        if n <= 0:
            return
        with self._lock:
            self.counters[what] += n
        self._prom_counter.labels(what).inc(n)

    def set_gauge(self, what: str, value: float) -> None:
        """Set gauge ``what``."""
        with self._lock:
            self.gauges[what] = float(value)
        self._prom_gauge.labels(what).set(value)

    def set_queues(self, depth: dict[str, int], dropped: dict[str, int]) -> None:
        """Record per-camera queue depths and drop counts (from the frame bus)."""
        with self._lock:
            self.queue_depth = dict(depth)
            self.dropped = dict(dropped)
        for cam, value in depth.items():
            self._prom_depth.labels(cam).set(value)
        for cam, value in dropped.items():
            self._prom_dropped.labels(cam).set(value)

    # -- export -----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, float | int | str]:
        """Flat summary: totals, per-stage mean/p95 ms over the recent window, batch sizes, latency, queues."""
        with self._lock:
            out: dict[str, float | int | str] = {
                "engine_id": self.engine_id,
                "updated_at": round(time.time(), 3),
                "uptime_s": round(time.time() - self.started, 1),
            }
            for name in sorted(set(STAGES) | set(self.stage_total_s)):
                recent = list(self.stage_recent.get(name, ()))
                out[f"stage_{name}_total_s"] = round(self.stage_total_s.get(name, 0.0), 4)
                out[f"stage_{name}_calls"] = self.stage_calls.get(name, 0)
                out[f"stage_{name}_mean_ms"] = round(1000 * float(np.mean(recent)), 2) if recent else 0.0
                out[f"stage_{name}_p95_ms"] = round(1000 * float(np.percentile(recent, 95)), 2) if recent else 0.0
            sizes = list(self.batch_sizes)
            out["batch_size_mean"] = round(float(np.mean(sizes)), 2) if sizes else 0.0
            out["batch_size_max"] = max(sizes) if sizes else 0
            lat = list(self.event_latency_s)
            out["event_latency_p50_s"] = round(float(np.percentile(lat, 50)), 3) if lat else 0.0
            out["event_latency_p95_s"] = round(float(np.percentile(lat, 95)), 3) if lat else 0.0
            out["event_latency_count"] = len(lat)
            for key, value in self.counters.items():
                out[f"count_{key}"] = value
            for key, value in self.gauges.items():
                out[f"gauge_{key}"] = value
            for cam, value in self.queue_depth.items():
                out[f"queue_depth:{cam}"] = value
            for cam, value in self.dropped.items():
                out[f"dropped:{cam}"] = value
            out["dropped_frames"] = sum(self.dropped.values())
        return out

    def latencies(self) -> list[float]:
        """Recent capture-to-event latencies in seconds."""
        with self._lock:
            return list(self.event_latency_s)

    def watch_cameras(self, client: Any) -> None:
        """Show the cameras' health (read from Redis through ``client`` at each scrape) on the endpoint; once."""
        if self._camera_health is None:
            self._camera_health = CameraHealthCollector(client)
            self.registry.register(self._camera_health)

    def export_redis(self, client: Any, ttl_s: int = 300) -> bool:
        """Write :meth:`snapshot` to ``metrics:engine:<id>``; False (logged at debug) if Redis is unreachable.

        The first call also registers the camera health of the Prometheus endpoint (:meth:`watch_cameras`).
        """
        self.watch_cameras(client)
        data = {k: str(v) for k, v in self.snapshot().items()}
        key = metrics_key(self.engine_id)
        try:
            pipe = client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=data)
            pipe.expire(key, ttl_s)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - metrics must never stop the engine
            logger.debug("metrics not written to Redis: %s", exc)
            return False
        return True

    def serve_prometheus(self, port: int, addr: str = "127.0.0.1") -> bool:
        """Start the Prometheus endpoint on ``addr:port``; False (logged) if the port is taken."""
        if port <= 0 or self._server is not None:
            return False
        try:
            self._server = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            logger.error("Prometheus endpoint not started on %s:%d: %s", addr, port, exc)
            return False
        logger.info("Prometheus metrics on http://%s:%d/metrics", addr, port)
        return True

    def stop_prometheus(self) -> None:
        """Stop the Prometheus endpoint if it runs."""
        server = self._server
        self._server = None
        if server is None:
            return
        if isinstance(server, tuple):
            server[0].shutdown()
            server[0].server_close()


class CameraHealthCollector(Collector):
    """Per-camera up (0/1), recording (0/1) and seconds since the last analysed frame, read from the health hashes
    at each scrape.

    Up is 1 when :func:`pipeline.ingest.health.camera_state` says ``online`` (a fresh report saying ``online``, or
    a camera whose last frame is younger than its reconnect grace), the same rule as ``GET /api/health``. Recording
    is :func:`pipeline.ingest.health.recording_state`, the rule of the health route's ``recording_failed``: 1
    recording, 0 failed (segments cannot be written: a full disk), absent when recording is disabled or unknown
    (stale report). The frame age is absent for a camera that never delivered a frame. Nothing is exported while
    Redis is unreachable (logged at debug).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The three gauge families, one sample per camera that reported health (recording: per recorded one)."""
        try:
            records = read_camera_health(self.client)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail on Redis
            logger.debug("camera health not read for Prometheus: %s", exc)
            return []
        up = GaugeMetricFamily("cctv_camera_up", "1 when the camera is online in a fresh health report, else 0",
                               labels=["camera"])
        recording = GaugeMetricFamily("cctv_camera_recording",
                                      "1 while the camera's recording works, 0 while it fails (a full disk); absent "
                                      "when recording is disabled", labels=["camera"])
        age = GaugeMetricFamily("cctv_camera_last_frame_age_seconds",
                                "Seconds since the camera's last analysed frame", labels=["camera"])
        now = time.time()
        for record in records:
            camera = str(record["camera_id"])
            up.add_metric([camera], 1.0 if camera_state(record, now) == "online" else 0.0)
            state = recording_state(record)
            if state in ("recording", "failed"):
                recording.add_metric([camera], 1.0 if state == "recording" else 0.0)
            if record.get("last_frame_time"):
                age.add_metric([camera], max(0.0, now - float(record["last_frame_time"])))
        return [up, recording, age]

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """Nothing up front: describing would read Redis at registration."""
        return []


def percentile(values: Iterable[float], q: float) -> float:
    """Percentile ``q`` (0-100) of ``values``; 0 when empty."""
    data = list(values)
    return float(np.percentile(data, q)) if data else 0.0
