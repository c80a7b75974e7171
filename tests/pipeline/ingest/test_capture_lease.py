"""A capture on a camera lease fences itself: its :class:`~pipeline.ingest.framebus.LeaseFlag` counts as set once
the lease's deadline passed without a renewal, and the capture child then stops its ffmpeg (one SIGINT, SIGKILL
after a grace) by itself, even while Redis does not answer (a host cut off from Redis, its supervisor blocked)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.config import parse_config
from pipeline.ingest.framebus import LeaseFlag
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"


def test_a_lease_flag_sets_itself_at_its_deadline_and_stays_set() -> None:
    flag = LeaseFlag()
    assert not flag.is_set() and flag.token == 0 and flag.deadline == 0.0  # no lease: never expires by itself
    flag.renew(7, time.monotonic() + 60)
    assert not flag.is_set() and flag.token == 7
    flag.renew(7, time.monotonic() + 0.2)
    wait_for(flag.is_set, 30, "the deadline to pass")
    flag.renew(7, time.monotonic() + 60)  # a renewal after the deadline cannot take the stop back
    assert flag.is_set()


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server accepts connections and never answers (a partition: every call times out)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.mark.timeout(180)
def test_a_capture_cut_off_from_redis_stops_ffmpeg_at_its_lease_deadline(
    h264_cameras: TestCameraServer, silent_redis: str, tmp_path: Path
) -> None:
    config = parse_config("ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n"
                          f"cameras:\n  - {{id: p-1, name: P, url: '{h264_cameras.url(CLIP)}', "
                          "analytics: {plates: false, faces: false}}\n")  # fmt: skip
    flag = LeaseFlag()
    flag.renew(3, time.monotonic() + 3600)
    worker = CaptureWorkerProcess(config.cameras, config.ingest, None, silent_redis, tmp_path, stop_event=flag).start()
    try:
        found: list[psutil.Process] = []

        def ffmpeg_running() -> bool:
            found[:] = [p for p in psutil.Process(worker.process.pid).children(recursive=True) if p.name() == "ffmpeg"]
            return bool(found)

        wait_for(ffmpeg_running, 60, "the capture's ffmpeg")
        wait_for(lambda: list((tmp_path / "p-1").glob("*/*/*.mkv")), 60, "a segment closed (its indexing hangs)")
        flag.renew(3, time.monotonic() + 1.0)  # the last renewal: nobody renews after this
        deadline = time.monotonic() + 1.0
        _, alive = psutil.wait_procs(found, timeout=30)
        assert not alive, "ffmpeg still running 29 s after the lease's deadline"
        stopped_s = time.monotonic() - deadline
        print(f"\nffmpeg stopped {stopped_s:.1f} s after the lease deadline (Redis not answering)")
        assert stopped_s < 15  # the capture's own stop, not its threads' Redis timeouts (5 s per call)
        assert flag.is_set()
    finally:
        worker.stop(timeout_s=30)
