"""What one worker decides about its cameras, one step at a time (the worker host's supervisor calls
:meth:`Agent.step`), and the :class:`LeaseKeeper` threads that renew its leases off the supervisor's loop.

Each step:

1. **renew** every lease held (compare-and-renew); a lease whose renewal Redis refused is *lost* at once, one that
   could not be renewed (Redis unreachable) is lost when its local deadline passes (the moment of the last good
   renewal plus the TTL, less a safety margin). The caller must stop capture and analysis of a lost camera at once:
   by then another worker may hold it. With a :class:`LeaseKeeper` running, renewal and heartbeat are its work
   (``step(renew=False)``): a slow supervisor pass can then neither let a lease expire nor miss a deadline.
2. **heartbeat**: the worker's registry entry (host, pid, slots, how many it holds) with a TTL.
3. **take** free cameras: up to this worker's *fair share* (cameras x its slots / all live workers' slots, rounded
   up, at most its slots) at once; beyond it, up to its slots, only a camera that stayed free for
   ``orphan_grace_s`` (no worker under its share took it: everyone is full). Leases of a previous life of this same
   worker id are adopted (a restarted worker with a configured id keeps its cameras).
4. **release** (bounded churn): at most one camera per ``rebalance_interval_s``, and only when this worker holds more
   than its fair share while another live worker holds less and no camera is free; the caller stops the camera,
   then calls :meth:`Agent.release`, so the worker under its share takes it. A camera removed from the
   configuration is released the same way (not rate-limited).

A camera released by this worker is not taken back by it for ``rebalance_interval_s`` (no ping-pong). Cameras it
lost because Redis was unreachable are taken back first when Redis is back, and other free cameras only after
``orphan_grace_s`` meanwhile: after a failover longer than the TTL (every lease and heartbeat expired) each worker
takes its own cameras back instead of the first one back taking everything.

Redis failing over (Sentinel): renewals go through their own client (:func:`lease_client`) whose connections and
commands wait at most :func:`renew_timeout_s` (a tenth of the TTL, 0.25-1 s) and are never retried inside redis-py,
so a primary that hangs instead of dying costs one short timeout, and the next attempt asks the Sentinels again. A
renewal that failed (timeout, connection refused, no primary known yet, ``NOREPLICAS`` or ``READONLY`` while the new
primary waits for its replicas) is tried again after a bounded backoff (:attr:`LeaseKeeper.RETRY_FIRST_S`, doubling
up to :attr:`LeaseKeeper.RETRY_MAX_S` or ``renew_interval_s``), not at the next period and never in a tight loop;
the lease stays held until its deadline, which only a good renewal moves. A failover that completes within the
TTL therefore keeps every camera where it is; one that does not stops them at their deadlines, as before.

Reacting to a dead peer: each step also reads how long the other workers' leases and heartbeats have left
(``PTTL``). One that missed a renewal (less left than ``lease_ttl_s - renew_interval_s - 1 s``) is *suspect*:
:attr:`Agent.wake_at` is then the moment its last lease and heartbeat run out (plus 50 ms), and the supervisor
steps again right then instead of up to ``renew_interval_s`` later; the heartbeat being gone by then, the fair
shares already count the dead worker out and its cameras are taken in that same step.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from pipeline.cluster.leases import Holder, LeaseStore, WorkerInfo, check_worker_id
from pipeline.config import ClusterConfig

logger = logging.getLogger(__name__)


def renew_timeout_s(settings: ClusterConfig) -> float:
    """How long one renewal (connection, command) may wait: a tenth of the lease TTL, between 0.25 s and 1 s, so
    that a hung primary costs a few timeouts at most before the lease's deadline (TTL less up to 1 s)."""
    return min(1.0, max(0.25, settings.lease_ttl_s / 10.0))


def lease_client(redis_url: str, settings: ClusterConfig) -> redis.Redis:
    """The Redis client of a worker's lease renewals (Sentinel-aware): :func:`renew_timeout_s` per connection and
    command, no retries inside redis-py (:class:`LeaseKeeper` retries with its own bounded backoff)."""
    from pipeline.cluster import cluster_redis_client
    from pipeline.store.connection import fail_fast

    return cluster_redis_client(redis_url, **fail_fast(renew_timeout_s(settings)))


@dataclass
class HeldLease:
    """A lease this worker holds."""

    token: int
    deadline: float  # local monotonic time after which it must be taken as lost
    acquired_at: float


