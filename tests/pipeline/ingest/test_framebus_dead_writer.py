"""FrameBus: a capture process killed mid-copy into a slot leaves it ``_WRITING``; the slot is reclaimed once that
writer is dead, never while it still runs. Real spawned processes, real SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import pytest

from pipeline.ingest import framebus
from pipeline.ingest.framebus import MP_CONTEXT, FrameBus

pytestmark = pytest.mark.timeout(60)


class _DieMidCopy(np.ndarray):
    """A frame whose copy into the bus never finishes: the writer is SIGKILLed as the copy starts."""

    def reshape(self, *args: Any, **kwargs: Any) -> np.ndarray:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class _StallMidCopy(np.ndarray):
    """A frame whose copy stalls (a live, slow writer) until the process is killed."""

    def reshape(self, *args: Any, **kwargs: Any) -> np.ndarray:
        while True:
            time.sleep(1)


def _publish(bus: FrameBus, kind: str) -> None:
    frame_type = _DieMidCopy if kind == "die" else _StallMidCopy
    bus.publish("cam", np.zeros((4, 4, 3), np.uint8).view(frame_type), 1.0)


def _writing(bus: FrameBus) -> int:
    return int(np.count_nonzero(bus._slots_meta["state"] == framebus._WRITING))


def _start_writer(bus: FrameBus, kind: str) -> Any:
    child = MP_CONTEXT.Process(target=_publish, args=(bus, kind))
    child.start()
    deadline = time.monotonic() + 30
    while not _writing(bus) and time.monotonic() < deadline and (kind == "stall" or child.is_alive()):
        time.sleep(0.01)
    return child


def test_a_slot_left_writing_by_a_killed_capture_process_is_reclaimed() -> None:
    with FrameBus(["cam"], queue_size=1, max_width=8, hold_slots=0) as bus:
        child = _start_writer(bus, "die")
        child.join(30)
        assert child.exitcode == -signal.SIGKILL and _writing(bus) == 1
        bus.publish("cam", np.full((4, 4, 3), 7, np.uint8), 2.0)  # the only slot: reclaimed from the dead writer
        (item,) = bus.get_batch(1, 0.5, copy=True)
        assert int(item.frame[0, 0, 0]) == 7 and bus.dropped("cam") == 0 and _writing(bus) == 0


def test_reclaim_dead_writers_frees_only_dead_writers_slots() -> None:
    with FrameBus(["cam"], queue_size=2, max_width=8, hold_slots=0) as bus:
        stalled = _start_writer(bus, "stall")
        try:
            assert _writing(bus) == 1
            assert bus.reclaim_dead_writers() == 0  # its writer still runs: never taken from it
            bus.publish("cam", np.full((4, 4, 3), 1, np.uint8), 2.0)
            bus.publish("cam", np.full((4, 4, 3), 2, np.uint8), 3.0)  # no free slot: drops the oldest ready one
            assert _writing(bus) == 1 and bus.depth("cam") == 1
        finally:
            stalled.kill()
            stalled.join(30)
        assert bus.reclaim_dead_writers() == 1 and _writing(bus) == 0


def test_a_reused_pid_is_not_the_writer_but_the_live_writer_is() -> None:
    with FrameBus(["cam"], queue_size=2, max_width=8, hold_slots=0) as bus:
        pid, start = framebus._writer_identity()
        meta = bus._slots_meta[0]
        meta["state"][:] = framebus._WRITING
        meta["writer_pid"][:] = pid
        meta["writer_start"][0] = start  # this live process
        meta["writer_start"][1] = start - 1 if start else 1  # a process that had this pid before
        expected = 1 if start else 0  # without /proc start times, a live pid always counts as the writer
        assert bus.reclaim_dead_writers() == expected
        assert meta["state"][0] == framebus._WRITING
