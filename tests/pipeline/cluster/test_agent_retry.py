"""The lease keeper while Redis fails over: a refused or timed-out renewal is tried again soon with a bounded
backoff (not a period later, never in a tight loop), the deadline moves only with a good renewal (fencing as
before), a failed step does not leave a past wake-up that would step again at every pass of the supervisor, and
renewals use a client with short timeouts and no retries inside redis-py. The real failover is in
tests/cluster/test_redis_primary_hang.py."""

from __future__ import annotations

import threading
import time

import redis

from pipeline.cluster.agent import Agent, HeldLease, LeaseKeeper, lease_client, renew_timeout_s
from pipeline.config import ClusterConfig
from tests.conftest import wait_for

NOREPLICAS = "NOREPLICAS Not enough good replicas to write."


class FlakyStore:
    """A :class:`~pipeline.cluster.leases.LeaseStore` stand-in whose first ``fail`` renewals are refused the way a
    newly promoted primary refuses them (``NOREPLICAS``); ``fail < 0``: refused for ever."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.calls: list[float] = []
        self.lock = threading.Lock()

    def renew(self, camera_id: str, worker_id: str, token: int, ttl_ms: int) -> bool:
        with self.lock:
            self.calls.append(time.monotonic())
            n = len(self.calls)
        if self.fail < 0 or n <= self.fail:
            raise redis.ResponseError(NOREPLICAS)
        return True

    def heartbeat(self, info: object, ttl_ms: int) -> None:
        return None

    def live_workers(self) -> dict:
        raise redis.ConnectionError("No master found for 'cctv'")


def agent_holding(store: FlakyStore, ttl_s: float, renew_s: float, deadline_in_s: float) -> Agent:
    agent = Agent(store, "w-1", "host-1", 1, ClusterConfig(lease_ttl_s=ttl_s, renew_interval_s=renew_s))  # type: ignore[arg-type]
    now = time.monotonic()
    agent.held["c-1"] = HeldLease(7, now + deadline_in_s, now)
    return agent


def test_a_refused_renewal_is_retried_soon_with_backoff_then_the_period_resumes() -> None:
    store = FlakyStore(fail=3)
    agent = agent_holding(store, ttl_s=30, renew_s=10, deadline_in_s=29)
    deadline_before = agent.held["c-1"].deadline
    lost: list[str] = []
    keeper = LeaseKeeper(agent, lost.append).start()
    try:
        # three refusals and the good renewal, long before the 10 s period would have come round again
        wait_for(lambda: len(store.calls) >= 4, 8, "the refused renewal retried until it went through", poll_s=0.05)
        wait_for(lambda: agent.held["c-1"].deadline > deadline_before, 8, "the good renewal moved the deadline")
        time.sleep(1.0)
        assert len(store.calls) == 4  # renewed: back to one round per renew_interval_s (10 s), no further tries
    finally:
        keeper.stop()
    assert lost == [] and keeper.failures == 3
    gaps = [b - a for a, b in zip(store.calls, store.calls[1:], strict=False)]
    assert all(gap >= LeaseKeeper.RETRY_FIRST_S * 0.9 for gap in gaps), gaps  # a backoff, not a tight loop


def test_the_backoff_doubles_up_to_a_second_or_the_renewal_period() -> None:
    keeper = LeaseKeeper(agent_holding(FlakyStore(0), ttl_s=30, renew_s=10, deadline_in_s=29), lambda cam: None)
    assert [keeper.retry_wait_s(n) for n in range(6)] == [10, 0.2, 0.4, 0.8, 1.0, 1.0]
    short = LeaseKeeper(agent_holding(FlakyStore(0), ttl_s=1.5, renew_s=0.5, deadline_in_s=1), lambda cam: None)
    assert [short.retry_wait_s(n) for n in range(5)] == [0.5, 0.2, 0.4, 0.5, 0.5]


def test_renewals_refused_until_the_deadline_still_stop_the_camera() -> None:
    store = FlakyStore(fail=-1)
    agent = agent_holding(store, ttl_s=30, renew_s=10, deadline_in_s=1.0)
    deadline = agent.held["c-1"].deadline
    lost: list[str] = []
    keeper = LeaseKeeper(agent, lost.append).start()
    try:
        wait_for(lambda: lost == ["c-1"], 20, "the camera stopped at its deadline")
    finally:
        keeper.stop()
    assert time.monotonic() >= deadline and "c-1" not in agent.held
    assert len(store.calls) >= 2  # tried again before the deadline (not a period later)


def test_a_failed_step_leaves_no_past_wake_up() -> None:
    agent = agent_holding(FlakyStore(0), ttl_s=30, renew_s=10, deadline_in_s=29)
    agent.wake_at = agent.clock() - 1.0  # a suspect peer's leases ran out: the supervisor steps now
    agent.step(renew=False)  # Redis has no primary yet: the step gives up
    assert agent.wake_at is None  # else the supervisor would step again at every pass (10 a second)


def test_renewals_use_short_timeouts_and_no_library_retries(redis_url: str) -> None:
    settings = ClusterConfig(lease_ttl_s=8, renew_interval_s=1.5)
    client = lease_client(redis_url, settings)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == renew_timeout_s(settings) == 0.8
        assert kwargs["retry"].get_retries() == 0
        assert client.ping()
    finally:
        client.close()
    assert renew_timeout_s(ClusterConfig(lease_ttl_s=1, renew_interval_s=0.3)) == 0.25
    assert renew_timeout_s(ClusterConfig(lease_ttl_s=60, renew_interval_s=5)) == 1.0
