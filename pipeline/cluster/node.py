"""``pipeline run --role worker``: the supervisor of one worker host in a cluster of worker hosts.

It reads the configuration from Redis (pushed with ``pipeline cluster push-config`` or by an API host), registers
as a worker with its camera slots, renews its leases and heartbeat in a :class:`~pipeline.cluster.agent.LeaseKeeper`
(threads of their own: a slow pass of this loop never lets a lease lapse; a lease that could not be renewed before
its deadline has its capture stopped from the keeper's thread at once) and runs :class:`~pipeline.cluster.agent.
Agent` steps to take and release cameras (every ``renew_interval_s``, and right when a peer that stopped renewing
has run out, :attr:`~pipeline.cluster.agent.Agent.wake_at`): a camera whose lease it takes gets its own capture process (and, when analysed, a lane on the host's :class:`~pipeline.cluster.lanebus.
LaneBus`); a camera whose lease it loses is stopped at once (capture killed if it does not stop within a second);
a camera it releases for balance is stopped first and released after. The engine child (started with the first
analysed camera) publishes through :class:`~pipeline.cluster.fencing.FencedPublisher`, so events of a camera whose
lease this host lost are refused by Redis, and a vehicle in view at a hand-over stays the previous holder's event
(:class:`~pipeline.cluster.fencing.HandoverMerger`). A new configuration version is applied without restarting anything
else: cameras removed are stopped and released, cameras changed are restarted under the same lease, cameras added
become free leases; the engine follows the version too (zones, analytics per camera).

The camera health hash gets ``worker``, ``host`` and ``lease_token`` (see :mod:`pipeline.ingest.health`); a camera
started here is marked ``connecting`` at once, so the previous holder's ``online`` never shows under the new one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.cluster import cluster_redis_client
from pipeline.cluster.agent import Agent, HeldLease, LeaseKeeper, StepResult, lease_client
from pipeline.cluster.configstore import StoredConfig, config_version, load_cluster_config
from pipeline.cluster.lanebus import LaneBus
from pipeline.cluster.leases import LeaseStore, WorkerIdClaim, WorkerIdInUseError, check_worker_id_free
from pipeline.config import Camera, Config, ConfigError
from pipeline.ingest.framebus import LeaseFlag, StopFlag
from pipeline.ingest.health import write_camera_health
from pipeline.ingest.worker import CaptureWorkerProcess, camera_is_analysed
from pipeline.secrets import install_log_redaction, url_secrets
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)

LOOP_S = 0.1
CAPTURE_STOP_S = 1.0
RELEASE_STOP_S = 15.0


STANDBY_CAPTURES = 2
"""Capture processes kept started ahead of need: a camera taken over starts at once instead of waiting for a new
Python process (seconds on a loaded host)."""


@dataclass
class StandbyCapture:
    """A capture process waiting for its camera (same ``process`` / ``stop_event`` as a CaptureWorkerProcess)."""

    process: Any
    stop_event: Any
    conn: Any


def run_standby_capture(conn: Any, ingest: Any, bus: Any, stop_event: Any, redis_url: str, recordings_dir: str,
                        log_level: int) -> None:  # fmt: skip
    """Process entry: wait (imports done) for ``(camera, analysed)`` on ``conn``, then capture that camera until
    ``stop_event`` (:func:`pipeline.ingest.worker.run_capture_worker`); ``None`` or the stop event ends it unused."""
    import multiprocessing

    from pipeline.ingest.worker import run_capture_worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    message = None
    while not stop_event.is_set():
        try:
            if conn.poll(0.2):
                message = conn.recv()
                break
        except (EOFError, OSError):  # the supervisor is gone
            return
    if message is None:
        return
    camera, analysed = message
    multiprocessing.current_process().name = f"capture-{camera.id}"
    run_capture_worker([camera], ingest, bus if analysed else None, stop_event, redis_url, recordings_dir, log_level)


@dataclass
class StoppingCamera:
    """A capture asked to stop, and what follows once it has exited."""

    child: CameraChild
    deadline: float
    why: str
    then: str
    killed: bool = False


@dataclass
class CameraChild:
    """A camera this host captures: its lease token and capture process."""

    camera: Camera
    token: int
    worker: Any  # CaptureWorkerProcess or StandbyCapture: .process and .stop_event
    analysed: bool
    restarts: int = 0
    next_restart: float = 0.0


def host_name() -> str:
    """This host's name (``CCTV_HOST_NAME`` where the settings have it, else the machine's)."""
    return str(getattr(get_settings(), "host_name", None) or socket.gethostname())


class WorkerNode:
    """One worker host's supervisor (see the module docstring)."""

    def __init__(self, client: Any, redis_url: str, stored: StoredConfig, worker_id: str, slots: int,
                 recordings_dir: str, log_level: int = logging.INFO) -> None:  # fmt: skip
        self.client = client
        self.redis_url = redis_url
        self.stored = stored
        self.config: Config = stored.config
        self.recordings_dir = recordings_dir
        self.log_level = log_level
        self.host = host_name()
        # renewals on a client of their own: short timeouts, retried by the keeper (a hung primary is left quickly)
        self.lease_client = lease_client(redis_url, self.config.cluster)
        self.agent = Agent(LeaseStore(self.lease_client), worker_id, self.host, slots, self.config.cluster)
        self.agent.set_cameras(self._enabled_ids())
        self.agent.on_renewed = self._lease_renewed  # each capture child fences itself on its lease's deadline
        self.stop_event = StopFlag()  # the engine and retention children
        self.bus = LaneBus(slots, **self.config.ingest.bus_options())
        self.cameras: dict[str, CameraChild] = {}
        self.stopping: list[StoppingCamera] = []
        self.pending: dict[str, int] = {}  # leased cameras waiting for a lane (camera -> token)
        self.standbys: list[StandbyCapture] = []
        self._retired: list[StandbyCapture] = []
        self.retention: Any = None
        self.retention_stop = StopFlag()
        self._old_retention: Any = None
        self._old_deadline = 0.0
        self.children: list[Any] = []
        self.engine: Any = None
        self._next_step = 0.0
        self._next_config = 0.0
        self.handovers: list[tuple[str, str, float]] = []  # (camera, what, when) for benchmarks and logs
        self.keeper: LeaseKeeper | None = None  # started by run(); tests may step without it

    @property
    def worker_id(self) -> str:
        return self.agent.worker_id

    def _enabled_ids(self) -> list[str]:
        return [cam.id for cam in self.config.cameras if cam.enabled]

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self, requested: list[int]) -> None:
        """Run until ``requested`` (signals appended by the caller's handler) is non-empty."""
        from pipeline.service import ChildSpec

        settings = get_settings()
        self._start_retention()
        if settings.internal_token:  # the API and exports on other hosts read this host's segments through it
            from pipeline.recording.serve import run_segment_server

            self.children.append(ChildSpec("segments", run_segment_server, (self.stop_event,)))
        logger.info("worker %s on %s: %d camera slots, configuration version %d (%d cameras)", self.worker_id,
                    self.host, self.agent.slots, self.stored.version, len(self.config.cameras))  # fmt: skip
        if any(camera_is_analysed(cam) for cam in self.config.cameras if cam.enabled):
            self._ensure_engine()  # models loaded ahead: an analysed camera taken over is analysed from its first frame
        self.keeper = LeaseKeeper(self.agent, self.fence_camera).start()
        try:
            while not requested:
                self.tick()
                time.sleep(LOOP_S)
        finally:
            self.shutdown()

    def _start_retention(self) -> None:
        """A retention child on the current configuration, with a stop flag of its own (restarted on a new one)."""
        from pipeline.recording.retention import run_retention_loop
        from pipeline.service import ChildSpec

        self.retention_stop = StopFlag()
        self.retention = ChildSpec("retention", run_retention_loop, (self.config, get_settings().redis_url,
                                                                     self.recordings_dir, self.retention_stop))
        self.children.append(self.retention)

    def _cycle_retention(self) -> None:
        """Once the retention child on the old configuration has exited (or after 30 s), start one on the new."""
        old = self._old_retention
        if old is None:
            return
        if old.process is not None and old.process.is_alive():
            if time.monotonic() < self._old_deadline:
                return
            old.process.kill()
            old.process.join(5)
        self._old_retention = None
        self._start_retention()

    def tick(self) -> None:
        """One pass: lease step when due (else deadline check), configuration, children."""
        from pipeline.service import _supervise

        now = time.monotonic()
        wake = self.agent.wake_at
        if now >= self._next_step or (wake is not None and now >= wake):
            self._next_step = now + self.config.cluster.renew_interval_s
            result = self.agent.step(renew=self.keeper is None)
            self._mark_holders()
        elif self.keeper is None:
            result = StepResult(lost=self.agent.check_deadlines())
        else:
            result = StepResult(lost=self.agent.take_lost())
        self._apply(result)
        if now >= self._next_config:
            self._next_config = now + self.config.cluster.config_poll_s
            self._follow_config()
        self._reap_stopping()
        self._start_pending()
        self._cycle_retention()
        self._keep_standbys()
        self._supervise_cameras()
        _supervise(self.children)

    def _lease_renewed(self, camera_id: str, lease: HeldLease) -> None:
        """A lease was renewed (keeper thread): its capture child gets the new deadline (see :meth:`_arm`)."""
        child = self.cameras.get(camera_id)
        if child is not None and child.token == lease.token:
            self._arm(child.worker.stop_event, camera_id, lease.token)

    def _arm(self, stop_event: Any, camera_id: str, token: int) -> None:
        """Give a capture's :class:`~pipeline.ingest.framebus.LeaseFlag` its lease: the child stops ffmpeg by
        itself once this deadline passes without a renewal (a frozen supervisor cannot keep it recording)."""
        if not isinstance(stop_event, LeaseFlag):
            return
        lease = self.agent.held.get(camera_id)
        if lease is None or lease.token != token:  # not (or no longer) ours: it stops at once
            stop_event.renew(token, time.monotonic())
        elif self.agent.clock is time.monotonic:  # a test's fake agent clock is no deadline for the child
            stop_event.renew(token, lease.deadline)

    def fence_camera(self, camera_id: str) -> None:
        """The camera's lease is lost (called from the keeper's thread): its capture stops sending frames now; the
        loop does the rest (:meth:`_stop_camera`) at its next pass."""
        child = self.cameras.get(camera_id)
        if child is not None:
            child.worker.stop_event.set()
            logger.warning("camera %s: lease lost; capture stopped by the lease keeper", camera_id)

    def _apply(self, result: StepResult) -> None:
        for cam in result.lost:
            if cam in self.agent.held:  # taken again since (its lease was still ours): restarted under it below
                continue
            self._stop_camera(cam, CAPTURE_STOP_S, "lost")
        for cam in result.release:
            self._stop_camera(cam, RELEASE_STOP_S, "released", then="release")
        for cam, token in result.acquired:
            self._start_camera(cam, token)

    # -- cameras -----------------------------------------------------------------------------------------------
    def _start_camera(self, camera_id: str, token: int) -> None:
        running = self.cameras.get(camera_id)
        if running is not None:  # taken again while its capture runs (or was fenced): never two captures
            if not running.worker.stop_event.is_set() and running.worker.process.is_alive():
                running.token = token
                self._arm(running.worker.stop_event, camera_id, token)
                if running.analysed:
                    self.bus.assign(camera_id, token)
                self._write_holder(camera_id, token)
                return
            self._stop_camera(camera_id, CAPTURE_STOP_S, "fenced", then="restart")
        if self.is_stopping(camera_id):  # its previous capture is still exiting: start once it has
            for item in self.stopping:
                if item.child.camera.id == camera_id:
                    item.then = "restart"
            return
        try:
            camera = self.config.camera(camera_id)
        except KeyError:
            logger.error("took camera %s which is not in configuration version %d; releasing it", camera_id,
                         self.stored.version)  # fmt: skip
            self.agent.release(camera_id)
            return
        analysed = camera_is_analysed(camera)
        if analysed:
            try:
                self.bus.assign(camera_id, token)
            except RuntimeError:  # every lane still held by a capture that is exiting: start when one is free
                logger.info("camera %s waits for a free frame bus lane", camera_id)
                self.pending[camera_id] = token
                return
            self._ensure_engine()
        self.pending.pop(camera_id, None)
        for url in (camera.url, camera.sub_stream):
            if url:
                url_secrets(url)
        worker = self._take_standby(camera, analysed, token)
        if worker is None:
            worker = CaptureWorkerProcess([camera], self.config.ingest, self.bus if analysed else None,
                                          self.redis_url, self.recordings_dir, stop_event=LeaseFlag(),
                                          name=f"capture-{camera_id}")  # fmt: skip
            self._arm(worker.stop_event, camera_id, token)
            worker.start()
        self.cameras[camera_id] = CameraChild(camera, token, worker, analysed)
        self._note(camera_id, "started")
        self._write_holder(camera_id, token, starting=True)
        logger.info("camera %s started on %s (token %d, pid %s)", camera_id, self.worker_id, token, worker.process.pid)

    def _take_standby(self, camera: Camera, analysed: bool, token: int) -> StandbyCapture | None:
        while self.standbys:
            standby = self.standbys.pop(0)
            if not standby.process.is_alive():
                continue
            self._arm(standby.stop_event, camera.id, token)
            try:
                standby.conn.send((camera, analysed))
            except (OSError, ValueError):
                self._retire(standby)
                continue
            return standby
        return None

    def _keep_standbys(self) -> None:
        """Keep :data:`STANDBY_CAPTURES` capture processes waiting (on the current ingest settings)."""
        from pipeline.ingest.framebus import MP_CONTEXT

        self.standbys = [s for s in self.standbys if s.process.is_alive()]
        self._retired = [s for s in self._retired if s.process.is_alive()]  # is_alive() reaps the exited ones
        while len(self.standbys) < min(STANDBY_CAPTURES, self.agent.slots):
            parent, child = MP_CONTEXT.Pipe()
            stop = LeaseFlag()
            process = MP_CONTEXT.Process(target=run_standby_capture, name="capture-standby",
                                         args=(child, self.config.ingest, self.bus, stop, self.redis_url,
                                               self.recordings_dir, self.log_level))  # fmt: skip
            process.start()
            child.close()
            self.standbys.append(StandbyCapture(process, stop, parent))

    def _retire(self, standby: StandbyCapture) -> None:
        standby.stop_event.set()
        standby.conn.close()
        self._retired.append(standby)

    def _retire_standbys(self) -> None:
        for standby in self.standbys:
            self._retire(standby)
        self.standbys = []

    def _stop_camera(self, camera_id: str, timeout_s: float, why: str, then: str = "") -> None:
        """Ask the camera's capture to stop (killed after ``timeout_s``); the lane is given up, and the lease
        released (``then="release"``) or the capture started again (``then="restart"``), once it has exited, in
        :meth:`_reap_stopping`: the loop never blocks on a stopping capture, so the other leases stay renewed."""
        child = self.cameras.pop(camera_id, None)
        if child is None:
            self.pending.pop(camera_id, None)
            for item in self.stopping:  # already exiting: what follows is decided anew
                if item.child.camera.id == camera_id:
                    item.then = then
                    return
            if then == "release":  # not running (waiting for a lane): nothing to wait for
                self.agent.release(camera_id)
            return
        child.worker.stop_event.set()
        self.stopping.append(StoppingCamera(child, time.monotonic() + timeout_s, why, then))

    def _reap_stopping(self) -> None:
        now = time.monotonic()
        for item in list(self.stopping):
            process = item.child.worker.process
            if process.is_alive() and now < item.deadline:
                continue
            if process.is_alive():
                if not item.killed:
                    logger.warning("capture of %s did not stop in time; killing it", item.child.camera.id)
                    process.kill()
                    item.killed = True
                process.join(0.05)  # never block the loop (renewals): reaped at a later pass
                if process.is_alive():
                    continue
            self.stopping.remove(item)
            camera_id = item.child.camera.id
            if item.child.analysed:
                self.bus.unassign(camera_id)
            self._note(camera_id, item.why)
            logger.info("camera %s stopped on %s (%s)", camera_id, self.worker_id, item.why)
            if item.then == "release":
                self.agent.release(camera_id)
            elif item.then == "restart" and camera_id in self.agent.held:
                self._start_camera(camera_id, self.agent.held[camera_id].token)

    def _start_pending(self) -> None:
        for camera_id, token in list(self.pending.items()):
            held = self.agent.held.get(camera_id)
            if held is None or held.token != token or camera_id in self.cameras:
                self.pending.pop(camera_id)  # lost or released meanwhile
            elif not self.is_stopping(camera_id):
                self._start_camera(camera_id, token)

    def _note(self, camera_id: str, what: str) -> None:
        self.handovers.append((camera_id, what, time.time()))
        del self.handovers[:-1000]

    def is_stopping(self, camera_id: str) -> bool:
        """Whether a capture of this camera is still shutting down."""
        return any(item.child.camera.id == camera_id for item in self.stopping)

    def _supervise_cameras(self) -> None:
        now = time.monotonic()
        for camera_id, child in list(self.cameras.items()):
            if child.worker.process.is_alive():
                continue
            if child.next_restart == 0.0:
                child.restarts += 1
                child.next_restart = now + min(30.0, 2.0 ** min(child.restarts, 5))
                logger.error("capture of %s exited with code %s; restarting", camera_id, child.worker.process.exitcode)
            elif now >= child.next_restart:
                self.cameras.pop(camera_id)
                if child.analysed:
                    self.bus.unassign(camera_id)
                self._start_camera(camera_id, child.token)
                if camera_id in self.cameras:
                    self.cameras[camera_id].restarts = child.restarts

    def _write_holder(self, camera_id: str, token: int, starting: bool = False) -> None:
        fields: dict[str, Any] = {"worker": self.worker_id, "host": self.host, "lease_token": token}
        if starting:  # the previous holder's "online" is not this capture's
            fields |= {"status": "connecting", "status_since": f"{time.time():.3f}"}
        try:
            write_camera_health(self.client, camera_id, fields)
        except (redis.RedisError, OSError) as exc:
            logger.debug("cannot write the holder of %s: %s", camera_id, exc)

    def _mark_holders(self) -> None:
        for camera_id, child in self.cameras.items():
            self._write_holder(camera_id, child.token)

    # -- the engine --------------------------------------------------------------------------------------------
    def _ensure_engine(self) -> None:
        if self.engine is not None:
            return
        from pipeline.service import ChildSpec

        self.engine = ChildSpec("engine", run_cluster_engine,
                                (self.config, self.bus, self.stop_event, self.redis_url,
                                 self.config.cluster.config_poll_s))  # fmt: skip
        self.children.append(self.engine)

    # -- configuration -----------------------------------------------------------------------------------------
    def _follow_config(self) -> None:
        try:
            version = config_version(self.client)
            if version == self.stored.version:
                return
            stored = load_cluster_config(self.client)
        except (redis.RedisError, OSError) as exc:
            logger.debug("configuration version unreadable: %s", exc)
            return
        except ConfigError as exc:
            logger.error("configuration version in Redis does not validate; keeping version %d: %s",
                         self.stored.version, exc)  # fmt: skip
            return
        if stored is None:
            return
        self.apply_config(stored)

    def apply_config(self, stored: StoredConfig) -> None:
        """Switch to a new configuration: stop removed cameras, restart changed ones, offer new ones."""
        old = {cam.id: cam for cam in self.config.cameras}
        self.stored, self.config = stored, stored.config
        new = {cam.id: cam for cam in self.config.cameras if cam.enabled}
        changed = [cam for cam in self.cameras if cam in new and new[cam] != old.get(cam)]
        for camera_id in [cam for cam in self.cameras if cam not in new]:
            self._stop_camera(camera_id, RELEASE_STOP_S, "removed from the configuration", then="release")
        for camera_id in changed:
            self._stop_camera(camera_id, RELEASE_STOP_S, "configuration changed", then="restart")
        self.agent.settings = self.config.cluster
        self.agent.set_cameras(list(new))
        self._retire_standbys()  # made with the old ingest settings
        if self._old_retention is None and self.retention is not None:  # per-camera retention of the new version
            self.children.remove(self.retention)
            self.retention_stop.set()
            self._old_retention, self._old_deadline = self.retention, time.monotonic() + 30
            self.retention = None
        logger.info("worker %s now on configuration version %d (%d cameras; %d restarted)", self.worker_id,
                    stored.version, len(new), len(changed))  # fmt: skip

    # -- stop --------------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every camera, release every lease, stop the children, free the bus."""
        from pipeline.service import _stop_all

        for camera_id in list(self.cameras):
            self._stop_camera(camera_id, RELEASE_STOP_S, "worker stopping")
        while self.stopping:
            self._reap_stopping()
            time.sleep(LOOP_S)
        if self.keeper is not None:
            self.keeper.stop()
        self.agent.release_all()
        self._retire_standbys()
        for standby in self._retired:
            standby.process.join(5)
            if standby.process.is_alive():
                standby.process.kill()
        self.retention_stop.set()
        if self._old_retention is not None and self._old_retention.process is not None:
            self._old_retention.process.join(20)
            if self._old_retention.process.is_alive():
                self._old_retention.process.kill()
        _stop_all(self.children, self.stop_event)
        self.bus.close()
        self.bus.unlink()
        self.lease_client.close()
        logger.info("worker %s stopped", self.worker_id)


