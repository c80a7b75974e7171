"""The supervisor: one parent process that starts, restarts and stops every child of the service.

Children (all started from the ``spawn`` context, see :data:`pipeline.ingest.framebus.MP_CONTEXT`):

- ``capture-N``: capture workers (:mod:`pipeline.ingest.worker`), ``ingest.cameras_per_worker`` cameras each;
  they decode for analysis AND record (one ffmpeg per camera stream), so recorders live inside them;
- ``retention``: recording retention every minute (:mod:`pipeline.recording.retention`);
- ``engine``: the analytics engine, ``pipeline.engine.process.run_engine(config, frame_bus, stop_event)``;
- ``api``: the control-room API, ``api.main:create_app`` served by uvicorn.

The supervisor creates the :class:`~pipeline.ingest.framebus.FrameBus` before starting children and owns ONE stop
event shared by all of them. SIGINT/SIGTERM set it; children finish their work (ffmpeg closes its current
segment) and exit; stragglers are killed after a grace period. A child that dies is restarted with capped
exponential backoff (1 s doubling to 30 s; the count resets after a minute of good running).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pipeline.config import Camera, Config
from pipeline.ingest.capture import backoff_delay
from pipeline.ingest.framebus import MP_CONTEXT, FrameBus, StopFlag
from pipeline.ingest.worker import camera_is_analysed, run_capture_worker
from pipeline.recording.retention import run_retention_loop
from pipeline.secrets import install_log_redaction, url_secrets
from pipeline.settings import get_settings
from pipeline.store.connection import redis_client

logger = logging.getLogger(__name__)

STOP_GRACE_S = 20.0
HEALTHY_AFTER_S = 60.0


@dataclass
class ChildSpec:
    """A supervised child process: how to start it and its restart bookkeeping."""

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    graceful_signal: int | None = None  # sent at stop (uvicorn wants SIGTERM); others use the stop event
    process: Any = None
    started_at: float = 0.0
    failures: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        """Start (or restart) the child."""
        self.process = MP_CONTEXT.Process(target=self.target, args=self.args, name=self.name)
        self.process.start()
        self.started_at = time.monotonic()
        logger.info("started %s (pid %s)", self.name, self.process.pid)


def partition(cameras: list[Camera], per_worker: int) -> list[list[Camera]]:
    """Split cameras into groups of at most ``per_worker``."""
    return [cameras[i : i + per_worker] for i in range(0, len(cameras), per_worker)]


def _engine_child(config: Config, frame_bus: Any, stop_event: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from pipeline.engine.process import run_engine

    run_engine(config, frame_bus, stop_event)


# uvicorn options of the API wherever it is served (here, the browser tests): no WebSocket permessage-deflate,
# which uvicorn enables by default and browsers offer: the WebSockets carry H.264 (live video), which deflate
# cannot shrink, at a CPU cost per message and per viewer in the API process (benchmarks.video)
API_SERVER_OPTIONS: dict[str, Any] = {"ws_per_message_deflate": False}


def proxy_options(forwarded_allow_ips: str) -> dict[str, Any]:
    """uvicorn's proxy options: ``X-Forwarded-*`` believed only from the proxies named in
    ``CCTV_FORWARDED_ALLOW_IPS``; none by default (uvicorn's own default believes 127.0.0.1, so anything on the
    API's host could choose the client address that the login limits and the audit trail see)."""
    ips = ",".join(part.strip() for part in forwarded_allow_ips.split(",") if part.strip())
    return {"proxy_headers": True, "forwarded_allow_ips": ips} if ips else {"proxy_headers": False}


def _api_child(host: str, port: int, log_level: int, redis_url: str | None = None,
               config_path: str | None = None, config_source: str | None = None) -> None:
    import uvicorn

    if redis_url:  # the API's own ACL user (CCTV_API_REDIS_URL); api.settings reads CCTV_REDIS_URL
        os.environ["CCTV_REDIS_URL"] = redis_url
    if config_path:  # the cameras.yaml the workers run (``pipeline run --config``); api.settings reads it here
        os.environ["CCTV_CONFIG_PATH"] = config_path
    before = os.environ.get("CCTV_CAMERA_CONFIG_SOURCE")
    if config_source:  # "file": the workers of ``--role all`` never follow pushes, so neither does their API
        os.environ["CCTV_CAMERA_CONFIG_SOURCE"] = config_source
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    try:
        uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_level="info",
                    **API_SERVER_OPTIONS, **proxy_options(get_settings().forwarded_allow_ips))
    finally:  # as it was (a caller in this process, e.g. a test, keeps its own environment)
        if before is None:
            os.environ.pop("CCTV_CAMERA_CONFIG_SOURCE", None)
        else:
            os.environ["CCTV_CAMERA_CONFIG_SOURCE"] = before


