"""Camera leases, fencing tokens, the worker registry and the agent's decisions, against a real Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

from pipeline.cluster.agent import Agent, LeaseKeeper
from pipeline.cluster.leases import (
    LeaseStore,
    WorkerIdInUseError,
    WorkerInfo,
    check_worker_id,
    check_worker_id_free,
    lease_key,
)
from pipeline.config import ClusterConfig
from tests.conftest import RedisServer, wait_for


def test_acquire_renew_release_and_expiry(client: redis.Redis) -> None:
    leases = LeaseStore(client)
    assert leases.acquire("cam-1", "w-a", 400) == 1
    assert leases.acquire("cam-1", "w-b", 400) is None  # held: nobody else gets it
    assert leases.renew("cam-1", "w-a", 1, 400)
    assert not leases.renew("cam-1", "w-b", 1, 400)  # only the holder renews
    assert not leases.renew("cam-1", "w-a", 2, 400)  # with its own token
    assert not leases.release("cam-1", "w-b", 1)
    assert leases.holders(["cam-1", "cam-2"]) == {"cam-1": leases.holders(["cam-1"])["cam-1"], "cam-2": None}
    assert leases.holders(["cam-1"])["cam-1"].worker_id == "w-a"
    wait_for(lambda: client.get(lease_key("cam-1")) is None, 10, "the unrenewed lease to expire", poll_s=0.05)
    assert not leases.renew("cam-1", "w-a", 1, 400)  # expired: renewing is refused, the worker must stop
    assert leases.acquire("cam-1", "w-b", 5000) == 2  # the token only grows
    first, second = leases.token_issued_at("cam-1", 1), leases.token_issued_at("cam-1", 2)
    assert first is not None and second is not None and second > first
    assert leases.current_token("cam-1") == 2
    assert leases.release("cam-1", "w-b", 2)
    assert leases.acquire("cam-1", "w-a", 5000) == 3


def test_worker_registry_drops_expired_heartbeats(client: redis.Redis) -> None:
    leases = LeaseStore(client)
    leases.heartbeat(WorkerInfo("w-a", "host-a", 10, 4, 1, time.time()), 300)
    leases.heartbeat(WorkerInfo("w-b", "host-b", 11, 8, 0, time.time()), 60_000)
    assert set(leases.live_workers()) == {"w-a", "w-b"}
    wait_for(lambda: set(leases.live_workers()) == {"w-b"}, 10, "w-a's heartbeat to expire", poll_s=0.05)
    assert client.smembers("cctv:cluster:workers") == {b"w-b"}
    assert leases.live_workers()["w-b"].slots == 8


def test_worker_ids_are_checked() -> None:
    assert check_worker_id("gpu-01.example:7") == "gpu-01.example:7"
    for bad in ("", "a|b", "a b", "x" * 129, "ไทย"):
        with pytest.raises(ValueError, match="worker id"):
            check_worker_id(bad)


FAST = ClusterConfig(lease_ttl_s=3, renew_interval_s=1, rebalance_interval_s=1, orphan_grace_s=0.5)


def _agent(client: redis.Redis, name: str, slots: int, cameras: list[str], settings: ClusterConfig = FAST,
           clock=time.monotonic) -> Agent:  # fmt: skip
    agent = Agent(LeaseStore(client), name, f"host-{name}", slots, settings, clock=clock)
    agent.set_cameras(cameras)
    return agent


def test_fair_share_then_a_dead_workers_cameras_beyond_it(client: redis.Redis) -> None:
    cams = [f"cam-{i}" for i in range(4)]
    a = _agent(client, "w-a", 8, cams)
    b = _agent(client, "w-b", 8, cams)
    LeaseStore(client).heartbeat(WorkerInfo("w-a", "host-w-a", 1, 8, 0, time.time()), 60_000)  # a registered
    assert len(b.step().acquired) == 2  # b's share: ceil(4 * 8 / 16) = 2
    assert len(a.step().acquired) == 2  # a's share: ceil(4 * 8 / 16) = 2
    assert len(a.step().acquired) == 0 and len(b.step().acquired) == 0
    assert set(a.held) | set(b.held) == set(cams) and not set(a.held) & set(b.held)
    # b dies (stops renewing): its leases expire; a takes them beyond its share after orphan_grace_s,
    # even while b's heartbeat still counts it as alive
    started = time.monotonic()
    wait_for(lambda: len(a.step().acquired) >= 0 and len(a.held) == 4, 30, "a to take b's cameras", poll_s=0.3)
    assert time.monotonic() - started < 15
    assert all(LeaseStore(client).current_token(cam) == (2 if cam in b.held else 1) for cam in cams)


def test_a_joining_worker_gets_cameras_one_move_at_a_time(client: redis.Redis) -> None:
    cams = [f"cam-{i}" for i in range(6)]
    a = _agent(client, "w-a", 8, cams)
    assert len(a.step().acquired) == 6  # alone: everything
    b = _agent(client, "w-b", 8, cams)
    assert b.step().acquired == []  # nothing free: it waits for a to release
    moves = 0
    deadline = time.monotonic() + 60
    while (len(a.held), len(b.held)) != (3, 3) and time.monotonic() < deadline:
        result = a.step()
        assert len(result.release) <= 1  # bounded churn: one camera per rebalance period
        for cam in result.release:
            a.release(cam)  # the caller stops the camera first, then releases it
            moves += 1
            taken = b.step().acquired
            assert [c for c, _ in taken] == [cam]  # the under-loaded worker takes it
            assert taken[0][1] == 2  # a new fencing token
        b.step()
        time.sleep(0.2)
    assert (len(a.held), len(b.held)) == (3, 3)
    assert moves == 3  # no ping-pong
    for _ in range(3):  # balanced: nothing moves any more
        time.sleep(1.1)
        assert a.step().release == [] and b.step().release == []


def test_a_stolen_lease_is_reported_lost(client: redis.Redis) -> None:
    a = _agent(client, "w-a", 4, ["cam-x"])
    assert a.step().acquired == [("cam-x", 1)]
    client.delete(lease_key("cam-x"))  # as if it had expired while a was stalled
    assert LeaseStore(client).acquire("cam-x", "w-b", 10_000) == 2
    assert a.step().lost == ["cam-x"]
    assert a.held == {}


def test_deadline_passes_without_renewal(client: redis.Redis) -> None:
    now = [100.0]
    a = _agent(client, "w-a", 4, ["cam-y"], clock=lambda: now[0])
    assert a.step().acquired == [("cam-y", 1)]
    now[0] += FAST.lease_ttl_s - a.safety_s - 0.01
    assert a.check_deadlines() == []
    now[0] += 0.02  # the lease may expire in Redis within the safety margin: stop now
    assert a.check_deadlines() == ["cam-y"]


def test_cameras_removed_from_the_configuration_are_released(client: redis.Redis) -> None:
    a = _agent(client, "w-a", 4, ["cam-1", "cam-2"])
    assert len(a.step().acquired) == 2
    a.set_cameras(["cam-1", "cam-3"])
    result = a.step()
    assert result.release == ["cam-2"] and result.acquired == []  # at its share until cam-2 is given up
    a.release("cam-2")
    assert client.get(lease_key("cam-2")) is None
    assert [c for c, _ in a.step().acquired] == ["cam-3"]
    a.release_all()
    assert LeaseStore(client).live_workers() == {}


def test_a_restarted_worker_with_the_same_id_keeps_its_cameras(client: redis.Redis) -> None:
    a = _agent(client, "w-fixed", 4, ["cam-1"])
    assert a.step().acquired == [("cam-1", 1)]
    again = _agent(client, "w-fixed", 4, ["cam-1"])  # the process restarted within the lease TTL
    assert again.step().acquired == [("cam-1", 1)]  # adopted, same token: nothing to fence


class _CountingLeases(LeaseStore):
    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.renewals = 0

    def renew(self, camera_id: str, worker_id: str, token: int, ttl_ms: int) -> bool:
        self.renewals += 1
        return super().renew(camera_id, worker_id, token, ttl_ms)


def test_redis_unreachable_keeps_cameras_until_their_deadline_then_stops_them(own_redis: RedisServer) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=0.5)
    now = [100.0]
    leases = _CountingLeases(client)
    a = Agent(leases, "w-a", "host-a", 4, FAST, clock=lambda: now[0])
    a.set_cameras(["cam-1", "cam-2", "cam-3"])
    assert len(a.step().acquired) == 3
    own_redis.kill()
    leases.renewals = 0
    assert a.step().lost == []  # within the deadline: keep analysing (a failover may be under way)
    assert leases.renewals == 1  # one failed call tells Redis is away: no timeout per camera
    now[0] += FAST.lease_ttl_s
    assert sorted(a.step().lost) == ["cam-1", "cam-2", "cam-3"]  # past it: another worker may hold them now
    assert a.held == {}
    client.close()


def test_a_full_worker_says_which_cameras_have_no_worker(client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    a = _agent(client, "w-a", 1, ["cam-1", "cam-2"], clock=lambda: now[0])
    assert len(a.step().acquired) == 1
    now[0] += FAST.orphan_grace_s + 0.1
    with caplog.at_level("WARNING", logger="pipeline.cluster.agent"):
        a.step()
        a.step()  # once a minute, not every step
    warnings = [r.getMessage() for r in caplog.records if "have no worker" in r.getMessage()]
    assert len(warnings) == 1 and "1 cameras have no worker" in warnings[0] and "w-a is full (1 slots)" in warnings[0]


def test_after_an_outage_longer_than_the_ttl_each_worker_takes_its_own_cameras_back(own_redis: RedisServer) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=0.5)
    now = [100.0]
    cams = ["cam-0", "cam-1", "cam-2", "cam-3"]
    a = Agent(LeaseStore(client), "w-a", "host-a", 4, FAST, clock=lambda: now[0])
    b = Agent(LeaseStore(client), "w-b", "host-b", 4, FAST, clock=lambda: now[0])
    a.set_cameras(cams)
    b.set_cameras(cams)
    LeaseStore(client).heartbeat(WorkerInfo("w-b", "host-b", 2, 4, 0, time.time()), 60_000)
    assert [c for c, _ in a.step().acquired] == ["cam-0", "cam-1"]  # a's share of 4 cameras over 8 slots
    assert [c for c, _ in b.step().acquired] == ["cam-2", "cam-3"]
    own_redis.kill()  # a failover longer than the lease TTL
    now[0] += FAST.lease_ttl_s
    assert sorted(a.step().lost) == ["cam-0", "cam-1"] and sorted(b.step().lost) == ["cam-2", "cam-3"]
    own_redis.start()
    wait_for(lambda: all(h is None for h in LeaseStore(client).holders(cams).values()), 30, "the old leases to expire")
    assert [c for c, _ in b.step().acquired] == ["cam-2", "cam-3"]  # b steps first, and takes its own back
    assert [c for c, _ in a.step().acquired] == ["cam-0", "cam-1"]
    client.close()


class _SlowRenewals(LeaseStore):
    """Renewals that hang (a Redis that stopped answering) once ``hang`` is set."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.hang = threading.Event()
        self.released = threading.Event()

    def renew(self, camera_id: str, worker_id: str, token: int, ttl_ms: int) -> bool:
        if self.hang.is_set():
            self.released.wait(30)
            raise redis.TimeoutError("renewal timed out")
        return super().renew(camera_id, worker_id, token, ttl_ms)


