"""A hung worker (its supervisor SIGSTOPped) must not go on recording a camera it no longer holds: the capture child
knows its lease's deadline and stops ffmpeg itself, and Redis refuses its segment index entries and health writes
once another worker took the camera (real `pipeline run --role worker` processes, real RTSP camera, real Redis)."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
import redis

from pipeline.cluster.configstore import push_config
from pipeline.cluster.leases import LeaseStore, fence_key
from pipeline.ingest.health import read_camera_health
from pipeline.recording.index import Segment, index_key
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for
from tests.pipeline.cluster.conftest import CLIP, Workers
from tests.pipeline.cluster.test_workers import cameras_yaml, holders, online_on

TTL_S = 5.0
GRACE_S = 10.0  # the capture's own stop (SIGINT, SIGKILL 5 s later if needed) plus slack for a loaded 2-core machine


def ffmpegs_of(pid: int) -> list[psutil.Process]:
    """The ffmpeg processes below process ``pid``."""
    return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "ffmpeg"]


def gone(process: psutil.Process) -> bool:
    """Whether ``process`` has exited (a zombie waiting for its frozen grandparent's reaping counts as exited)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def indexed(client: redis.Redis, camera_id: str) -> list[Segment]:
    return [Segment.from_member(m) for m in client.zrange(index_key(camera_id), 0, -1)]


@pytest.mark.timeout(300)
def test_a_frozen_workers_capture_stops_itself_and_writes_nothing_after_its_lease(
    h264_cameras: TestCameraServer, workers: Workers, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    cam = "z-1"
    push_config(client, cameras_yaml(h264_cameras.url(CLIP), [cam]))
    a = workers.start("w-a", 2)
    wait_for(lambda: holders(client, [cam])[cam] == "w-a", 90, "w-a to lease z-1")
    wait_for(lambda: online_on(client, cam, "w-a"), 90, "z-1 online on w-a")
    wait_for(lambda: any(s.host == "host-w-a" for s in indexed(client, cam)), 60, "a segment of w-a indexed")
    workers.start("w-b", 2)
    wait_for(lambda: "w-b" in LeaseStore(client).live_workers(), 90, "w-b registered")
    wait_for(lambda: ffmpegs_of(a.pid), 30, "w-a's ffmpeg")
    recording = ffmpegs_of(a.pid)
    token = LeaseStore(client).current_token(cam)
    try:
        os.kill(a.pid, signal.SIGSTOP)  # the supervisor hangs: no renewal, no stop from it any more
        frozen = time.monotonic()
        wait_for(lambda: all(gone(p) for p in recording), TTL_S + GRACE_S,
                 "the frozen worker's ffmpeg to stop within the lease TTL plus a grace")  # fmt: skip
        stopped_s = time.monotonic() - frozen
        print(f"\nffmpeg of the frozen worker stopped {stopped_s:.1f} s after SIGSTOP (lease TTL {TTL_S:.0f} s)")
        wait_for(lambda: holders(client, [cam])[cam] == "w-b", 60, "w-b to take z-1")
        assert LeaseStore(client).current_token(cam) == token + 1
        handed_out = float(client.hget(fence_key(cam), str(token + 1)))  # Redis time of the hand-over
        wait_for(lambda: online_on(client, cam, "w-b"), 90, "z-1 online on w-b")
        wait_for(lambda: sum(s.host == "host-w-b" for s in indexed(client, cam)) >= 3, 90, "segments of w-b")
        segments = indexed(client, cam)
        late = [s for s in segments if s.host == "host-w-a" and s.end > handed_out]
        assert not late, f"w-a's segments indexed past the hand-over at {handed_out:.3f}: {late}"
        ours = [s for s in segments if s.host == "host-w-b"]
        assert all(s.token == token + 1 for s in ours)
        first_b = min(s.start for s in ours)
        assert not [s for s in segments if s.host == "host-w-a" and s.end > first_b + 0.5]  # no interleaving
        health = read_camera_health(client, cam)[0]
        assert (health["host"], health["status"]) == ("host-w-b", "online")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    client.close()
