"""Camera leases, fencing tokens and the worker registry in Redis.

Key layout (``cctv:cluster:`` prefix):

- ``workers`` (set): ids of workers that have registered; an id whose heartbeat key is gone is removed on reading.
- ``claim:<worker_id>`` (string ``<host>|<pid>|<nonce>``, ``PX`` lease TTL): which process runs under a worker id.
  Taken atomically (``SET NX`` semantics, in a script) by :func:`check_worker_id_free` before the worker starts and
  refreshed by its :class:`WorkerIdClaim` thread, so two processes started at once with one ``--worker-id`` cannot
  both run; a dead holder's claim simply expires.
- ``worker:<worker_id>`` (string, JSON, ``PX`` heartbeat TTL): ``host``, ``pid``, ``slots`` (camera capacity),
  ``held`` (cameras it holds now), ``started_at``; rewritten every renewal period by the live worker.
- ``lease:<camera_id>`` (string ``<worker_id>|<token>``, ``PX`` lease TTL): who holds the camera. Taken with
  ``SET NX PX`` semantics inside a script, renewed only by its holder (compare-and-``PEXPIRE``), released only by
  its holder (compare-and-``DEL``); a dead holder's lease simply expires.
- ``fence:<camera_id>`` (hash): ``current`` = the camera's fencing token (``HINCRBY`` on every acquisition, so it only
  grows) and, for the last :data:`FENCE_HISTORY` tokens, ``<token>`` = when that token was handed out (Redis
  ``TIME``, epoch seconds). :mod:`pipeline.cluster.fencing` accepts a write made under token *k* only when *k* is the
  current token, or when the record's capture time is before the moment token *k + 1* was handed out: what a
  worker saw while it held the camera is kept (even if it reaches Redis late, from its spool), what it saw after
  another worker took over is refused.

Times of the fence come from the Redis server's clock (one clock for every host); the record's capture time comes
from the worker's clock, so hosts must keep their clocks in sync (NTP); the lease TTL is the margin.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.processes import pid_alive

logger = logging.getLogger(__name__)

PREFIX = "cctv:cluster:"
WORKERS_KEY = PREFIX + "workers"
FENCE_HISTORY = 64
WORKER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

_ACQUIRE = f"""
-- KEYS: lease, fence; ARGV: worker_id, ttl_ms. Returns the new token, or 0 if the camera is held.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('HINCRBY', KEYS[2], 'current', 1)
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], tostring(token), t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
if token > {FENCE_HISTORY} then redis.call('HDEL', KEYS[2], tostring(token - {FENCE_HISTORY})) end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