def test_the_keeper_renews_off_the_loop_and_fences_a_lease_it_cannot_renew(client: redis.Redis) -> None:
    leases = _SlowRenewals(client)
    a = Agent(leases, "w-a", "host-a", 4, FAST)
    a.set_cameras(["cam-1", "cam-2"])
    assert len(a.step().acquired) == 2
    fenced: list[tuple[str, str]] = []
    keeper = LeaseKeeper(a, lambda cam: fenced.append((cam, threading.current_thread().name))).start()
    try:
        # nobody steps for two TTLs (a stalled supervisor loop): the keeper alone keeps both leases
        wait_for(lambda: keeper.renewals >= 3, 30, "three renewal rounds", poll_s=0.05)
        time.sleep(2 * FAST.lease_ttl_s)
        assert sorted(a.held) == ["cam-1", "cam-2"] and fenced == []
        assert all(h is not None and h.worker_id == "w-a" for h in leases.holders(["cam-1", "cam-2"]).values())
        # a renewal now hangs (Redis gone silent): the fence thread stops both cameras at their deadline,
        # while the renewal thread is still waiting
        leases.hang.set()
        wait_for(lambda: len(fenced) == 2, 30, "both cameras fenced", poll_s=0.05)
        assert {name for _, name in fenced} == {"lease-fence"} and a.held == {}
        assert not leases.released.is_set()  # the renewal was still hanging when the cameras were stopped
        leases.hang.clear()
        leases.released.set()  # Redis answers again
        assert sorted(a.step(renew=False).lost) == ["cam-1", "cam-2"]  # and the supervisor hears of them once
        assert a.step(renew=False).lost == []
    finally:
        leases.released.set()
        keeper.stop()