def wait_for_config(client: Any, requested: list[int], poll_s: float = 2.0) -> StoredConfig | None:
    """The configuration in Redis, waiting (and saying so) until one was pushed; None if stopped meanwhile."""
    said = False
    while not requested:
        try:
            stored = load_cluster_config(client)
        except (redis.RedisError, OSError) as exc:
            logger.warning("Redis unreachable while reading the configuration (%s); retrying", exc)
            stored = None
        if stored is not None:
            return stored
        if not said:
            logger.warning("no configuration in Redis yet: push one with `python -m pipeline cluster push-config "
                           "cameras.yaml` (or start an API host with --config)")
            said = True
        time.sleep(poll_s)
    return None


def run_worker_role(worker_id: str | None, slots: int) -> int:
    """``pipeline run --role worker``: until SIGINT/SIGTERM; returns the exit code."""
    from pipeline.cluster.agent import default_worker_id
    from pipeline.service import check_redis_durable

    install_log_redaction()
    check_redis_durable()
    settings = get_settings()
    requested: list[int] = []

    def request_stop(signum: int, _frame: Any) -> None:
        requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    client = cluster_redis_client(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    claim: WorkerIdClaim | None = None
    try:
        stored = wait_for_config(client, requested)
        if stored is None:
            return 0
        for url in stored.config.stream_urls():
            url_secrets(url)
        if worker_id:  # a configured id may be running elsewhere already (the default, host-pid, is unique)
            claim = check_worker_id_free(LeaseStore(client), worker_id, host_name(), os.getpid(),
                                         stored.config.cluster.lease_ttl_s)
            claim.start(on_lost=lambda: requested.append(0))  # another process took the id: stop
        node = WorkerNode(client, settings.redis_url, stored, worker_id or default_worker_id(host_name()), slots,
                          str(settings.recordings_dir), logging.getLogger().level)  # fmt: skip
        node.run(requested)
        if claim is not None and claim.lost.is_set():
            raise WorkerIdInUseError(f"worker id {worker_id!r} was claimed by another process while this worker "
                                     "ran (Redis unreachable for longer than the lease TTL?); stopped")
    finally:
        if claim is not None and not claim.lost.is_set():
            claim.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        client.close()
    return 0


# -- the engine child ----------------------------------------------------------------------------------------------
def idle_without_device(config: Config, stop_event: Any) -> bool:
    """When ``engine.device`` asks for a GPU that no runtime reaches on this worker host (the configuration comes
    from Redis, written on another host): say so once and wait for the stop, so that the host still records its
    cameras and the engine is not restarted in a loop; True then. False where the models can run here."""
    from pipeline.models.onnx_utils import gpu_unavailable

    reason = gpu_unavailable(config.engine.device, config.engine.runtime)
    if not reason:
        return False
    logger.error("analytics off on this worker (cameras are still recorded): %s", reason)
    while not stop_event.is_set():
        stop_event.wait(1.0)
    return True


def run_cluster_engine(config: Config, bus: LaneBus, stop_event: Any, redis_url: str, poll_s: float) -> None:
    """The engine of a worker host: fenced publishing, camera settings following the configuration version."""
    from pipeline.cluster.fencing import FencedEventStore, FencedPublisher, HandoverMerger
    from pipeline.engine.process import build_engine, run_loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if idle_without_device(config, stop_event):
        return
    engine, plain, client = build_engine(config, redis_url=redis_url)
    old = plain.store
    extra = {name: getattr(old, name) for name in ("wait_replicas", "wait_timeout_ms") if hasattr(old, name)}
    store = FencedEventStore(client, old.events_maxlen, old.alerts_maxlen, **extra)
    publisher = FencedPublisher(store, plain.spool, bus.fence_token, merger=HandoverMerger(client))
    publisher.on_delivered = engine.on_delivered
    engine.publisher = publisher
    follower = EngineConfigFollower(engine, client, poll_s)
    tick = engine.tick

    def tick_and_follow(pending: Any = None) -> None:
        follower.poll()
        tick(pending)

    engine.tick = tick_and_follow  # type: ignore[method-assign]
    run_loop(engine, publisher, client, config, bus, stop_event)


class EngineConfigFollower:
    """Keeps a running engine's camera settings on the configuration version in Redis."""

    def __init__(self, engine: Any, client: Any, poll_s: float, version: int | None = None) -> None:
        self.engine = engine
        self.client = client
        self.poll_s = poll_s
        self.version = version
        self._next = 0.0

    def poll(self) -> None:
        """Reload when the version moved (at most every ``poll_s``); Redis errors leave the settings as they are."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.poll_s
        try:
            version = config_version(self.client)
            if version == self.version:
                return
            stored = load_cluster_config(self.client)
        except (redis.RedisError, OSError, ConfigError) as exc:
            logger.debug("engine: configuration not reloaded (%s)", exc)
            return
        if stored is not None:
            apply_engine_config(self.engine, stored.config)
            self.version = stored.version


def apply_engine_config(engine: Any, config: Config) -> None:
    """Give a running engine a new configuration: cameras it knows get their new settings (zones, analytics);
    new cameras are found in it; the ``engine`` section itself needs a restart of the worker."""
    from pipeline.engine.zones import ZoneFilter

    engine.config = config
    for camera_id, runtime in engine.cameras.items():
        try:
            camera = config.camera(camera_id)
        except KeyError:
            continue
        if camera != runtime.camera:
            runtime.camera = camera
            runtime.zones = ZoneFilter(camera.zones)
    engine._warned_unknown.clear()
