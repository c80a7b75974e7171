"""A worker's clock checked against Redis TIME: skew found (offset injected through the checked clock, never the
system's), reported in `cluster status`, and no camera lease taken while the clock is far off."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from pipeline.cluster.agent import Agent
from pipeline.cluster.clock import ClockReading, ClockWatch, clock_problems, measure_offset, read_clock_reports
from pipeline.cluster.leases import LeaseStore, WorkerInfo, set_acquire_guard
from pipeline.cluster.roles import cluster_status
from pipeline.config import ClusterConfig

BOUNDS = ClusterConfig(clock_warn_s=2.0, clock_refuse_s=30.0)


def _shifted(offset_s: list[float]):  # noqa: ANN202 - a clock reading time.time() + the current offset
    return lambda: time.time() + offset_s[0]


def test_the_offset_is_measured_around_the_round_trip(client: redis.Redis) -> None:
    reading = measure_offset(client, lambda: time.time() - 120.0)
    assert abs(reading.offset_s + 120.0) < 1.0 + reading.rtt_s  # the host's own clock is NTP-synced
    assert ClockReading(5.0, 4.0).skew_s == 3.0  # half the round trip is uncertainty
    assert ClockReading(-1.0, 4.0).skew_s == 0.0


@pytest.mark.parametrize(("offset_s", "state"), [(0.0, "ok"), (-10.0, "skewed"), (120.0, "refusing"),
                                                 (-300.0, "refusing")])
def test_a_skewed_clock_is_logged_and_reported(client: redis.Redis, caplog: pytest.LogCaptureFixture,
                                               offset_s: float, state: str) -> None:  # fmt: skip
    watch = ClockWatch(client, "host-skew", now=_shifted([offset_s]), settings=BOUNDS)
    with caplog.at_level(logging.INFO, logger="pipeline.cluster.clock"):
        assert watch.check() == state
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    report = read_clock_reports(client, ["host-skew"])["host-skew"]
    assert report["state"] == state and abs(report["offset_s"] - offset_s) < 1.5
    if state == "ok":
        assert not errors and watch.lease_refusal() is None
        return
    assert len(errors) == 1 and "host-skew" in errors[0] and f"{offset_s:+.0f}" in errors[0]
    assert ("NO camera lease" in errors[0]) == (state == "refusing")


def test_no_lease_is_taken_while_the_clock_is_far_off(client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    offset = [-120.0]
    watch = ClockWatch(client, "host-late", now=_shifted(offset), settings=BOUNDS)
    watch.check()
    cams = ["cam-1", "cam-2"]
    late = Agent(LeaseStore(client, guard=watch.lease_refusal), "w-late", "host-late", 4, ClusterConfig())
    late.set_cameras(cams)
    assert late.step().acquired == [] and late.held == {}
    assert LeaseStore(client).holders(cams) == {"cam-1": None, "cam-2": None}
    # a healthy host takes them (the late worker's share too: nobody else took it, orphan_grace_s 0 here)
    healthy = Agent(LeaseStore(client), "w-ok", "host-ok", 4, ClusterConfig(orphan_grace_s=0))
    healthy.set_cameras(cams)
    assert sorted(cam for cam, _ in healthy.step().acquired) == cams
    healthy.release_all()
    offset[0] = 0.0  # NTP fixed the clock: the next check lets it take cameras again
    with caplog.at_level(logging.INFO, logger="pipeline.cluster.clock"):
        assert watch.check() == "ok"
    assert "right again" in caplog.text
    assert sorted(cam for cam, _ in late.step().acquired) == cams


def test_the_process_guard_refuses_every_lease_store(client: redis.Redis) -> None:
    watch = ClockWatch(client, "host-ahead", now=_shifted([300.0]), settings=BOUNDS)
    try:
        watch.start()  # checks at once, then installs itself as this process's guard
        assert LeaseStore(client).acquire("cam-9", "w-a", 5000) is None
        assert client.get("cctv:cluster:lease:cam-9") is None
    finally:
        watch.stop()
        set_acquire_guard(None)
    assert LeaseStore(client).acquire("cam-9", "w-a", 5000) == 1


def test_cluster_status_and_problems_name_the_host(client: redis.Redis) -> None:
    leases = LeaseStore(client)
    leases.heartbeat(WorkerInfo("w-late", "host-late", 10, 4, 0, time.time()), 60_000)
    leases.heartbeat(WorkerInfo("w-ok", "host-ok", 11, 4, 0, time.time()), 60_000)
    ClockWatch(client, "host-late", now=_shifted([-120.0]), settings=BOUNDS).check()
    ClockWatch(client, "host-ok", settings=BOUNDS).check()
    workers = {w["worker"]: w for w in cluster_status(client)["workers"]}
    assert workers["w-late"]["clock"] == "refusing" and workers["w-late"]["clock_offset_s"] < -100
    assert workers["w-ok"]["clock"] == "ok"
    problems = clock_problems(client)
    assert [p["host"] for p in problems] == ["host-late"] and problems[0]["state"] == "refusing"
