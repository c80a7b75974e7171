"""The engine process: owns the accelerator, serves every camera from the frame bus, publishes to Redis.

The service supervisor (:mod:`pipeline.service`) starts :func:`run_engine` in a child process (spawn context) with
the shared :class:`~pipeline.ingest.framebus.FrameBus` and a stop event.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from pipeline.config import Config
from pipeline.engine.batcher import DynamicBatcher
from pipeline.engine.engine import Engine
from pipeline.engine.metrics import EngineMetrics
from pipeline.engine.publisher import SpooledPublisher
from pipeline.engine.snapshots import cleanup_snapshots
from pipeline.engine.spool import EventSpool
from pipeline.engine.watchmatch import WatchlistMatcher
from pipeline.models.onnx_utils import small_model_runtime
from pipeline.settings import PROJECT_ROOT, get_settings
from pipeline.store import holds
from pipeline.store.connection import redis_client as make_client
from pipeline.store.connection import wait_replicas

logger = logging.getLogger(__name__)

CLEANUP_INTERVAL_S = 3600.0
IDLE_TIMEOUT_S = 0.25


def load_plate_reader_or_none(backend: str, model_dir: Path | None = None, device: str = "auto",
                              runtime: str = "auto") -> Any | None:
    """Load the plate reader on ``engine.runtime`` ``runtime`` (:func:`small_model_runtime`: torch on the GPU path,
    else ONNX Runtime); None (logged once, clearly) when its model file or module is missing."""
    try:
        from pipeline.plates.reader import load_plate_reader
    except ImportError as exc:
        logger.error("plate reader module unavailable (%s): plate events will carry no text", exc)
        return None
    try:
        return load_plate_reader(backend, model_dir=model_dir, device=device,
                                 runtime=small_model_runtime(runtime, "plate_reader", device))
    except (FileNotFoundError, OSError) as exc:
        logger.error("plate reader model missing (%s): plate events will carry no text until it is installed", exc)
        return None


def load_plate_rectifier_or_none(device: str = "auto", runtime: str = "auto") -> Any | None:
    """Load the plate rectifier on ``engine.runtime`` ``runtime`` (:func:`small_model_runtime`); None (logged once,
    clearly) when its model file is missing."""
    from pipeline.plates.rectifier import load_plate_rectifier

    try:
        return load_plate_rectifier(device=device, runtime=small_model_runtime(runtime, "plate_rectifier", device))
    except (FileNotFoundError, OSError) as exc:
        logger.error("plate rectifier model missing (%s): plates are read as the detector cuts them", exc)
        return None


def redis_client(url: str) -> Any:
    """A redis-py client with short timeouts so that a dead Redis never stalls the engine."""
    return make_client(url, socket_timeout=2.0, socket_connect_timeout=0.5, health_check_interval=10)


def spool_folder(config: Config) -> Path:
    """The spool folder of ``engine.spool_dir`` (relative paths are under the project root)."""
    folder = Path(config.engine.spool_dir)
    return folder if folder.is_absolute() else PROJECT_ROOT / folder


def build_engine(
    config: Config,
    redis_url: str | None = None,
    recordings_dir: Path | None = None,
    spool_dir: Path | None = None,
    models: Any = None,
    plate_reader: Any = "load",
    engine_id: str | None = None,
    live: bool = True,
    plate_rectifier: Any = "load",
) -> tuple[Engine, SpooledPublisher, Any]:
    """Wire an :class:`Engine` to models, Redis (through the spool) and the watchlists; return (engine, publisher, client)."""
    from pipeline.store import EventStore, WatchlistStore

    settings = get_settings()
    device = config.engine.device
    if models is None:
        from pipeline.models.registry import load_model_set

        models = load_model_set(config.engine, device=device)
    if isinstance(plate_reader, str) and plate_reader == "load":
        plate_reader = load_plate_reader_or_none(config.engine.plate_reader, device=device,
                                                 runtime=config.engine.runtime)
    if isinstance(plate_rectifier, str) and plate_rectifier == "load":
        plate_rectifier = (load_plate_rectifier_or_none(device, config.engine.runtime)
                           if config.engine.plate_rectification else None)
    client = redis_client(redis_url or settings.redis_url)
    store = EventStore(client, config.engine.events_maxlen, wait_replicas=wait_replicas(settings),
                       wait_timeout_ms=settings.redis_wait_timeout_ms)
    spool = EventSpool(spool_dir or spool_folder(config), int(config.engine.spool_max_mb * 1024 * 1024))
    metrics = EngineMetrics(engine_id or f"{socket.gethostname()}-{os.getpid()}")
    publisher = SpooledPublisher(store, spool)
    matcher = WatchlistMatcher(WatchlistStore(client), alert_cooldown_s=config.engine.watchlist_alert_cooldown_s)
    engine = Engine(config, models, plate_reader, publisher=publisher, matcher=matcher,
                    recordings_dir=recordings_dir or settings.recordings_dir, metrics=metrics, live=live,
                    plate_rectifier=plate_rectifier)
    publisher.on_delivered = engine.on_delivered
    return engine, publisher, client


def run_engine(config: Config, frame_bus: Any, stop_event: Any) -> None:
    """Serve every camera of ``config`` from ``frame_bus`` until ``stop_event`` is set (the engine process)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine, publisher, client = build_engine(config)
    run_loop(engine, publisher, client, config, frame_bus, stop_event)


