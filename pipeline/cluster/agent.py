"""What one worker decides about its cameras, one step at a time (the worker host's supervisor calls
:meth:`Agent.step` every ``renew_interval_s``).

Each step:

1. **renew** every lease held (compare-and-renew); a lease whose renewal Redis refused is *lost* at once, one that
   could not be renewed (Redis unreachable) is lost when its local deadline passes (the moment of the last good
   renewal plus the TTL, less a safety margin). The caller must stop capture and analysis of a lost camera at once:
   by then another worker may hold it.
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
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from pipeline.cluster.leases import Holder, LeaseStore, WorkerInfo, check_worker_id
from pipeline.config import ClusterConfig

logger = logging.getLogger(__name__)


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
    def step(self) -> StepResult:
        """Renew, heartbeat, take and release (see the module docstring); never raises for Redis errors."""
        result = StepResult()
        if not self._renew(result):
            logger.warning("worker %s: Redis unreachable; keeping %d cameras until their leases run out",
                           self.worker_id, len(self.held))  # fmt: skip
            return result
        try:
            self.leases.heartbeat(WorkerInfo(self.worker_id, self.host, os.getpid(), self.slots, len(self.held),
                                             self.started_at), self.ttl_ms)  # fmt: skip
            workers = self.leases.live_workers()
            holders = self.leases.holders(self.cameras)
        except (redis.RedisError, OSError) as exc:
            logger.warning("worker %s: Redis unreachable (%s); keeping %d cameras until their leases run out",
                           self.worker_id, exc, len(self.held))  # fmt: skip
            return result
        share = self.fair_share(workers)
        self._take(holders, share, result)
        self._plan_release(workers, holders, share, result)
        return result

    def fair_share(self, workers: dict[str, WorkerInfo]) -> int:
        """Cameras this worker should hold: its part of all live workers' slots, at most its own slots."""
        total_slots = sum(w.slots for w in workers.values() if w.worker_id != self.worker_id) + self.slots
        return min(self.slots, math.ceil(len(self.cameras) * self.slots / total_slots)) if total_slots else 0

    def _renew(self, result: StepResult) -> bool:
        """Renew every lease; False when Redis could not be reached (the remaining leases are then only checked
        against their deadlines, so that one step never waits for a timeout per camera)."""
        reachable = True
        for cam, lease in list(self.held.items()):
            started = self.clock()
            error: Exception | None = None
            ok = False
            if reachable:
                try:
                    ok = self.leases.renew(cam, self.worker_id, lease.token, self.ttl_ms)
                except (redis.RedisError, OSError) as exc:
                    error, reachable = exc, False
            if error is not None or not reachable:
                if self.clock() >= lease.deadline:
                    logger.error("camera %s: lease could not be renewed before its deadline (%s); stopping it", cam,
                                 error or "Redis unreachable")  # fmt: skip
                    self._drop(cam, result)
                continue
            if ok:
                lease.deadline = started + self.settings.lease_ttl_s - self.safety_s
            else:
                logger.warning("camera %s: lease (token %d) lost; stopping it", cam, lease.token)
                self._drop(cam, result)
        return reachable

    def check_deadlines(self) -> list[str]:
        """Cameras whose lease deadline passed without a renewal (call between steps; they are dropped)."""
        result = StepResult()
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
        for cam in list(self.held):
            self.release(cam)
        try:
            self.leases.unregister(self.worker_id)
        except (redis.RedisError, OSError) as exc:
            logger.warning("worker %s: could not unregister (%s); its heartbeat expires by itself", self.worker_id,
                           exc)  # fmt: skip


def default_worker_id(host: str) -> str:
    """``<host>-<pid>``: unique per process (a restarted worker is a new worker)."""
    return f"{host}-{os.getpid()}"