def test_the_keeper_reports_a_lease_redis_refused(client: redis.Redis) -> None:
    a = _agent(client, "w-a", 4, ["cam-x"])
    assert a.step().acquired == [("cam-x", 1)]
    fenced: list[str] = []
    keeper = LeaseKeeper(a, fenced.append).start()
    try:
        client.delete(lease_key("cam-x"))  # expired while the host was frozen, and another worker took it
        assert LeaseStore(client).acquire("cam-x", "w-b", 10_000) == 2
        wait_for(lambda: fenced == ["cam-x"], 30, "the lost lease reported", poll_s=0.05)
        assert a.step(renew=False).lost == ["cam-x"]
    finally:
        keeper.stop()


def test_a_dead_peers_cameras_are_taken_as_soon_as_its_lease_and_heartbeat_run_out(client: redis.Redis) -> None:
    cams = ["cam-0", "cam-1", "cam-2", "cam-3"]
    a = _agent(client, "w-a", 4, cams)
    b = _agent(client, "w-b", 4, cams)
    LeaseStore(client).heartbeat(WorkerInfo("w-b", "host-b", 2, 4, 0, time.time()), 60_000)
    assert len(a.step().acquired) == 2
    assert len(b.step().acquired) == 2  # b's heartbeat now has the lease TTL; then b dies (no more renewals)
    b_cams = sorted(b.held)
    assert a.step().acquired == [] and a.wake_at is None  # b's keys are fresh: nothing suspect
    limit_ms = (FAST.lease_ttl_s - FAST.renew_interval_s - 1.0) * 1000
    wait_for(lambda: 0 <= client.pttl(lease_key(b_cams[0])) < limit_ms, 30, "b to miss a renewal", poll_s=0.05)
    assert a.step().acquired == []  # b still counts: its lease has not run out
    assert a.wake_at is not None
    expiry = max(client.pttl(lease_key(cam)) for cam in b_cams) / 1000.0
    now = time.monotonic()
    assert now + expiry <= a.wake_at <= now + FAST.lease_ttl_s  # once b's keys have run out, not a renewal later
    while time.monotonic() < a.wake_at:
        time.sleep(0.01)
    assert sorted(c for c, _ in a.step().acquired) == b_cams  # in the first step at wake_at: b counted out


