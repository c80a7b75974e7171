"""A vehicle whose plate the upright search finds but reads unsure gets a turned look of its crop
(:mod:`pipeline.plates.turned_look`): a better turned read replaces the first, a look that finds nothing better
counts against the track's turned looks, a plate read well costs none. Detector and reader doubles; the real models'
counterpart is ``tests/pipeline/plates/test_plate_turned_look.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.detections import Detections
from pipeline.engine.engine import ROTATED_LOOKS_PER_TRACK, Engine
from pipeline.plates.types import PlateRead

pytestmark = pytest.mark.timeout(60)

FRAME_HW = (360, 640)
VEHICLE = [120.0, 60.0, 440.0, 300.0]
UPRIGHT = [250.0, 200.0, 290.0, 225.0]  # the upright detector's box: part of a rolled plate (crop pixels)
TURNED = [220.0, 180.0, 330.0, 250.0]  # the turned look's hull around the whole plate


def _box(xyxy: list[float], score: float) -> Detections:
    box = np.float32([xyxy])
    return Detections(box, np.float32([score]), np.int32([0]), None, {"reading_xyxy": box.copy()})


class _Vehicles:
    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        return [Detections(np.float32([VEHICLE]), np.float32([0.9]), np.int32([2])) for _ in frames]


class _Plates:
    tile = 480

    def __init__(self, turned_finds: bool) -> None:
        self.turned_finds = turned_finds
        self.rotated: list[tuple[tuple[int, ...], int | None]] = []  # (shape, tile) of each region searched turned

    def coarse_tile(self, image_hw: tuple[int, ...], crop: bool = False) -> int:
        return 999

    def detect_batch(self, images: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        return [Detections(data={"reading_xyxy": np.zeros((0, 4), np.float32)}) if image.shape[:2] == FRAME_HW
                else _box(UPRIGHT, 0.6) for image in images]

    def look_again(self, crops: list[np.ndarray], found: list[Detections], min_confidence: float = 0.0,
                   eligible: list[int] | None = None, tiles: list[int] | None = None) -> list[Detections]:
        return found

    def detect_rotated(self, crops: list[np.ndarray], angles: Any = None, tiles: list[int] | None = None
                       ) -> list[Detections]:
        self.rotated += [(c.shape[:2], None if tiles is None else tiles[k]) for k, c in enumerate(crops)]
        return [_box(TURNED, 0.7) if self.turned_finds else Detections(data={"reading_xyxy": np.zeros((0, 4))})
                for _ in crops]


class _Reader:
    """Reads the wide turned crop well, the narrow upright one (or every crop when ``sure``) as given."""

    def __init__(self, sure: bool) -> None:
        self.sure = sure

    def read_batch(self, crops: list[np.ndarray], layouts: Any = None) -> list[PlateRead]:
        out = []
        for crop in crops:
            good = self.sure or crop.shape[1] > 80
            text, p = ("1กข1234", 0.95) if good else ("กข12", 0.1)
            out.append(PlateRead(text=text, confidence=p, char_confidences=[p] * len(text), valid=True))
        return out


class _Frame:
    def __init__(self, t: float) -> None:
        self.camera_id, self.capture_time, self.frame_no = "cam", t, int(t * 10)
        self.frame = np.random.default_rng(int(t * 10)).integers(0, 255, (*FRAME_HW, 3)).astype(np.uint8)


def _run(turned_finds: bool, sure: bool, tmp_path: Any, frames: int = 6) -> tuple[_Plates, Engine]:
    config = Config.model_validate({
        "engine": {"device": "cpu", "plates_whole_frame": "off", "plate_second_look": True,
                   "plate_rectification": False, "detection_schedule": "every_frame"},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False}}]})
    plates = _Plates(turned_finds)
    models = type("Models", (), {"vehicles": _Vehicles(), "plates": plates})()
    engine = Engine(config, models, _Reader(sure), recordings_dir=tmp_path)
    for k in range(frames):
        engine.process_batch([_Frame(k * 0.5)])
    return plates, engine


def _reads(engine: Engine) -> list[str]:
    return [obs.read.text for state in engine.aggregator.vehicles.values() for obs in state.observations]


def test_an_unsure_plate_is_read_again_from_the_turned_look_of_its_vehicle(tmp_path: Any) -> None:
    plates, engine = _run(turned_finds=True, sure=False, tmp_path=tmp_path, frames=1)
    assert plates.rotated and plates.rotated[0][1] == 999  # the vehicle crop, in coarse tiles
    assert _reads(engine) == ["1กข1234"]  # the turned read replaced the unsure one
    assert engine.metrics.counters.get("unsure_turned_kept") == 1


def test_turned_looks_that_find_nothing_better_stop_after_the_track_limit(tmp_path: Any) -> None:
    plates, engine = _run(turned_finds=False, sure=False, tmp_path=tmp_path)
    assert len(plates.rotated) == ROTATED_LOOKS_PER_TRACK
    assert set(_reads(engine)) == {"กข12"}


def test_a_plate_read_well_gets_no_turned_look(tmp_path: Any) -> None:
    plates, engine = _run(turned_finds=True, sure=True, tmp_path=tmp_path)
    assert plates.rotated == []
    assert set(_reads(engine)) == {"1กข1234"}