@dataclass
class SingleHostMark:
    """Keeps :data:`~pipeline.cluster.configstore.SINGLE_HOST_KEY` set while a ``--role all`` supervisor runs, API
    or not (``--no-api``), so that ``cluster push-config`` warns that this service ignores pushes: refreshed every
    ``SINGLE_HOST_REFRESH_S`` with a ``SINGLE_HOST_TTL_S`` lifetime, like the API's own mark. Redis errors are logged
    and retried at the next refresh (the service never stops for them)."""

    client: Any
    where: str
    next_at: float = 0.0

    def refresh(self, now: float | None = None) -> bool:
        """Write the mark when its refresh is due; True if it was written now."""
        from pipeline.cluster.configstore import SINGLE_HOST_REFRESH_S, SINGLE_HOST_TTL_S, mark_single_host

        now = time.monotonic() if now is None else now
        if now < self.next_at:
            return False
        self.next_at = now + SINGLE_HOST_REFRESH_S
        try:
            mark_single_host(self.client, self.where, SINGLE_HOST_TTL_S)
        except (redis.RedisError, OSError) as exc:
            logger.debug("single-host mark not written: %s", exc)
            return False
        return True


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_children(config: Config, bus: FrameBus | None, stop_event: Any, api_host: str, api_port: int,
                   with_api: bool, config_path: Path | None = None) -> list[ChildSpec]:  # fmt: skip
    """The child processes for this configuration (``config_path``: the file it was read from, which the API
    serves too)."""
    settings = get_settings()
    level = logging.getLogger().level
    cameras = [cam for cam in config.cameras if cam.enabled]
    children = [
        ChildSpec(f"capture-{i}", run_capture_worker,
                  (group, config.ingest, bus, stop_event, settings.redis_url, str(settings.recordings_dir), level))
        for i, group in enumerate(partition(cameras, config.ingest.cameras_per_worker))
    ]  # fmt: skip
    children.append(ChildSpec("retention", run_retention_loop,
                              (config, settings.redis_url, str(settings.recordings_dir), stop_event)))  # fmt: skip
    if settings.internal_token:  # other hosts (API, exports, playback) read this host's segments through it
        from pipeline.recording.serve import run_segment_server

        children.append(ChildSpec("segments", run_segment_server, (stop_event,)))
    if bus is not None:
        if _module_available("pipeline.engine.process"):
            children.append(ChildSpec("engine", _engine_child, (config, bus, stop_event)))
        else:
            logger.warning("analytics engine not available (pipeline.engine.process not found): ingest and recording only")
    if with_api:
        if _module_available("api.main"):
            where = str(Path(config_path).resolve()) if config_path is not None else None
            children.append(ChildSpec("api", _api_child, (api_host, api_port, level, settings.api_redis_url, where,
                                                          "file"),
                                      graceful_signal=signal.SIGTERM))
        else:
            logger.warning("API not available (api.main not found): running without it")
    return children


def run_service(config: Config, api_host: str = "127.0.0.1", api_port: int = 8000, with_api: bool = True,
                config_path: Path | None = None) -> int:
    """Run the whole service until SIGINT/SIGTERM; return the process exit code. ``config_path``: the file
    ``config`` was read from (the API lists that file's cameras).

    Raises :class:`~pipeline.store.durability.VolatileRedisError` before starting anything when Redis keeps
    nothing on disk (unless ``CCTV_REDIS_ALLOW_VOLATILE`` is set).
    """
    for url in config.stream_urls():
        url_secrets(url)  # registered: redacted from every log line of the supervisor
    install_log_redaction()
    check_model_device(config)
    check_redis_durable()
    stop_event = StopFlag()
    analysed = [cam.id for cam in config.cameras if cam.enabled and camera_is_analysed(cam)]
    bus = FrameBus(analysed, **config.ingest.bus_options()) if analysed else None
    children = build_children(config, bus, stop_event, api_host, api_port, with_api, config_path)

    requested: list[int] = []

    def request_stop(signum: int, _frame: Any) -> None:
        # only a plain append here: setting the multiprocessing Event inside a signal handler can deadlock
        # against the main thread holding the Event's lock
        requested.append(signum)

    _mark_disabled_cameras(config)
    mark_client = redis_client(get_settings().redis_url, socket_connect_timeout=2, socket_timeout=2)
    from pipeline.cluster.configstore import single_host_where

    mark = SingleHostMark(mark_client, single_host_where(config_path))
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    logger.info("service starting: %d cameras, children: %s", len(config.cameras), ", ".join(c.name for c in children))
    try:
        while not requested:
            mark.refresh()
            _supervise(children)
            time.sleep(0.5)
        logger.info("received %s: stopping every child", signal.Signals(requested[0]).name)
    finally:
        _stop_all(children, stop_event)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        mark_client.close()
        if bus is not None:
            bus.close()
            bus.unlink()
    logger.info("service stopped")
    return 0