def run_loop(engine: Engine, publisher: SpooledPublisher, client: Any, config: Config, frame_bus: Any,
             stop_event: Any) -> None:
    """The engine's main loop (separate from model loading so tests and benchmarks can reuse it)."""
    ec = config.engine
    metrics = engine.metrics
    metrics.serve_prometheus(ec.metrics_port)
    reclaimed = frame_bus.reclaim_held() if hasattr(frame_bus, "reclaim_held") else 0
    if reclaimed:  # a previous engine was killed holding them: its frames are lost, the slots must not be
        logger.warning("engine: %d frame-bus slots held by a previous engine freed", reclaimed)
    batcher = DynamicBatcher(frame_bus.get_batch, ec.max_batch_size, ec.max_wait_ms / 1000.0)
    camera_ids = [cam.id for cam in config.cameras if cam.enabled]
    next_metrics = next_cleanup = 0.0
    logger.info("engine %s serving %d cameras (batch <= %d, wait <= %.0f ms)", metrics.engine_id, len(camera_ids),
                ec.max_batch_size, ec.max_wait_ms)
    parent = os.getppid()
    try:
        while not stop_event.is_set():
            if os.getppid() != parent:
                logger.error("engine: the supervisor (pid %d) is gone; stopping", parent)
                break
            start = time.perf_counter()
            batch = batcher.next_batch(IDLE_TIMEOUT_S)
            metrics.observe_stage("decode_wait", time.perf_counter() - start)
            try:
                engine.process_batch(batch)
            except Exception:
                logger.exception("batch of %d frames failed; continuing with the next one", len(batch))
                metrics.count("batch_errors")
            finally:
                for item in batch:
                    frame_bus.release(item)
            _guarded(metrics, "tick_errors", engine.tick, lambda camera_id: _queued(frame_bus, camera_id) > 0)
            _guarded(metrics, "flush_errors", publisher.flush)
            now = time.monotonic()
            if now >= next_metrics:
                next_metrics = now + ec.metrics_interval_s
                _export_metrics(engine, publisher, client, frame_bus, camera_ids)
            if now >= next_cleanup:
                next_cleanup = now + CLEANUP_INTERVAL_S
                try:
                    held = holds.held(client)
                except redis.RedisError as exc:  # without the hold list nothing may go
                    logger.warning("snapshot retention skipped: legal holds unreadable (%s)", exc)
                else:
                    cleanup_snapshots(engine.snapshots.recordings_dir, ec.snapshot_retention_days, held=held)
    finally:
        try:
            engine.finish()
        finally:  # held and spooled records go out (or stay spooled) even when finishing the engine failed
            publisher.flush(force=True)
        _export_metrics(engine, publisher, client, frame_bus, camera_ids)
        metrics.stop_prometheus()
        if publisher.pending:
            logger.warning("engine stopping with %d events still spooled in %s; they are delivered on next start",
                           publisher.pending, publisher.spool.folder)
        logger.info("engine %s stopped", metrics.engine_id)


def _guarded(metrics: EngineMetrics, counter: str, step: Callable[..., Any], *args: Any) -> None:
    """Run one housekeeping step of the loop; a failure is logged and counted, never ends the engine."""
    try:
        step(*args)
    except Exception:
        logger.exception("engine: %s failed; continuing", getattr(step, "__name__", step))
        metrics.count(counter)


def _queued(frame_bus: Any, camera_id: str) -> int:
    try:
        return int(frame_bus.depth(camera_id))
    except (KeyError, ValueError):
        return 0


def _export_metrics(engine: Engine, publisher: SpooledPublisher, client: Any, frame_bus: Any,
                    camera_ids: list[str]) -> None:
    metrics = engine.metrics
    depth, dropped = {}, {}
    for camera_id in camera_ids:
        try:
            depth[camera_id] = int(frame_bus.depth(camera_id))
            dropped[camera_id] = int(frame_bus.dropped(camera_id))
        except (KeyError, ValueError):
            continue
    metrics.set_queues(depth, dropped)
    metrics.set_gauge("spool_pending", publisher.pending)
    metrics.set_gauge("spool_dropped", publisher.spool.dropped)
    metrics.set_gauge("spool_corrupt", publisher.spool.corrupt)
    metrics.set_gauge("spool_invalid", publisher.invalid_skipped)
    metrics.set_gauge("redis_ok", 1.0 if publisher.redis_ok else 0.0)
    metrics.export_redis(client)
