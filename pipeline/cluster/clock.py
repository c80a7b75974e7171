"""A worker host's clock, checked against the Redis server's (``TIME``): one clock for the whole cluster.

Segments are indexed and events stamped with the worker's own clock, so a host whose clock is wrong puts its
recordings at the wrong place on the timeline (interleaved with another host's real ones, or in the future, where
exports refuse them). README asks for NTP; this module checks it:

- :func:`measure_offset`: this host's clock less Redis's, from the middle of the round trip of ``TIME`` (the best
  of a few samples: the one with the shortest round trip); the true offset lies within half the round trip of it,
  so :attr:`ClockReading.skew_s` (how far off the clock is *at least*) is the offset less that half.
- :class:`ClockWatch`: checks at start and every ``cluster.clock_check_s`` (30 s). Beyond ``cluster.clock_warn_s``
  (2 s) an ERROR names the host and the offset; beyond ``cluster.clock_refuse_s`` (30 s) this process takes no
  camera lease until the clock is right (:func:`pipeline.cluster.leases.set_acquire_guard`): recording with a wrong
  clock is worse than letting a healthy host take the camera. Leases it holds already are kept (a clock that jumps
  mid-run is reported, and the cameras stay recorded rather than going dark where no other host can take them).
- The last reading is reported in ``cctv:cluster:clock:<host>`` (JSON, expires after three checks missed), read by
  ``cluster status`` and ``/api/health`` (:func:`read_clock_reports`): a host beyond ``clock_warn_s`` makes the
  health ``degraded`` and is named there.

The check measures against Redis: the Redis host's clock must be right too (NTP); every worker then reports the same
offset.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.config import ClusterConfig

logger = logging.getLogger(__name__)

CLOCK_PREFIX = "cctv:cluster:clock:"
SAMPLES = 3
REPEAT_ERROR_S = 600.0
"""While a clock stays wrong, its ERROR is repeated this often (and at every change of state)."""


def clock_key(host: str) -> str:
    """Redis key of a host's last clock reading."""
    return CLOCK_PREFIX + host


@dataclass(frozen=True)
class ClockReading:
    """One measurement: ``offset_s`` = this host's clock less Redis's (positive: ahead), ``rtt_s`` its round trip."""

    offset_s: float
    rtt_s: float

    @property
    def skew_s(self) -> float:
        """How far off this clock is at least (the offset less the round trip's uncertainty, half of it)."""
        return max(0.0, abs(self.offset_s) - self.rtt_s / 2.0)


def measure_offset(client: Any, now: Callable[[], float] = time.time, samples: int = SAMPLES) -> ClockReading:
    """This host's clock (``now``) against Redis ``TIME``: the sample with the shortest round trip of ``samples``.

    Raises ``redis.RedisError`` / ``OSError`` when Redis cannot be reached."""
    best: ClockReading | None = None
    for _ in range(max(1, samples)):
        before = now()
        seconds, micros = client.time()
        after = now()
        reading = ClockReading((before + after) / 2.0 - (int(seconds) + int(micros) / 1e6), max(0.0, after - before))
        if best is None or reading.rtt_s < best.rtt_s:
            best = reading
    assert best is not None
    return best


def judge(reading: ClockReading, settings: ClusterConfig) -> str:
    """``ok``, ``skewed`` (beyond ``clock_warn_s``) or ``refusing`` (beyond ``clock_refuse_s``: no new lease)."""
    if reading.skew_s > settings.clock_refuse_s:
        return "refusing"
    if reading.skew_s > settings.clock_warn_s:
        return "skewed"
    return "ok"