_RENEW = """
-- KEYS: lease; ARGV: holder value, ttl_ms. 1 renewed, 0 not ours (expired or taken).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_CLAIM = """
-- KEYS: claim; ARGV: value, ttl_ms, value it may replace ('' for none). 1 claimed, 0 held by another.
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] or (ARGV[3] ~= '' and current == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
-- KEYS: lease; ARGV: holder value. 1 released, 0 not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


AcquireGuard = Callable[[], str | None]
_acquire_guard: AcquireGuard | None = None


def set_acquire_guard(guard: AcquireGuard | None) -> None:
    """Make ``guard`` this process's check before every lease acquisition: while it returns a reason, no camera is
    taken (:meth:`LeaseStore.acquire` answers None, as for a camera held by another). ``None`` removes it. Set by a
    worker's clock check (:class:`pipeline.cluster.clock.ClockWatch`)."""
    global _acquire_guard
    _acquire_guard = guard


def lease_key(camera_id: str) -> str:
    """Redis key of a camera's lease."""
    return f"{PREFIX}lease:{camera_id}"


def fence_key(camera_id: str) -> str:
    """Redis key of a camera's fencing tokens."""
    return f"{PREFIX}fence:{camera_id}"


def worker_key(worker_id: str) -> str:
    """Redis key of a worker's heartbeat."""
    return f"{PREFIX}worker:{worker_id}"


def claim_key(worker_id: str) -> str:
    """Redis key of the claim on a worker id (which process runs under it)."""
    return f"{PREFIX}claim:{worker_id}"


def check_worker_id(worker_id: str) -> str:
    """Return ``worker_id`` if usable (letters, digits, ``_ . : -``, at most 128), else raise ``ValueError``."""
    if not WORKER_ID_PATTERN.match(worker_id):
        raise ValueError(f"worker id {worker_id!r} must be 1-128 of letters, digits, '_', '.', ':' and '-'")
    return worker_id


@dataclass(frozen=True)
class Holder:
    """Who holds a camera: the worker and its fencing token."""

    worker_id: str
    token: int


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker as its last heartbeat describes it."""

    worker_id: str
    host: str
    pid: int
    slots: int
    held: int
    started_at: float


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_holder(value: Any) -> Holder | None:
    """A lease value ``<worker_id>|<token>`` as a :class:`Holder` (None when absent or malformed)."""
    if value is None:
        return None
    worker_id, sep, token = _text(value).rpartition("|")
    if not sep or not token.isdigit():
        return None
    return Holder(worker_id, int(token))


class LeaseStore:
    """The lease and registry operations on one Redis client (``decode_responses`` either way)."""

    def __init__(self, client: Any, guard: AcquireGuard | None = None) -> None:
        self.client = client
        self.guard = guard
        """Checked before each acquisition (else the process's, :func:`set_acquire_guard`)."""
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)

    # -- leases ----------------------------------------------------------------------------------------------
    def acquire(self, camera_id: str, worker_id: str, ttl_ms: int) -> int | None:
        """Take the camera if nobody holds it; return the new fencing token, or None when it is held (or this
        process's acquire guard refuses: a worker whose clock is wrong takes no camera)."""
        guard = self.guard or _acquire_guard
        refusal = guard() if guard is not None else None
        if refusal:
            logger.debug("camera %s not taken: %s", camera_id, refusal)
            return None
        token = int(self._acquire(keys=[lease_key(camera_id), fence_key(camera_id)], args=[worker_id, int(ttl_ms)]))
        return token or None

    def renew(self, camera_id: str, worker_id: str, token: int, ttl_ms: int) -> bool:
        """Extend our lease by ``ttl_ms``; False when it is no longer ours (expired, or another worker took it)."""
        return int(self._renew(keys=[lease_key(camera_id)], args=[f"{worker_id}|{token}", int(ttl_ms)])) == 1

    def release(self, camera_id: str, worker_id: str, token: int) -> bool:
        """Give the camera up (only if the lease is still ours)."""
        return int(self._release(keys=[lease_key(camera_id)], args=[f"{worker_id}|{token}"])) == 1

    def holders(self, camera_ids: list[str]) -> dict[str, Holder | None]:
        """The current holder of each camera (None: free)."""
        if not camera_ids:
            return {}
        values = self.client.mget([lease_key(cam) for cam in camera_ids])
        return {cam: parse_holder(value) for cam, value in zip(camera_ids, values, strict=True)}

    def current_token(self, camera_id: str) -> int:
        """The camera's current fencing token (0 if it was never leased)."""
        value = self.client.hget(fence_key(camera_id), "current")
        return int(_text(value)) if value is not None else 0

    def token_issued_at(self, camera_id: str, token: int) -> float | None:
        """When ``token`` was handed out (Redis clock), if still in the history."""
        value = self.client.hget(fence_key(camera_id), str(token))
        return float(_text(value)) if value is not None else None

    def remaining_ms(self, camera_ids: list[str], worker_ids: list[str]) -> dict[tuple[str, str], int]:
        """Milliseconds left (``PTTL``; negative: gone) of cameras' leases and workers' heartbeats, keyed
        ``("lease", camera)`` and ``("worker", worker)``: one round trip."""
        names = [("lease", cam) for cam in camera_ids] + [("worker", w) for w in worker_ids]
        if not names:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for kind, name in names:
            pipe.pttl(lease_key(name) if kind == "lease" else worker_key(name))
        return {key: int(ttl) for key, ttl in zip(names, pipe.execute(), strict=True)}

    # -- worker id claims ------------------------------------------------------------------------------------
    def claim(self, worker_id: str, value: str, ttl_ms: int, replace: str = "") -> bool:
        """Claim ``worker_id`` for ``value`` if unclaimed, already ``value``'s, or held by ``replace``
        (atomically); False when another process holds it."""
        return int(self._claim(keys=[claim_key(worker_id)], args=[value, int(ttl_ms), replace])) == 1

    def renew_claim(self, worker_id: str, value: str, ttl_ms: int) -> bool:
        """Extend our claim by ``ttl_ms``; False when it is no longer ours."""
        return int(self._renew(keys=[claim_key(worker_id)], args=[value, int(ttl_ms)])) == 1

    def release_claim(self, worker_id: str, value: str) -> bool:
        """Give the worker id up (only if the claim is still ours)."""
        return int(self._release(keys=[claim_key(worker_id)], args=[value])) == 1

    def claim_of(self, worker_id: str) -> tuple[str | None, int]:
        """The claim's value (None when unclaimed) and its remaining life in ms (``PTTL``)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(claim_key(worker_id))
        pipe.pttl(claim_key(worker_id))
        raw, ttl = pipe.execute()
        return (_text(raw) if raw is not None else None), int(ttl)

    # -- workers ---------------------------------------------------------------------------------------------
    def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None:
        """Register or refresh a worker (its key lives ``ttl_ms`` unless refreshed)."""
        payload = json.dumps({"host": info.host, "pid": info.pid, "slots": info.slots, "held": info.held,
                              "started_at": info.started_at}, separators=(",", ":"))  # fmt: skip
        pipe = self.client.pipeline()
        pipe.sadd(WORKERS_KEY, info.worker_id)
        pipe.set(worker_key(info.worker_id), payload, px=int(ttl_ms))
        pipe.execute()

    def unregister(self, worker_id: str) -> None:
        """Remove a worker's heartbeat at a clean stop (its leases are released separately)."""
        pipe = self.client.pipeline()
        pipe.delete(worker_key(worker_id))
        pipe.srem(WORKERS_KEY, worker_id)
        pipe.execute()

    def live_workers(self) -> dict[str, WorkerInfo]:
        """Workers whose heartbeat has not expired (ids whose heartbeat is gone are dropped from the set)."""
        ids = sorted(_text(m) for m in self.client.smembers(WORKERS_KEY))
        if not ids:
            return {}
        out: dict[str, WorkerInfo] = {}
        dead: list[str] = []
        for worker_id, raw in zip(ids, self.client.mget([worker_key(w) for w in ids]), strict=True):
            if raw is None:
                dead.append(worker_id)
                continue
            info = parse_heartbeat(worker_id, raw)
            if info is None:
                logger.warning("worker %s has a malformed heartbeat; ignoring it", worker_id)
            else:
                out[worker_id] = info
        if dead:
            self.client.srem(WORKERS_KEY, *dead)
        return out

    def heartbeat_of(self, worker_id: str) -> tuple[WorkerInfo | None, int]:
        """One worker's heartbeat (None when absent or malformed) and its key's remaining life in ms (``PTTL``:
        -2 when absent)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(worker_key(worker_id))
        pipe.pttl(worker_key(worker_id))
        raw, ttl = pipe.execute()
        return (parse_heartbeat(worker_id, raw) if raw is not None else None), int(ttl)


def parse_heartbeat(worker_id: str, raw: Any) -> WorkerInfo | None:
    """A worker's heartbeat JSON as a :class:`WorkerInfo` (None when malformed)."""
    try:
        data = json.loads(_text(raw))
        return WorkerInfo(worker_id, str(data["host"]), int(data["pid"]), int(data["slots"]), int(data["held"]),
                          float(data["started_at"]))
    except (ValueError, KeyError, TypeError):
        return None


class WorkerIdInUseError(ValueError):
    """A configured worker id that another live worker process already uses."""


class WorkerIdClaim:
    """This process's claim on its worker id: refreshed by a daemon thread every third of its TTL until
    :meth:`release`. Should it find the id claimed by another process (it could not reach Redis for longer than the
    TTL, and a twin took the id), it calls ``on_lost`` once: the worker must stop."""

    def __init__(self, store: LeaseStore, worker_id: str, value: str, ttl_ms: int) -> None:
        self.store = store
        self.worker_id = worker_id
        self.value = value
        self.ttl_ms = int(ttl_ms)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_lost: Callable[[], None] = lambda: None) -> WorkerIdClaim:
        """Start refreshing the claim (once)."""
        self._thread = threading.Thread(target=self._keep, args=(on_lost,), name="worker-id-claim", daemon=True)
        self._thread.start()
        return self

    def refresh(self) -> bool:
        """Extend the claim (or take it again if it vanished, e.g. a Redis failover); False when another process
        holds it now. Redis errors propagate."""
        return (self.store.renew_claim(self.worker_id, self.value, self.ttl_ms)
                or self.store.claim(self.worker_id, self.value, self.ttl_ms))

    def _keep(self, on_lost: Callable[[], None]) -> None:
        while not self._stop.wait(self.ttl_ms / 3000.0):
            try:
                if self.refresh():
                    continue
            except (redis.RedisError, OSError) as exc:
                logger.warning("worker %s: worker id claim not refreshed (%s); retrying", self.worker_id, exc)
                continue
            holder, _ = self.store.claim_of(self.worker_id)
            logger.error("worker %s: the worker id is now claimed by another process (%s); stopping",
                         self.worker_id, holder)
            self.lost.set()
            on_lost()
            return

    def release(self) -> None:
        """Stop refreshing and give the id up (a clean stop: the next start need not wait for its expiry)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        try:
            self.store.release_claim(self.worker_id, self.value)
        except (redis.RedisError, OSError) as exc:
            logger.warning("worker %s: worker id claim not released (%s); it expires by itself", self.worker_id, exc)


def _in_use(worker_id: str, host: str, pid: int, started_at: float | None = None) -> WorkerIdInUseError:
    started = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started_at))}" if started_at else ""
    return WorkerIdInUseError(
        f"worker id {worker_id!r} is in use by a live worker on {host} (pid {pid}{started}): give each worker "
        "process its own --worker-id, or leave it out (host and pid then)")


def _claim_holder(value: str) -> tuple[str, int]:
    """The host and pid of a claim value ``<host>|<pid>|<nonce>`` (pid 0 when malformed)."""
    host, _, rest = value.partition("|")
    pid = rest.partition("|")[0]
    return host, int(pid) if pid.isdigit() else 0


def claim_worker_id(store: LeaseStore, worker_id: str, host: str, pid: int, ttl_s: float,
                    poll_s: float = 0.2) -> WorkerIdClaim:
    """Claim ``worker_id`` for this process atomically (not yet refreshed: :meth:`WorkerIdClaim.start`).

    A claim left by a previous life of this worker (this host, a pid that is gone) is taken over at once. A claim
    of a live process on this host is refused at once; another host's claim is watched for up to ``ttl_s`` plus a
    second: a live twin refreshes it (refused), a dead one lets it expire (then it is ours). Raises
    :class:`WorkerIdInUseError` naming the holder's host and pid."""
    ttl_ms = max(1, int(ttl_s * 1000))
    value = f"{host}|{pid}|{secrets.token_hex(8)}"
    deadline = time.monotonic() + ttl_s + 1.0
    seen: tuple[str, int] | None = None
    while True:
        if store.claim(worker_id, value, ttl_ms):
            return WorkerIdClaim(store, worker_id, value, ttl_ms)
        current, ttl = store.claim_of(worker_id)
        if current is None:
            continue  # expired between the two calls
        c_host, c_pid = _claim_holder(current)
        if c_host == host and 0 < c_pid != pid and not pid_alive(c_pid):  # a crashed previous life of this worker
            if store.claim(worker_id, value, ttl_ms, replace=current):
                return WorkerIdClaim(store, worker_id, value, ttl_ms)
            continue
        if (c_host == host and c_pid > 0) or (seen is not None and (current != seen[0] or ttl > seen[1])):
            raise _in_use(worker_id, c_host, c_pid)
        if time.monotonic() > deadline:
            logger.warning("worker id %r: the claim of %s (pid %d) neither expired nor was renewed in %.1f s; "
                           "taking it over", worker_id, c_host, c_pid, ttl_s + 1.0)
            if store.claim(worker_id, value, ttl_ms, replace=current):
                return WorkerIdClaim(store, worker_id, value, ttl_ms)
            continue
        seen = (current, ttl)
        time.sleep(poll_s)


