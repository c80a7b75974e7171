"""FrameBus: shared memory across a real spawned process, drop-oldest, round-robin fairness, release."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline.ingest.framebus import MP_CONTEXT, FrameBus


def _produce(bus: FrameBus, camera_id: str, count: int) -> None:
    for i in range(count):
        frame = np.full((36, 64, 3), i % 256, np.uint8)
        bus.publish(camera_id, frame, capture_time=1000.0 + i)
        time.sleep(0.005)
    bus.close()


@pytest.mark.timeout(60)
def test_frames_cross_processes_without_pickling_images() -> None:
    with FrameBus(["a", "b"], queue_size=64, max_width=64) as bus:
        child = MP_CONTEXT.Process(target=_produce, args=(bus, "b", 20))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert bus.published("b") == 20 and bus.depth("b") == 20 and bus.dropped("b") == 0
        items = bus.get_batch(100, timeout_s=1)
        assert [it.frame_id for it in items] == list(range(1, 21))
        assert [int(it.frame[0, 0, 0]) for it in items] == list(range(20))
        assert items[3].capture_time == 1003.0 and items[0].camera_id == "b"
        assert not items[0].frame.flags.writeable
        for it in items:
            it.release()
        assert bus.depth("b") == 0


def test_full_queue_drops_oldest_and_counts() -> None:
    with FrameBus(["cam"], queue_size=3, max_width=32, hold_slots=1) as bus:
        for i in range(5):
            bus.publish("cam", np.full((8, 8, 3), i, np.uint8), capture_time=float(i))
        assert bus.depth("cam") == 3 and bus.dropped("cam") == 2
        items = bus.get_batch(10, timeout_s=0.1, copy=True)
        assert [int(it.frame[0, 0, 0]) for it in items] == [2, 3, 4]
        assert bus.depth("cam") == 0


def test_held_slots_are_never_overwritten() -> None:
    with FrameBus(["cam"], queue_size=1, max_width=32, hold_slots=1) as bus:
        bus.publish("cam", np.full((4, 4, 3), 7, np.uint8), 0.0)
        (held,) = bus.get_batch(1, 0.1)
        bus.publish("cam", np.full((4, 4, 3), 8, np.uint8), 1.0)
        bus.publish("cam", np.full((4, 4, 3), 9, np.uint8), 2.0)  # queue full: drops 8
        assert int(held.frame[0, 0, 0]) == 7
        assert bus.dropped("cam") == 1
        held.release()
        (latest,) = bus.get_batch(1, 0.1, copy=True)
        assert int(latest.frame[0, 0, 0]) == 9


def test_batch_is_round_robin_across_cameras() -> None:
    with FrameBus(["busy", "quiet1", "quiet2"], queue_size=8, max_width=16) as bus:
        for i in range(8):
            bus.publish("busy", np.zeros((4, 4, 3), np.uint8), float(i))
        bus.publish("quiet1", np.zeros((4, 4, 3), np.uint8), 0.0)
        bus.publish("quiet2", np.zeros((4, 4, 3), np.uint8), 0.0)
        batch = bus.get_batch(3, 0.1, copy=True)
        assert sorted(it.camera_id for it in batch) == ["busy", "quiet1", "quiet2"]


def test_timeout_returns_empty_and_bad_frames_are_refused() -> None:
    with FrameBus(["cam"], queue_size=2, max_width=16) as bus:
        t0 = time.monotonic()
        assert bus.get_batch(4, timeout_s=0.2) == []
        assert time.monotonic() - t0 >= 0.15
        with pytest.raises(ValueError, match="exceeds the bus slot"):
            bus.publish("cam", np.zeros((16, 32, 3), np.uint8), 0.0)
        with pytest.raises(KeyError, match="not on this frame bus"):
            bus.publish("other", np.zeros((4, 4, 3), np.uint8), 0.0)


def _fill(bus: FrameBus, camera_id: str, values: list[int], interval_s: float = 1.0) -> None:
    """Frames showing ``values``, captured ``interval_s`` apart."""
    for v in values:
        bus.publish(camera_id, np.full((4, 4, 3), v, np.uint8), v * interval_s)


def test_a_camera_whose_queue_is_full_gives_its_newest_frame_and_drops_the_older() -> None:
    """An engine a whole queue behind a camera analyses its latest picture (event latency), not the oldest."""
    with FrameBus(["a", "b", "c"], queue_size=2, max_width=16) as bus:
        _fill(bus, "a", [1, 2])  # full
        _fill(bus, "b", [5])  # not full
        _fill(bus, "c", [7, 8])  # full
        batch = bus.get_batch(3, 0.1, copy=True)
        assert [(it.camera_id, int(it.frame[0, 0, 0])) for it in batch] == [("a", 2), ("b", 5), ("c", 8)]
        assert (bus.dropped("a"), bus.dropped("b"), bus.dropped("c")) == (1, 0, 1)
        assert bus.depth("a") == bus.depth("c") == 0


def test_a_full_queue_the_batch_has_room_for_is_taken_whole_in_capture_order() -> None:
    with FrameBus(["a", "b"], queue_size=2, max_width=16) as bus:
        _fill(bus, "a", [1, 2])
        _fill(bus, "b", [5])
        batch = bus.get_batch(4, 0.1, copy=True)
        assert [(it.camera_id, int(it.frame[0, 0, 0])) for it in batch] == [("a", 1), ("b", 5), ("a", 2)]
        assert bus.dropped("a") == 0


def test_a_queue_not_yet_full_is_taken_oldest_first_and_loses_nothing() -> None:
    """Frames 0.2 s apart (5 fps), three waiting of four: the engine is less than ``freshest_lag_s`` behind."""
    with FrameBus(["a", "b"], queue_size=4, max_width=16) as bus:
        _fill(bus, "a", [1, 2, 3], interval_s=0.2)
        _fill(bus, "b", [9], interval_s=0.2)
        batch = bus.get_batch(2, 0.1, copy=True)
        assert sorted((it.camera_id, int(it.frame[0, 0, 0])) for it in batch) == [("a", 1), ("b", 9)]
        assert bus.dropped("a") == 0 and bus.depth("a") == 2


def test_waiting_frames_that_span_the_lag_count_as_behind_even_in_a_queue_not_full() -> None:
    """1 fps with a queue of four: two frames waiting already mean the engine is a second behind the camera."""
    with FrameBus(["a", "b"], queue_size=4, max_width=16, freshest_lag_s=1.0) as bus:
        _fill(bus, "a", [1, 2])
        _fill(bus, "b", [5])
        batch = bus.get_batch(2, 0.1, copy=True)
        assert [(it.camera_id, int(it.frame[0, 0, 0])) for it in batch] == [("a", 2), ("b", 5)]
        assert bus.dropped("a") == 1
    with FrameBus(["a", "b"], queue_size=4, max_width=16, freshest_lag_s=0) as bus:  # 0: a full queue only
        _fill(bus, "a", [1, 2])
        _fill(bus, "b", [5])
        assert int(bus.get_batch(2, 0.1, copy=True)[0].frame[0, 0, 0]) == 1 and bus.dropped("a") == 0


def test_with_freshest_when_full_off_a_full_queue_is_still_taken_oldest_first() -> None:
    with FrameBus(["a", "b"], queue_size=2, max_width=16, freshest_when_full=False) as bus:
        _fill(bus, "a", [1, 2])
        _fill(bus, "b", [3, 4])
        batch = bus.get_batch(2, 0.1, copy=True)
        assert sorted((it.camera_id, int(it.frame[0, 0, 0])) for it in batch) == [("a", 1), ("b", 3)]
        assert bus.dropped("a") == bus.dropped("b") == 0


def test_freshest_when_full_travels_with_the_bus_to_a_child() -> None:
    with FrameBus(["a"], queue_size=2, max_width=16, freshest_when_full=False) as bus:
        assert bus.__getstate__()["freshest_when_full"] is False  # what a spawned child re-attaches with


def _take_and_die(bus: FrameBus, count: int) -> None:
    """A consumer killed while it holds frames (the engine process SIGKILLed mid-batch): never releases them."""
    import os
    import signal

    taken = 0
    deadline = time.monotonic() + 30
    while taken < count and time.monotonic() < deadline:
        taken += len(bus.get_batch(count - taken, timeout_s=0.5))
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.timeout(60)
def test_slots_a_killed_consumer_held_are_reclaimed_by_the_next() -> None:
    """An engine killed holding every slot of a camera left the camera dropping every new frame for the life of
    the bus; the next engine reclaims them when it starts."""
    with FrameBus(["cam"], queue_size=2, max_width=32, hold_slots=2) as bus:
        for i in range(2):
            bus.publish("cam", np.full((4, 4, 3), i, np.uint8), float(i))
        child = MP_CONTEXT.Process(target=_take_and_die, args=(bus, 4))
        child.start()
        while bus.depth("cam") and child.is_alive():  # it takes the first two, then two more
            time.sleep(0.01)
        for i in range(2, 4):
            bus.publish("cam", np.full((4, 4, 3), i, np.uint8), float(i))
        child.join(30)
        assert child.exitcode == -9
        bus.publish("cam", np.full((4, 4, 3), 9, np.uint8), 9.0)
        assert bus.depth("cam") == 0 and bus.dropped("cam") == 1  # every slot held by the dead consumer
        assert bus.reclaim_held() == 4
        bus.publish("cam", np.full((4, 4, 3), 10, np.uint8), 10.0)
        (item,) = bus.get_batch(1, 0.5, copy=True)
        assert int(item.frame[0, 0, 0]) == 10 and bus.dropped("cam") == 1