class ClockWatch:
    """The clock check of one worker process (see the module docstring).

    ``now`` is the clock checked (tests inject an offset through it, e.g. ``lambda: time.time() - 120``);
    ``settings`` fixes the bounds, else they are read from the configuration in Redis (``cluster`` section)."""

    def __init__(self, client: Any, host: str, now: Callable[[], float] = time.time,
                 settings: ClusterConfig | None = None) -> None:  # fmt: skip
        self.client = client
        self.host = host
        self.now = now
        self.fixed = settings
        self.settings = settings or ClusterConfig()
        self.reading: ClockReading | None = None
        self.state = "unknown"
        self._version = -1
        self._next_error = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the check ---------------------------------------------------------------------------------------------
    def check(self) -> str:
        """Measure, judge, log and report once; returns the state (unchanged when Redis cannot be reached)."""
        self._refresh_settings()
        try:
            reading = measure_offset(self.client, self.now)
        except (redis.RedisError, OSError) as exc:
            logger.debug("clock of %s not checked: Redis unreachable (%s)", self.host, exc)
            return self.state
        state = judge(reading, self.settings)
        self._log(reading, state)
        self.reading, self.state = reading, state
        self._report(reading, state)
        return state

    def lease_refusal(self) -> str | None:
        """Why this process must take no camera lease now (None: it may). The acquire guard of the leases."""
        if self.state != "refusing" or self.reading is None:
            return None
        return (f"the clock of {self.host} is {self.reading.offset_s:+.1f} s off Redis's (more than "
                f"cluster.clock_refuse_s = {self.settings.clock_refuse_s:g} s)")

    def _refresh_settings(self) -> None:
        """The ``cluster`` section of the configuration in Redis, when its version moved (defaults meanwhile)."""
        if self.fixed is not None:
            return
        from pipeline.cluster.configstore import config_version, load_cluster_config
        from pipeline.config import ConfigError

        try:
            version = config_version(self.client)
            if version == self._version:
                return
            stored = load_cluster_config(self.client)
        except (redis.RedisError, OSError, ConfigError) as exc:
            logger.debug("clock check: configuration not read (%s); bounds unchanged", exc)
            return
        self._version = version
        if stored is not None:
            self.settings = stored.config.cluster

    def _log(self, reading: ClockReading, state: str) -> None:
        """ERROR when the clock is off (at a change, and every :data:`REPEAT_ERROR_S` while it stays off), INFO
        when it is right again."""
        mono = time.monotonic()
        if state == "ok":
            if self.state in ("skewed", "refusing"):
                logger.info("clock of %s is right again: %+.3f s off Redis's (round trip %.3f s)", self.host,
                            reading.offset_s, reading.rtt_s)  # fmt: skip
            return
        if state == self.state and mono < self._next_error:
            return
        self._next_error = mono + REPEAT_ERROR_S
        if state == "refusing":
            logger.error("clock of host %s is %+.1f s off the Redis server's (round trip %.3f s; more than "
                         "cluster.clock_refuse_s = %g s): this worker takes NO camera lease until the clock is "
                         "right (fix NTP on %s)", self.host, reading.offset_s, reading.rtt_s,
                         self.settings.clock_refuse_s, self.host)  # fmt: skip
        else:
            logger.error("clock of host %s is %+.1f s off the Redis server's (round trip %.3f s; more than "
                         "cluster.clock_warn_s = %g s): its recordings and events are misplaced on the timeline "
                         "(fix NTP on %s)", self.host, reading.offset_s, reading.rtt_s, self.settings.clock_warn_s,
                         self.host)  # fmt: skip

    def _report(self, reading: ClockReading, state: str) -> None:
        """``cctv:cluster:clock:<host>``: the reading, for ``cluster status`` and ``/api/health``."""
        report = {"host": self.host, "pid": os.getpid(), "offset_s": round(reading.offset_s, 3),
                  "rtt_s": round(reading.rtt_s, 4), "state": state, "warn_s": self.settings.clock_warn_s,
                  "refuse_s": self.settings.clock_refuse_s}  # fmt: skip
        ttl_ms = int(3 * self.settings.clock_check_s * 1000 + 5000)
        try:
            self.client.set(clock_key(self.host), json.dumps(report), px=ttl_ms)
        except (redis.RedisError, OSError) as exc:
            logger.debug("clock reading of %s not reported: %s", self.host, exc)

    # -- the thread --------------------------------------------------------------------------------------------
    def start(self, install_guard: bool = True) -> ClockWatch:
        """Check once now, make :meth:`lease_refusal` this process's lease guard, then check every
        ``clock_check_s`` in a daemon thread."""
        self.check()
        if install_guard:
            from pipeline.cluster.leases import set_acquire_guard

            set_acquire_guard(self.lease_refusal)
        self._thread = threading.Thread(target=self._loop, name="clock-check", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (the guard stays: call ``set_acquire_guard(None)`` to drop it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.clock_check_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a bug here must not end the checks for good
                logger.exception("clock check of %s failed", self.host)


def read_clock_reports(client: Any, hosts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The last clock reading of each of ``hosts`` that reported one (host -> report)."""
    names = sorted(set(hosts))
    if not names:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for host, raw in zip(names, client.mget([clock_key(h) for h in names]), strict=True):
        if raw is None:
            continue
        try:
            out[host] = json.loads(raw)
        except (ValueError, TypeError):
            continue
    return out


def clock_problems(client: Any) -> list[dict[str, Any]]:
    """Live workers' hosts whose clock is off (``skewed`` or ``refusing``): ``{host, offset_s, state}`` each."""
    from pipeline.cluster.leases import LeaseStore

    hosts = {w.host for w in LeaseStore(client).live_workers().values()}
    return [{"host": host, "offset_s": float(r.get("offset_s", 0.0)), "state": str(r.get("state"))}
            for host, r in sorted(read_clock_reports(client, hosts).items())
            if r.get("state") in ("skewed", "refusing")]  # fmt: skip
