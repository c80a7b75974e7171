"""``benchmarks.throughput``'s warm-up waits for every camera of a real frame bus before it measures."""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks import throughput
from pipeline.ingest.framebus import FrameBus


def _counters(bus: FrameBus) -> dict[str, object]:
    return {c: (lambda c=c: bus.published(c)) for c in bus.camera_ids}


def test_a_camera_that_never_sends_a_frame_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with FrameBus(["cam01", "cam02"], queue_size=2, max_width=32) as bus:
        bus.publish("cam01", np.zeros((8, 8, 3), np.uint8), time.time())
        with pytest.raises(SystemExit, match="cam02") as exc:
            throughput.wait_cameras_settled(_counters(bus), 0.0, 0.6, "engine")
        assert "cam01" not in str(exc.value)


def test_settles_after_every_camera_has_sent_a_frame(capsys: pytest.CaptureFixture[str]) -> None:
    with FrameBus(["cam01", "cam02"], queue_size=2, max_width=32) as bus:
        for camera in bus.camera_ids:
            bus.publish(camera, np.zeros((8, 8, 3), np.uint8), time.time())
        start = time.monotonic()
        throughput.wait_cameras_settled(_counters(bus), 0.3, 5.0, "engine")
        assert time.monotonic() - start >= 0.3
    assert "every camera up" in capsys.readouterr().out


def test_negative_settle_is_refused_before_any_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        throughput.main(["--settle", "-1"])
    assert exc.value.code == 2
    assert "--settle" in capsys.readouterr().err