def test_a_lease_dropped_by_the_keeper_during_a_step_is_not_taken_again_before_the_supervisor_heard(
        client: redis.Redis) -> None:  # fmt: skip
    """The fence thread drops a lease (its deadline passed while Redis still holds it as ours) in the middle of a
    step: that step must not adopt it again (the supervisor has not stopped its capture yet); the next step reports
    it lost, and only then may it be taken again."""
    now = [100.0]

    class DropDuringStep(LeaseStore):
        agent: Agent | None = None

        def holders(self, camera_ids: list[str]) -> dict:
            found = super().holders(camera_ids)
            if self.agent is not None and now[0] > 102:  # the fence thread acts between take_lost() and _take()
                self.agent.hand_lost(self.agent.check_deadlines())
            return found

    leases = DropDuringStep(client)
    a = Agent(leases, "w-a", "host-a", 4, FAST, clock=lambda: now[0])
    a.set_cameras(["cam-1"])
    leases.agent = a
    assert a.step().acquired == [("cam-1", 1)]
    now[0] += FAST.lease_ttl_s  # past the local deadline; the lease is still ours in Redis (real time)
    result = a.step(renew=False)
    assert result.lost == [] and result.acquired == [] and a.held == {}  # dropped, not adopted behind its back
    result = a.step(renew=False)
    assert result.lost == ["cam-1"]  # the supervisor hears of it (and stops the capture) ...
    assert result.acquired == [("cam-1", 1)]  # ... and it is adopted again in the same step: stopped, then restarted


def test_a_worker_id_a_live_worker_uses_is_refused_and_a_dead_ones_is_not(client: redis.Redis) -> None:
    """A configured worker id started a second time (copied to another host) is refused while its first worker
    renews its heartbeat; a heartbeat left by a dead previous life (a crash) is not a twin."""
    leases = LeaseStore(client)
    twin = WorkerInfo("w-twin", "host-a", 4242, 4, 2, time.time())
    stop = threading.Event()

    def live_twin() -> None:  # renews its heartbeat like a LeaseKeeper (TTL 2 s, every 0.5 s)
        while not stop.is_set():
            leases.heartbeat(twin, 2000)
            stop.wait(0.5)

    thread = threading.Thread(target=live_twin, daemon=True)
    thread.start()
    try:
        wait_for(lambda: leases.heartbeat_of("w-twin")[0] is not None, 10, "the twin's heartbeat")
        started = time.monotonic()
        with pytest.raises(WorkerIdInUseError, match=r"in use by a live worker on host-a \(pid 4242"):
            check_worker_id_free(leases, "w-twin", "host-b", 777, ttl_s=2.0)
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join(10)

    # this host, a pid that is gone: the previous life of this worker; its cameras are adopted at once
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    leases.heartbeat(WorkerInfo("w-crashed", socket.gethostname(), gone.pid, 4, 3, time.time()), 60_000)
    started = time.monotonic()
    check_worker_id_free(leases, "w-crashed", socket.gethostname(), os.getpid(), ttl_s=60.0)
    assert time.monotonic() - started < 5

    # another host's heartbeat that nobody renews: a dead worker; the start waits for it to run out, then goes on
    leases.heartbeat(WorkerInfo("w-moved", "host-old", 99, 4, 1, time.time()), 1500)
    check_worker_id_free(leases, "w-moved", "host-new", os.getpid(), ttl_s=1.5)
    assert leases.heartbeat_of("w-moved") == (None, -2)
    check_worker_id_free(leases, "w-new", "host-new", os.getpid(), ttl_s=5.0)  # never seen: free at once
