"""A vehicle crop whose upright plate search finds nothing takes its plate from the whole-frame window when that
window found an upright plate in the vehicle's box (``engine.plates_whole_frame``): no turned second look for it
(two detector windows saved, and the frame's upright box instead of a turned look's loose hull), and the plate is
read as that vehicle's. Detector doubles; the real cascade's counterpart is in
``tests/pipeline/models/test_plate_cascade_merge.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.detections import Detections
from pipeline.engine.engine import Engine
from pipeline.plates.types import PlateRead

pytestmark = pytest.mark.timeout(60)

FRAME_HW = (360, 640)
VEHICLE = [200.0, 60.0, 360.0, 260.0]  # a motorcycle seen from behind
PLATE = [250.0, 230.0, 310.0, 270.0]  # its plate, hanging below the seat: centre inside the vehicle box


class _Vehicles:
    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        return [Detections(np.float32([VEHICLE]), np.float32([0.9]), np.int32([3])) for _ in frames]


class _Plates:
    """Finds nothing on vehicle crops; on a whole frame finds :data:`PLATE` when ``whole_frame_finds``; records the
    crops that were due a turned look."""

    tile = 480

    def coarse_tile(self, image_hw: tuple[int, ...], crop: bool = False) -> int:
        return self.tile

    def __init__(self, whole_frame_finds: bool) -> None:
        self.whole_frame_finds = whole_frame_finds
        self.turned: list[tuple[int, ...]] = []  # the shape of each image searched turned

    def detect_batch(self, images: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        out = []
        for image in images:
            if image.shape[:2] == FRAME_HW and self.whole_frame_finds:
                box = np.float32([PLATE])
                out.append(Detections(box, np.float32([0.7]), np.int32([0]), None, {"reading_xyxy": box.copy()}))
            else:
                out.append(Detections(data={"reading_xyxy": np.zeros((0, 4), np.float32)}))
        return out

    def look_again(self, crops: list[np.ndarray], found: list[Detections], min_confidence: float = 0.0,
                   eligible: list[int] | None = None, tiles: list[int] | None = None) -> list[Detections]:
        self.turned.extend(crops[k].shape[:2] for k in (range(len(crops)) if eligible is None else eligible))
        return found


class _Models:
    def __init__(self, whole_frame_finds: bool) -> None:
        self.vehicles, self.plates = _Vehicles(), _Plates(whole_frame_finds)


class _Reader:
    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def read_batch(self, crops: list[np.ndarray], layouts: Any = None) -> list[PlateRead]:
        self.shapes += [c.shape for c in crops]
        return [PlateRead(text="1กข1234", confidence=0.95, char_confidences=[0.95] * 7, valid=True,
                          province="กรุงเทพมหานคร", province_confidence=0.95) for _ in crops]


class _Frame:
    def __init__(self, t: float) -> None:
        self.camera_id, self.capture_time, self.frame_no = "cam", t, int(t * 10)
        self.frame = np.random.default_rng(int(t * 10)).integers(0, 255, (*FRAME_HW, 3)).astype(np.uint8)


def _run(whole_frame_finds: bool, tmp_path: Any) -> tuple[_Models, _Reader, Engine]:
    config = Config.model_validate({
        "engine": {"device": "cpu", "plates_whole_frame": "window", "plate_second_look": True,
                   "plate_rectification": False, "detection_schedule": "every_frame"},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False}}]})
    models, reader = _Models(whole_frame_finds), _Reader()
    engine = Engine(config, models, reader, recordings_dir=tmp_path)
    engine.process_batch([_Frame(0.0)])
    return models, reader, engine


def test_a_vehicle_whose_plate_the_whole_frame_holds_gets_no_turned_look_and_reads_it(tmp_path: Any) -> None:
    models, reader, engine = _run(True, tmp_path)
    assert models.plates.turned == []
    assert engine.metrics.counters.get("plate_only_jobs", 0) == 0  # the plate stays the motorcycle's
    assert len(reader.shapes) == 1  # read once, as the vehicle's plate
    h, w = reader.shapes[0][:2]
    assert w >= PLATE[2] - PLATE[0] and h >= PLATE[3] - PLATE[1]  # cut around the frame's box (with its pad)


def test_without_a_whole_frame_plate_the_vehicle_crop_gets_its_turned_look(tmp_path: Any) -> None:
    models, reader, _ = _run(False, tmp_path)
    whole, crop = models.plates.turned  # the whole frame (nothing found there either), then the vehicle crop
    assert whole == FRAME_HW and crop != FRAME_HW
    assert reader.shapes == []


def test_latencies_of_versions_never_delivered_are_forgotten_oldest_first(tmp_path: Any) -> None:
    """Capture times of published versions wait for their delivery (event latency); versions that are never
    delivered (dropped) are forgotten oldest first, so the latency of what is delivered next is still measured."""
    from types import SimpleNamespace

    import pipeline.engine.engine as engine_module

    config = Config.model_validate({
        "engine": {"device": "cpu"},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False}}]})
    engine = Engine(config, _Models(False), None, recordings_dir=tmp_path, live=True)
    cap = engine_module.MAX_PENDING_LATENCIES
    for k in range(cap + 5):
        engine._trigger_times[(f"ev{k}", 1)] = 100.0 + k
    engine.on_delivered("plate", SimpleNamespace(event_id=f"ev{cap + 4}", version=1))
    assert len(engine._trigger_times) == cap
    assert ("ev0", 1) not in engine._trigger_times and (f"ev{cap + 3}", 1) in engine._trigger_times
    assert len(engine.metrics.event_latency_s) == 1  # the delivered one was measured


def test_event_snapshots_that_cannot_be_written_are_counted_in_the_engine_metrics(tmp_path: Any) -> None:
    """A camera whose snapshot folder cannot be written still publishes its events; the failed writes show in the
    engine's metrics (``event_snapshot_errors``)."""
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "cam").write_text("not a folder")
    _, _, engine = _run(True, tmp_path)
    for k in range(1, 6):
        engine.process_batch([_Frame(float(k))])
    engine.finish()
    assert engine.metrics.counters.get("plate_events", 0) >= 1
    assert engine.metrics.counters.get("event_snapshot_errors", 0) >= 2  # the frame and the plate crop
    assert engine.snapshots.health("cam")["event_snapshot_errors"] == engine.metrics.counters["event_snapshot_errors"]
