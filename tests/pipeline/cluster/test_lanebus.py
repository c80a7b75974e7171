"""The lane bus: lanes handed to cameras while it runs, in a real child process, with the fencing token carried."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cluster.lanebus import LaneBus
from pipeline.ingest.framebus import MP_CONTEXT


def _produce(bus: LaneBus, camera_id: str, n: int) -> None:
    for i in range(n):
        bus.publish(camera_id, np.full((8, 8, 3), i, np.uint8), 1000.0 + i)
    bus.close()


def test_lanes_follow_assignments_across_processes() -> None:
    bus = LaneBus(2, queue_size=4, max_width=16)
    try:
        assert bus.assign("cam-a", 7) == 0
        assert bus.assign("cam-b", 3) == 1
        with pytest.raises(RuntimeError, match="no free lane"):
            bus.assign("cam-c", 1)
        child = MP_CONTEXT.Process(target=_produce, args=(bus, "cam-a", 2))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        items = bus.get_batch(8, 5.0, copy=True)
        assert [(i.camera_id, int(i.frame[0, 0, 0])) for i in items] == [("cam-a", 0), ("cam-a", 1)]
        assert bus.fence_token("cam-a") == 7 and bus.fence_token("cam-b") is None
        bus.publish("cam-a", np.zeros((8, 8, 3), np.uint8), 2000.0)
        bus.unassign("cam-a")  # its producer stopped: queued frames go with the lane
        assert bus.depth("cam-b") == 0 and not bus.has_camera("cam-a")
        with pytest.raises(KeyError):
            bus.publish("cam-a", np.zeros((8, 8, 3), np.uint8), 2001.0)
        assert bus.assign("cam-c", 9) == 0  # the freed lane, empty
        assert bus.get_batch(8, 0.2) == []
        bus.publish("cam-c", np.ones((8, 8, 3), np.uint8), 3000.0)
        (item,) = bus.get_batch(8, 5.0, copy=True)
        assert item.camera_id == "cam-c" and item.frame_id == 1
        assert bus.fence_token("cam-c") == 9 and bus.fence_token("cam-a") == 7  # kept for the tracks still ending
    finally:
        bus.close()
        bus.unlink()