class ModelDeviceError(RuntimeError):
    """``engine.device`` asks for a GPU that no installed runtime reaches on this machine."""


def check_model_device(config: Config) -> None:
    """Refuse to start when an analysed camera's models cannot run on ``engine.device`` here (a GPU asked for where
    there is none): one clear error before any process starts, instead of an engine that fails and restarts."""
    if not any(cam.enabled and camera_is_analysed(cam) for cam in config.cameras):
        return
    from pipeline.models.onnx_utils import gpu_unavailable

    reason = gpu_unavailable(config.engine.device, config.engine.runtime)
    if reason:
        raise ModelDeviceError(reason)


def check_redis_durable() -> None:
    """Refuse to start against a Redis that keeps nothing on disk (see :mod:`pipeline.store.durability`) or that a
    killed restore left half restored (:func:`pipeline.store.backup.unfinished_restore`)."""
    from pipeline.store.durability import UnfinishedRestoreError, ensure_durable

    settings = get_settings()
    client = redis_client(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        if ensure_durable(client, settings.redis_allow_volatile, settings.redis_url) is None:
            return  # unreachable: not checked at this start (the workers spool meanwhile)
        from pipeline.store.backup import BackupError, unfinished_restore, unfinished_restore_message

        try:
            marker = unfinished_restore(client)
        except BackupError as exc:  # a damaged marker: a person must look
            raise UnfinishedRestoreError(str(exc)) from None
        if marker is not None:
            raise UnfinishedRestoreError(f"{unfinished_restore_message(marker)}; the service will not start "
                                         "against it until then")
    finally:
        client.close()


def _mark_disabled_cameras(config: Config) -> None:
    """Report ``status=disabled`` for cameras switched off in the config, so the API lists them too."""
    disabled = [cam for cam in config.cameras if not cam.enabled]
    if not disabled:
        return
    import redis

    from pipeline.ingest.health import write_camera_health
    from pipeline.secrets import redact_url

    client = redis_client(get_settings().redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        for cam in disabled:
            write_camera_health(client, cam.id, {"status": "disabled", "status_since": f"{time.time():.3f}",
                                                 "recording": "disabled", "url": redact_url(cam.analysis_url)})
    except redis.RedisError as exc:
        logger.warning("cannot write the health of disabled cameras: %s", exc)
    finally:
        client.close()


def _supervise(children: list[ChildSpec]) -> None:
    now = time.monotonic()
    for child in children:
        proc = child.process
        if proc is not None and proc.is_alive():
            if child.failures and now - child.started_at > HEALTHY_AFTER_S:
                child.failures = 0
            continue
        if proc is not None:  # it died
            child.failures += 1
            delay = backoff_delay(child.failures, 1.0, 30.0)
            logger.error("%s exited with code %s; restarting in %.0fs", child.name, proc.exitcode, delay)
            child.process = None
            child.next_start = now + delay
        if now >= child.next_start:
            child.start()


def _stop_all(children: list[ChildSpec], stop_event: Any) -> None:
    stop_event.set()
    running = [c for c in children if c.process is not None and c.process.is_alive()]
    for child in running:
        if child.graceful_signal is not None and child.process.pid:
            os.kill(child.process.pid, child.graceful_signal)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in running:
        child.process.join(max(0.1, deadline - time.monotonic()))
    for child in running:
        if child.process.is_alive():
            logger.warning("%s did not stop within %.0fs; killing it", child.name, STOP_GRACE_S)
            child.process.kill()
            child.process.join(5)
        else:
            logger.info("%s stopped (exit code %s)", child.name, child.process.exitcode)