def check_worker_id_free(store: LeaseStore, worker_id: str, host: str, pid: int, ttl_s: float,
                         poll_s: float = 0.2) -> WorkerIdClaim:
    """Refuse to start a second live worker under ``worker_id`` (a configured id copied to two hosts or started
    twice): both would adopt the same leases and pass the same fence, so every camera they share would be
    analysed and recorded twice.

    The id is first claimed atomically (:func:`claim_worker_id`): of two processes started at the same moment
    with one id, exactly one gets it. Then the heartbeat is checked as well (a twin from before claims existed):
    a heartbeat left by a previous life of this worker is not a twin; on this host when its pid is gone the start
    goes on at once (its cameras are adopted); otherwise the heartbeat is watched for up to ``ttl_s`` (the
    heartbeat's TTL) plus a second: a live twin refreshes it, a dead one lets it expire. Raises
    :class:`WorkerIdInUseError` naming the twin's host and pid. Returns the claim: :meth:`WorkerIdClaim.start` it
    to keep it while the worker runs, and :meth:`WorkerIdClaim.release` it at the stop."""
    claim = claim_worker_id(store, worker_id, host, pid, ttl_s, poll_s)
    try:
        _check_heartbeat_free(store, worker_id, host, pid, ttl_s, poll_s)
    except BaseException:
        claim.release()
        raise
    return claim


def _check_heartbeat_free(store: LeaseStore, worker_id: str, host: str, pid: int, ttl_s: float,
                          poll_s: float) -> None:
    """Raise :class:`WorkerIdInUseError` when another live worker renews ``worker_id``'s heartbeat."""
    info, ttl = store.heartbeat_of(worker_id)
    if info is None or (info.host == host and (info.pid == pid or not pid_alive(info.pid))):
        return
    deadline = time.monotonic() + ttl_s + 1.0
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        now_info, now_ttl = store.heartbeat_of(worker_id)
        if now_info is None:
            return
        if now_ttl > ttl or now_info != info:  # rewritten since the last look: its worker is alive
            raise _in_use(worker_id, now_info.host, now_info.pid, now_info.started_at)
        ttl = now_ttl
    logger.warning("worker id %r: the heartbeat of %s (pid %d) neither expired nor was renewed in %.1f s; "
                   "starting anyway", worker_id, info.host, info.pid, ttl_s + 1.0)