@dataclass
class StepResult:
    """What the caller must do after a step."""

    acquired: list[tuple[str, int]] = field(default_factory=list)  # (camera, token): start these
    lost: list[str] = field(default_factory=list)  # stop these NOW (the lease is gone)
    release: list[str] = field(default_factory=list)  # stop these, then call Agent.release(camera)


class Agent:
    """The lease bookkeeping of one worker (see the module docstring)."""

    def __init__(
        self,
        leases: LeaseStore,
        worker_id: str,
        host: str,
        slots: int,
        settings: ClusterConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1:
            raise ValueError(f"a worker needs at least one camera slot (got {slots})")
        self.leases = leases
        self.worker_id = check_worker_id(worker_id)
        self.host = host
        self.slots = int(slots)
        self.settings = settings
        self.clock = clock
        self.started_at = time.time()
        self.held: dict[str, HeldLease] = {}
        self.cameras: list[str] = []
        self._free_since: dict[str, float] = {}
        self._released_at: dict[str, float] = {}
        self._next_rebalance = clock() + settings.rebalance_interval_s
        self._releasing: set[str] = set()
        self._next_full_warning = 0.0
        self._previously: dict[str, float] = {}  # cameras lost lately (Redis away): taken back first
        self._recover_until: float | None = None
        self.lock = threading.RLock()  # held, _previously, _lost_pending: shared with the keeper's threads (no Redis call under it)
        self._lost_pending: list[str] = []  # lost in the keeper's threads, not yet handed to the supervisor
        self.wake_at: float | None = None  # step again then: a suspect peer's leases and heartbeat run out
        self.on_renewed: Callable[[str, HeldLease], None] | None = None  # after each good renewal (any thread)

    # -- configuration ---------------------------------------------------------------------------------------
    def set_cameras(self, camera_ids: list[str]) -> None:
        """The cameras workers share (enabled cameras of the configuration), in a stable order."""
        self.cameras = sorted(dict.fromkeys(camera_ids))

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.lease_ttl_s * 1000)

    @property
    def safety_s(self) -> float:
        """How long before the lease's expiry in Redis a worker that could not renew stops the camera."""
        return min(1.0, self.settings.lease_ttl_s * 0.2)

    def tokens(self) -> dict[str, int]:
        """Camera -> fencing token of every lease held."""
        return {cam: lease.token for cam, lease in self.held.items()}

    # -- the step ----------------------------------------------------------------------------------------------
    def step(self, renew: bool = True) -> StepResult:
        """Renew and heartbeat (``renew``; else a :class:`LeaseKeeper` does), take and release (see the module
        docstring); never raises for Redis errors. Cameras the keeper lost since the last step are in ``lost``."""
        result = StepResult(lost=self.take_lost())
        if renew and not self.renew(result):
            self.wake_at = None
            logger.warning("worker %s: Redis unreachable; keeping %d cameras until their leases run out",
                           self.worker_id, len(self.held))  # fmt: skip
            return result
        try:
            workers = self.leases.live_workers()
            holders = self.leases.holders(self.cameras)
            self.wake_at = self._suspect_expiry(workers, holders)
        except (redis.RedisError, OSError) as exc:
            self.wake_at = None  # a past wake-up would step again at every pass of the caller's loop (10/s)
            logger.warning("worker %s: Redis unreachable (%s); keeping %d cameras until their leases run out",
                           self.worker_id, exc, len(self.held))  # fmt: skip
            return result
        share = self.fair_share(workers)
        self._take(holders, share, result)
        with self.lock:
            self._plan_release(workers, holders, share, result)
        return result

    def renew(self, result: StepResult) -> bool:
        """Renew every lease held, then the heartbeat; False when Redis could not be reached. Lost cameras are
        added to ``result.lost``."""
        if not self._renew(result):
            return False
        try:
            with self.lock:
                info = WorkerInfo(self.worker_id, self.host, os.getpid(), self.slots, len(self.held), self.started_at)
            self.leases.heartbeat(info, self.ttl_ms)
        except (redis.RedisError, OSError) as exc:
            logger.warning("worker %s: heartbeat not written (%s)", self.worker_id, exc)
            return False
        return True

    def hand_lost(self, cameras: list[str]) -> None:
        """Cameras lost outside :meth:`step` (the keeper's threads): the next step returns them in ``lost``."""
        if cameras:
            with self.lock:
                self._lost_pending += cameras

    def take_lost(self) -> list[str]:
        """Cameras lost in the keeper's threads since the last call (the caller stops them)."""
        with self.lock:
            lost, self._lost_pending = self._lost_pending, []
        return lost

    def _suspect_expiry(self, workers: dict[str, WorkerInfo], holders: dict[str, Holder | None]) -> float | None:
        """When (local monotonic time, + 50 ms) the leases and heartbeat of every peer that missed a renewal have
        run out; None when no peer is suspect (see the module docstring)."""
        limit = (self.settings.lease_ttl_s - self.settings.renew_interval_s - 1.0) * 1000.0
        peers = {w for w in workers if w != self.worker_id}
        peer_cams = [cam for cam, h in holders.items() if h is not None and h.worker_id in peers]
        ttls = self.leases.remaining_ms(peer_cams, sorted(peers))
        suspects = {w for w in peers if 0 <= ttls.get(("worker", w), -1) < limit}
        suspects |= {holders[cam].worker_id for cam in peer_cams  # type: ignore[union-attr]
                     if 0 <= ttls.get(("lease", cam), -1) < limit}
        if not suspects:
            return None
        left = [ttls.get(("worker", w), -1) for w in suspects]
        left += [ttls.get(("lease", cam), -1) for cam in peer_cams
                 if holders[cam].worker_id in suspects]  # type: ignore[union-attr]
        return self.clock() + max(max(left), 0) / 1000.0 + 0.05

    def fair_share(self, workers: dict[str, WorkerInfo]) -> int:
        """Cameras this worker should hold: its part of all live workers' slots, at most its own slots."""
        total_slots = sum(w.slots for w in workers.values() if w.worker_id != self.worker_id) + self.slots
        return min(self.slots, math.ceil(len(self.cameras) * self.slots / total_slots)) if total_slots else 0

    def _renew(self, result: StepResult) -> bool:
        """Renew every lease; False when Redis could not be reached (the remaining leases are then only checked
        against their deadlines, so that one step never waits for a timeout per camera)."""
        reachable = True
        with self.lock:
            held = list(self.held.items())
        for cam, lease in held:
            started = self.clock()
            error: Exception | None = None
            ok = False
            if reachable:
                try:
                    ok = self.leases.renew(cam, self.worker_id, lease.token, self.ttl_ms)
                except (redis.RedisError, OSError) as exc:
                    error, reachable = exc, False
            with self.lock:
                if self.held.get(cam) is not lease:  # released or dropped meanwhile
                    continue
                if error is not None or not reachable:
                    if self.clock() >= lease.deadline:
                        logger.error("camera %s: lease could not be renewed before its deadline (%s); stopping it",
                                     cam, error or "Redis unreachable")  # fmt: skip
                        self._drop(cam, result)
                    continue
                if ok:
                    lease.deadline = started + self.settings.lease_ttl_s - self.safety_s
                else:
                    logger.warning("camera %s: lease (token %d) lost; stopping it", cam, lease.token)
                    self._drop(cam, result)
            if ok:
                self._renewed(cam, lease)
        return reachable

    def _renewed(self, cam: str, lease: HeldLease) -> None:
        """Tell :attr:`on_renewed` (the supervisor hands the new deadline to the camera's capture child)."""
        if self.on_renewed is None:
            return
        try:
            self.on_renewed(cam, lease)
        except Exception:  # noqa: BLE001 - renewals of the other leases must go on
            logger.exception("camera %s: passing on its renewed lease failed", cam)

    def check_deadlines(self) -> list[str]:
        """Cameras whose lease deadline passed without a renewal (call between steps; they are dropped)."""
        result = StepResult()
        with self.lock:
            now = self.clock()
            for cam, lease in list(self.held.items()):
                if now >= lease.deadline:
                    logger.error("camera %s: lease deadline passed without a renewal; stopping it", cam)
                    self._drop(cam, result)
        return result.lost

    def _drop(self, cam: str, result: StepResult) -> None:
        if cam in self.held:
            self._previously[cam] = self.clock()
        self.held.pop(cam, None)
        self._releasing.discard(cam)
        result.lost.append(cam)

    def _take(self, holders: dict[str, Holder | None], share: int, result: StepResult) -> None:
        now = self.clock()
        for cam in self.cameras:
            holder = holders.get(cam)
            if holder is None:
                self._free_since.setdefault(cam, now)
            else:
                self._free_since.pop(cam, None)
        for cam in [c for c in self._free_since if c not in holders]:
            self._free_since.pop(cam, None)
        if self._previously and self._recover_until is None:  # Redis is back after we lost cameras to its absence
            self._recover_until = now + self.settings.orphan_grace_s + self.settings.renew_interval_s
        if self._recover_until is not None and now >= self._recover_until:
            self._previously.clear()
            self._recover_until = None
        # after an outage every lease expired at once: each worker takes back its own cameras first, so that a
        # Redis failover longer than the TTL does not shuffle the cameras between workers
        for cam in sorted(self.cameras, key=lambda c: (c not in self._previously, c)):
            if len(self.held) >= self.slots:
                self._warn_full(holders, now)
                return
            holder = holders.get(cam)
            if cam in self._lost_pending:  # dropped by the keeper, not yet stopped by the supervisor: next step
                continue
            if holder is not None and holder.worker_id == self.worker_id and cam not in self.held:
                self._adopt(cam, holder, result)
                continue
            if holder is not None or cam in self.held:
                continue
            if now - self._released_at.get(cam, -math.inf) < self.settings.rebalance_interval_s:
                continue
            orphaned = now - self._free_since.get(cam, now) >= self.settings.orphan_grace_s
            recovering = self._recover_until is not None and cam not in self._previously  # others take theirs first
            if (len(self.held) >= share or recovering) and not orphaned:
                continue
            self._acquire(cam, result)

    def _warn_full(self, holders: dict[str, Holder | None], now: float) -> None:
        """Say (at most once a minute) that cameras stay unassigned while this worker is full."""
        free = [cam for cam, holder in holders.items() if holder is None]
        orphaned = [cam for cam in free if now - self._free_since.get(cam, now) >= self.settings.orphan_grace_s]
        if orphaned and now >= self._next_full_warning:
            self._next_full_warning = now + 60.0
            logger.warning("%d cameras have no worker (%s...): worker %s is full (%d slots); add workers or slots",
                           len(orphaned), ", ".join(orphaned[:5]), self.worker_id, self.slots)  # fmt: skip

    def _acquire(self, cam: str, result: StepResult) -> None:
        started = self.clock()
        try:
            token = self.leases.acquire(cam, self.worker_id, self.ttl_ms)
        except (redis.RedisError, OSError) as exc:
            logger.warning("camera %s: cannot take its lease (%s)", cam, exc)
            return
        if token is None:
            return
        with self.lock:
            self.held[cam] = HeldLease(token, started + self.settings.lease_ttl_s - self.safety_s, started)
        self._free_since.pop(cam, None)
        result.acquired.append((cam, token))
        logger.info("worker %s took camera %s (token %d)", self.worker_id, cam, token)

    def _adopt(self, cam: str, holder: Holder, result: StepResult) -> None:
        started = self.clock()
        try:
            ok = self.leases.renew(cam, self.worker_id, holder.token, self.ttl_ms)
        except (redis.RedisError, OSError):
            return
        if ok:
            with self.lock:
                self.held[cam] = HeldLease(holder.token, started + self.settings.lease_ttl_s - self.safety_s, started)
            result.acquired.append((cam, holder.token))
            logger.info("worker %s kept camera %s from its previous run (token %d)", self.worker_id, cam,
                        holder.token)  # fmt: skip

    def _plan_release(self, workers: dict[str, WorkerInfo], holders: dict[str, Holder | None], share: int,
                      result: StepResult) -> None:  # fmt: skip
        configured = set(self.cameras)
        for cam in self.held:
            if cam not in configured and cam not in self._releasing:
                self._releasing.add(cam)
                result.release.append(cam)
        now = self.clock()
        if now < self._next_rebalance or self._releasing:
            return
        self._next_rebalance = now + self.settings.rebalance_interval_s
        if len(self.held) <= share or any(h is None for h in holders.values()):
            return
        counts: dict[str, int] = {}
        for holder in holders.values():
            if holder is not None:
                counts[holder.worker_id] = counts.get(holder.worker_id, 0) + 1
        total_slots = sum(w.slots for w in workers.values()) or 1
        under = [w for w in workers.values() if w.worker_id != self.worker_id
                 and counts.get(w.worker_id, 0) < min(w.slots, math.ceil(len(self.cameras) * w.slots / total_slots))]
        if not under:
            return
        cam = max(self.held, key=lambda c: (self.held[c].acquired_at, c))  # the newest: least state lost
        self._releasing.add(cam)
        result.release.append(cam)
        logger.info("worker %s holds %d cameras (fair share %d) while %s holds fewer: releasing %s",
                    self.worker_id, len(self.held), share, under[0].worker_id, cam)  # fmt: skip

    def release(self, cam: str) -> None:
        """Give a camera up after its capture stopped (compare-and-delete: only if still ours)."""
        with self.lock:
            lease = self.held.pop(cam, None)
            self._releasing.discard(cam)
        if lease is None:
            return
        self._released_at[cam] = self.clock()
        try:
            self.leases.release(cam, self.worker_id, lease.token)
        except (redis.RedisError, OSError) as exc:  # it expires by itself
            logger.warning("camera %s: release failed (%s); the lease expires in %.0fs", cam, exc,
                           self.settings.lease_ttl_s)  # fmt: skip

    def release_all(self) -> None:
        """Give every camera up and leave the registry (clean stop, after every capture stopped)."""
        with self.lock:
            cams = list(self.held)
        for cam in cams:
            self.release(cam)
        try:
            self.leases.unregister(self.worker_id)
        except (redis.RedisError, OSError) as exc:
            logger.warning("worker %s: could not unregister (%s); its heartbeat expires by itself", self.worker_id,
                           exc)  # fmt: skip


class LeaseKeeper:
    """Keeps a worker's leases off the supervisor's loop, in two daemon threads:

    - *renew*: every ``renew_interval_s``, every lease held, then the heartbeat (:meth:`Agent.renew`);
    - *fence*: every :attr:`FENCE_CHECK_S`, a lease whose deadline passed without a good renewal (a renewal
      waiting on an unreachable Redis cannot hold this one up) is dropped (:meth:`Agent.check_deadlines`).

    A camera lost either way goes to ``on_lost(camera)`` at once, from the thread that noticed (it must be quick
    and thread-safe: the supervisor's stops the camera's capture, so no frame captured after the deadline reaches
    the engine; the fencing token in the writer scripts refuses anything captured after another worker's token),
    and to the next :meth:`Agent.step` in ``lost`` for the supervisor's bookkeeping.
    """

    FENCE_CHECK_S = 0.05
    RETRY_FIRST_S = 0.2
    """Wait after a failed renewal before the next try (then doubled at each failure)."""
    RETRY_MAX_S = 1.0
    """Longest wait between tries while renewals fail (or ``renew_interval_s`` if shorter)."""

    def __init__(self, agent: Agent, on_lost: Callable[[str], None]) -> None:
        self.agent = agent
        self.on_lost = on_lost
        self.stop_event = threading.Event()
        self.renewals = 0
        self.failures = 0
        """Renewal rounds that could not reach Redis (each retried after :meth:`retry_wait_s`)."""
        self._threads = [threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True),
                         threading.Thread(target=self._fence_loop, name="lease-fence", daemon=True)]

    def start(self) -> LeaseKeeper:
        """Start both threads (once)."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop both threads (the leases stay held: release them with :meth:`Agent.release_all`)."""
        self.stop_event.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)

    def _lost(self, cameras: list[str]) -> None:
        if not cameras:
            return
        self.agent.hand_lost(cameras)
        for cam in cameras:
            try:
                self.on_lost(cam)
            except Exception:  # noqa: BLE001 - the keeper must go on renewing the other leases
                logger.exception("camera %s: stopping it after its lease was lost failed", cam)

    def retry_wait_s(self, failures: int) -> float:
        """Wait before the next try after ``failures`` failed renewal rounds in a row (0: the regular period)."""
        interval = self.agent.settings.renew_interval_s
        if failures <= 0:
            return interval
        return min(self.RETRY_FIRST_S * 2 ** (failures - 1), self.RETRY_MAX_S, interval)

    def _renew_loop(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            started = time.monotonic()
            result = StepResult()
            reached = False
            try:
                reached = self.agent.renew(result)
                self.renewals += 1
            except Exception:  # noqa: BLE001 - a bug here must not stop renewals for good
                logger.exception("worker %s: lease renewal failed", self.agent.worker_id)
            self._lost(result.lost)
            failures = 0 if reached else failures + 1
            self.failures += not reached
            if failures:  # Redis failing over: try again soon, with a bounded backoff (no tight loop)
                self.stop_event.wait(self.retry_wait_s(failures))
            else:
                self.stop_event.wait(max(0.0, self.retry_wait_s(0) - (time.monotonic() - started)))

    def _fence_loop(self) -> None:
        while not self.stop_event.wait(self.FENCE_CHECK_S):
            self._lost(self.agent.check_deadlines())


def default_worker_id(host: str) -> str:
    """``<host>-<pid>``: unique per process (a restarted worker is a new worker)."""
    return f"{host}-{os.getpid()}"
