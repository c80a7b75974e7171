"""Work that follows the scene: the detection schedule and plates read only while they can change the answer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.detections import Detections
from pipeline.engine.aggregate import SETTLED_GROWTH, Aggregator, PlateObservation
from pipeline.engine.engine import Engine
from pipeline.engine.schedule import DetectionSchedule, motion_outside
from pipeline.engine.tracking import Tracker
from pipeline.plates.types import PlateRead
from pipeline.plates.voting import vote

pytestmark = pytest.mark.timeout(60)

CROP = np.full((20, 60, 3), 200, dtype=np.uint8)
FRAME = np.zeros((90, 160, 3), dtype=np.uint8)


def _read(text: str, confidence: float = 0.95, province: str | None = "กรุงเทพมหานคร") -> PlateRead:
    return PlateRead(text=text, confidence=confidence, char_confidences=[confidence] * len(text), valid=True,
                     province=province, province_confidence=0.95 if province else 0.0)


def _observe(agg: Aggregator, t: float, read: PlateRead, track: int = 7) -> Any:
    state = agg.vehicle("cam", track, t, 2, 0.8)
    agg.add_plate(state, PlateObservation(read, 1200.0, t, 0.7), CROP, FRAME.copy, [1, 2, 61, 22], [0, 0, 100, 60])
    return state


# -- settled plates ------------------------------------------------------------------------------------------


def test_a_plate_settles_after_agreeing_confident_reads_and_is_looked_at_again_when_the_vehicle_grows() -> None:
    agg = Aggregator(10.0, 1, vote, max_agreeing_reads=8, settle_reads=3, settle_confidence=0.75)
    state = agg.vehicle("cam", 7, 0.0, 2, 0.8)
    t = 0.0
    for _ in range(3):
        assert agg.wants_plate(state, t, 10_000.0)
        _observe(agg, t, _read("1กข1234"))
        t += 0.5
    assert agg.plate_settled(state)
    assert not agg.wants_plate(state, t, 10_000.0)  # same size: nothing a new read could change
    assert not agg.wants_plate(state, t + 0.5, 10_000.0 * (SETTLED_GROWTH - 0.1))
    assert agg.settled_skips == 2
    assert agg.wants_plate(state, t + 1.0, 10_000.0 * SETTLED_GROWTH)  # approaching: a larger plate, look again


@pytest.mark.parametrize("reads", [
    [_read("1กข1234"), _read("1กข1234")],                              # too few agreeing reads
    [_read("1กข1234", 0.3)] * 3,                                        # confident reads only
    [_read("1กข1234", province=None)] * 3,                              # province not read yet
    [_read("1กข1234"), _read("1กข1284"), _read("1กข1234"), _read("1กข1284")],  # two texts still compete
])
def test_a_plate_that_can_still_change_is_not_settled(reads: list[PlateRead]) -> None:
    agg = Aggregator(10.0, 1, vote, max_agreeing_reads=8, settle_reads=3, settle_confidence=0.75)
    state = None
    for k, read in enumerate(reads):
        state = _observe(agg, k * 0.5, read)
    assert not agg.plate_settled(state)
    assert agg.wants_plate(state, 100.0, 1.0)


def test_settle_reads_never_exceeds_the_hard_cap_and_without_a_reader_crops_count() -> None:
    agg = Aggregator(10.0, 1, None, max_agreeing_reads=2, settle_reads=5)
    assert agg.settle_reads == 2
    state = agg.vehicle("cam", 1, 0.0, 2, 0.8)
    for k in range(2):
        agg.add_plate(state, PlateObservation(None, 900.0, k, 0.7), CROP, FRAME.copy, [1, 2, 61, 22], [0, 0, 100, 60])
    assert agg.plate_settled(state)


# -- the schedule --------------------------------------------------------------------------------------------


def _tracker_with_car(box: list[float], t: float = 0.0) -> Tracker:
    tracker = Tracker(2.0, high_score=0.3)
    tracker.update(Detections(xyxy=np.array([box], np.float32), confidence=np.array([0.9], np.float32),
                              class_id=np.array([2])), t)
    return tracker


def _mask(hw: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(hw, bool)
    for x1, y1, x2, y2 in boxes:
        mask[y1:y2, x1:x2] = True
    return mask


def test_motion_outside_predicted_boxes_is_measured_on_the_thumbnail() -> None:
    # frame 640x360 -> thumbnail 96x54 (scale 0.15)
    inside = _mask((54, 96), (20, 20, 30, 30))
    box = np.array([[120, 120, 210, 210]], np.float32)  # thumbnail 18..31.5, covers the change (with margin)
    assert motion_outside(inside, box, (360, 640)) == 0.0
    outside = _mask((54, 96), (70, 5, 80, 15))
    assert motion_outside(outside, box, (360, 640)) == pytest.approx(100 / (54 * 96))


def test_schedule_thins_only_settled_scenes_and_always_detects_new_things() -> None:
    sched = DetectionSchedule("adaptive", settled_interval_s=1.0, motion_threshold=0.002)
    hw = (360, 640)
    inside = _mask((54, 96), (20, 20, 30, 30))
    empty = Tracker(2.0)
    car = _tracker_with_car([120, 120, 210, 210])
    yes, no = (lambda tid: True), (lambda tid: False)

    def decide(t: float, changed: np.ndarray, trackers: tuple, settled: Any, faces: tuple = ()) -> str:
        return sched.decide("cam", t, changed, hw, trackers, faces, settled).reason

    assert decide(0.0, inside, (empty,), yes) == "no_tracks"       # motion in an empty scene: always detected
    assert decide(0.1, inside, (car,), no) == "unsettled"          # a plate still being read
    assert decide(0.2, inside, (car,), yes) == "settled"           # the settled car moves: tracker carries it
    assert not sched.decide("cam", 0.3, inside, hw, (car,), (), yes).run_detector
    outside = _mask((54, 96), (60, 5, 90, 20))
    assert decide(0.4, outside, (car,), yes) == "new_motion"       # something enters beside the settled car
    assert decide(0.5, inside, (car,), yes) == "settled"
    assert decide(1.5, inside, (car,), yes) == "interval"          # refreshed at least every second
    person = _tracker_with_car([300, 50, 340, 150])
    assert decide(1.6, inside, (car,), yes, faces=(person,)) == "faces"
    every = DetectionSchedule("every_frame", 1.0, 0.002)
    assert every.decide("cam", 0.0, inside, hw, (car,), (), yes).run_detector
    with pytest.raises(ValueError, match="unknown detection schedule"):
        DetectionSchedule("sometimes", 1.0, 0.002)


# -- in the engine -------------------------------------------------------------------------------------------


class _CarDetector:
    """A vehicle detector that finds the bright block of :func:`_scene` (and counts its calls)."""

    def __init__(self) -> None:
        self.frames = 0

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        self.frames += len(frames)
        out = []
        for frame in frames:
            ys, xs = np.nonzero(frame[:, :, 0] > 200)
            boxes = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32) if len(xs) else \
                np.zeros((0, 4), np.float32)
            out.append(Detections(xyxy=boxes, confidence=np.full(len(boxes), 0.9, np.float32),
                                  class_id=np.full(len(boxes), 2)))
        return out


CLOSER = 160  # the double's tile side for a closer look at a whole frame


class _PlateDetector:
    """Finds a plate in the lower middle of every vehicle crop."""

    tile = 320

    def __init__(self) -> None:
        self.crops = 0

    def detect_batch(self, crops: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        self.crops += len(crops)
        out = []
        for crop in crops:
            h, w = crop.shape[:2]
            box = np.array([[w * 0.35, h * 0.6, w * 0.65, h * 0.75]], np.float32)
            out.append(Detections(xyxy=box, confidence=np.array([0.8], np.float32), class_id=np.array([0])))
        return out

    def look_again(self, *args: Any, **kwargs: Any) -> None:
        return None

    def closer_tile(self, image_hw: tuple[int, ...]) -> int:
        return CLOSER


class _Reader:
    def __init__(self) -> None:
        self.plates = 0

    def read_batch(self, crops: list[np.ndarray], layouts: Any = None) -> list[PlateRead]:
        self.plates += len(crops)
        return [_read("1กข1234") for _ in crops]


class _Models:
    def __init__(self) -> None:
        self.vehicles, self.plates = _CarDetector(), _PlateDetector()


def _scene(x: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 60, size=(360, 640, 3)).astype(np.uint8)
    frame[150:290, x:x + 200] = 230
    return frame


class _Frame:
    def __init__(self, t: float, frame: np.ndarray) -> None:
        self.camera_id, self.capture_time, self.frame, self.frame_no = "cam", t, frame, int(t * 10)


def _run(schedule: str, tmp_path: Any) -> tuple[_Models, _Reader, Engine]:
    config = Config.model_validate({
        "engine": {"device": "cpu", "detection_schedule": schedule, "plates_whole_frame": "off",
                   "plate_second_look": False, "plate_rectification": False},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False}}]})
    models, reader = _Models(), _Reader()
    engine = Engine(config, models, reader, recordings_dir=tmp_path)
    for k in range(40):  # a car creeping through the view at 10 fps, 4 s
        engine.process_batch([_Frame(k * 0.1, _scene(40 + 3 * k))])
    engine.finish()
    return models, reader, engine


def test_engine_detects_fewer_frames_of_a_settled_scene_and_reads_the_same_plate(tmp_path: Any) -> None:
    every_models, every_reader, every = _run("every_frame", tmp_path / "every")
    models, reader, adaptive = _run("adaptive", tmp_path / "adaptive")
    texts = [{e.plate_text for kind, e in eng.events if kind == "plate"} for eng in (every, adaptive)]
    assert texts[0] == texts[1] == {"1กข1234"}
    # the reader stops once the plate settled (3 agreeing reads), in both schedules
    assert every_reader.plates == reader.plates == 3
    assert every_models.vehicles.frames == 40
    # after it settled the car is carried by the tracker, detected about once a second
    assert models.vehicles.frames <= 15, models.vehicles.frames
    assert adaptive.metrics.counters["frames_scheduled_out"] == 40 - models.vehicles.frames


def test_a_second_car_entering_beside_a_settled_one_is_detected_at_once(tmp_path: Any) -> None:
    config = Config.model_validate({
        "engine": {"device": "cpu", "plates_whole_frame": "off", "plate_second_look": False,
                   "plate_rectification": False},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False}}]})
    models = _Models()
    engine = Engine(config, models, _Reader(), recordings_dir=tmp_path)
    for k in range(12):
        engine.process_batch([_Frame(k * 0.1, _scene(40 + 3 * k))])
    detected = models.vehicles.frames
    frame = _scene(40 + 3 * 12)
    frame[20:80, 500:600] = 120  # something new far from the settled car
    engine.process_batch([_Frame(1.2, frame)])
    assert models.vehicles.frames == detected + 1
    assert engine.metrics.counters["frames_scheduled_out"] > 0  # the scene was thinned before the newcomer


# -- faces embedded only when better -------------------------------------------------------------------------


def test_a_face_is_embedded_only_while_it_could_enter_its_tracks_best_faces() -> None:
    agg = Aggregator(10.0, 1, vote)
    state = agg.face_track("cam", 3, 0.0)
    assert agg.face_could_improve(state, 0.1)  # nothing yet
    emb = np.ones(8, np.float32) / np.sqrt(8)
    for k, q in enumerate((0.5, 0.7, 0.6)):
        agg.add_face(state, emb, q, 0.9, [0, 0, 40, 40], k * 0.1, CROP, FRAME.copy)
    assert not agg.face_could_improve(state, 0.5)  # three better (or equal) faces held
    assert agg.face_could_improve(state, 0.55)  # would replace the 0.5 one


class _SteadyFaces:
    """A face model that finds one face, a little to the right each frame, always of quality 0.9; it embeds
    only the faces the engine selects, and records for each frame whether it did."""

    def __init__(self, left: Any = None) -> None:
        self.embedded: list[bool] = []
        self.frames = 0
        self.left = left or (lambda n: 200 + 2 * n)  # the face's left edge in frame n

    def detect_batch(self, frames: list[np.ndarray], select: Any = None, enlarge: Any = None) -> list[Detections]:
        out = []
        for k, _ in enumerate(frames):
            x = self.left(self.frames)
            self.frames += 1
            faces = Detections(xyxy=np.array([[x, 100, x + 60, 170]], np.float32),
                               confidence=np.array([0.9], np.float32), class_id=np.array([0]),
                               data={"landmarks": np.zeros((1, 5, 2), np.float32),
                                     "quality": np.array([0.9], np.float32)})
            wanted = np.ones(1, bool) if select is None else np.asarray(select(k, faces), bool)
            self.embedded.append(bool(wanted[0]))
            faces.data["embedding"] = [np.ones(8, np.float32) / np.sqrt(8) if wanted[0] else None]
            out.append(faces)
        return out


def test_a_steady_face_is_embedded_again_only_to_refresh_its_tracks_appearance(tmp_path: Any) -> None:
    from pipeline.engine.engine import APPEARANCE_REFRESH_S

    config = Config.model_validate({
        "engine": {"device": "cpu", "motion_threshold": 0.0, "detector_keepalive_s": 0.1},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": False, "faces": True}}]})
    models = _Models()
    models.faces = _SteadyFaces()
    engine = Engine(config, models, None, recordings_dir=tmp_path)
    step = 0.25  # 4 fps: four frames a refresh interval
    times = [k * step for k in range(int(4 * APPEARANCE_REFRESH_S / step))]
    for t in times:
        engine.process_batch([_Frame(t, _scene(40))])
    embedded = [t for t, e in zip(times, models.faces.embedded, strict=True) if e]
    # the first three fill the track's best faces; later ones (no better) only when its appearance is 1 s old
    assert embedded[:3] == times[:3]
    later = embedded[3:]
    assert later, "the track's appearance was never refreshed"
    assert all(b - a >= APPEARANCE_REFRESH_S - 1e-9 for a, b in zip(embedded[2:], later, strict=False))
    assert len(embedded) < len(times) / 2  # most frames' faces are not embedded
    assert engine.metrics.counters["faces_not_embedded"] == len(times) - len(embedded)


def test_a_face_that_jumps_within_its_tracks_reach_is_not_embedded_again(tmp_path: Any) -> None:
    """A face 45 px to the side of where its track stood (overlap 0.14: the tracker's overlap pass still places it)
    keeps its track, and is not embedded when that track's best faces are full and its appearance is fresh:
    the embedding choice places faces as the tracker does (it embedded every face overlapping less than 0.3)."""
    config = Config.model_validate({
        "engine": {"device": "cpu", "motion_threshold": 0.0, "detector_keepalive_s": 0.1},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": False, "faces": True}}]})
    models = _Models()
    models.faces = _SteadyFaces(left=lambda n: 200 if n < 4 else 245)
    engine = Engine(config, models, None, recordings_dir=tmp_path)
    for k in range(6):
        engine.process_batch([_Frame(k * 0.25, _scene(40))])
    assert models.faces.embedded == [True, True, True, False, False, False]
    assert len(engine.cameras["cam"].faces.tracks) == 1  # one face track throughout


def test_match_by_geometry_places_faces_like_the_tracker_without_changing_it() -> None:
    from pipeline.engine.tracking import Tracker

    tracker = Tracker(2.0, high_score=0.5, low_score=0.25, iou_threshold=0.1)

    def faces(*lefts: float) -> Detections:
        return Detections(xyxy=np.array([[x, 100, x + 60, 170] for x in lefts], np.float32),
                          confidence=np.full(len(lefts), 0.9, np.float32), class_id=np.zeros(len(lefts), int))

    first = tracker.update(faces(100, 400), 0.0).tracker_id
    before = {tid: (tr.state.copy(), tr.hits) for tid, tr in tracker.tracks.items()}
    seen = faces(140, 700, 405)  # 40 px off the first (overlap 0.2), a stranger, the second nearly in place
    by_box = tracker.match_by_geometry(seen, 0.25)
    assert by_box.tolist() == [first[0], -1, first[1]]
    assert all(np.array_equal(tr.state, before[tid][0]) and tr.hits == before[tid][1]
               for tid, tr in tracker.tracks.items())  # nothing moved
    assert tracker.assign(seen, 0.25)[[0, 2]].tolist() == by_box[[0, 2]].tolist()  # the tracker agrees


# -- the closer look: frames whose vehicles show no plate ----------------------------------------------------


class _SmallPlateDetector(_PlateDetector):
    """Finds no plate in vehicle crops nor in one window of the whole frame; a closer look (tiles of ``CLOSER``)
    finds one below the car while ``small_plate`` (and records the tile of every whole-frame search)."""

    def __init__(self, small_plate: bool) -> None:
        super().__init__()
        self.small_plate = small_plate
        self.whole_tiles: list[int] = []

    def detect_batch(self, crops: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        out = []
        for k, crop in enumerate(crops):
            side = None if tiles is None else tiles[k]
            if crop.shape[:2] == (360, 640):  # a whole frame
                self.whole_tiles.append(side)
            if side == CLOSER and self.small_plate:
                out.append(Detections(xyxy=np.array([[300, 300, 330, 310]], np.float32),
                                      confidence=np.array([0.7], np.float32), class_id=np.array([0])))
            else:
                out.append(Detections.empty())
        return out


def _closer_run(tmp_path: Any, small_plate: bool, seconds: float, step: float = 0.5,
                **engine: Any) -> tuple[_SmallPlateDetector, Engine, list[float]]:
    config = Config.model_validate({
        "engine": {"device": "cpu", "plate_second_look": False, "plate_rectification": False,
                   "motion_threshold": 0.0, "detector_keepalive_s": 0.1, **engine},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False},
                     "analysis_fps": 2}]})
    models = _Models()
    models.plates = _SmallPlateDetector(small_plate)
    engine_ = Engine(config, models, _Reader(), recordings_dir=tmp_path)
    looked: list[float] = []  # capture times of the frames that got a closer look
    for k in range(int(seconds / step)):
        before = models.plates.whole_tiles.count(CLOSER)
        engine_.process_batch([_Frame(k * step, _scene(40 + k))])
        if models.plates.whole_tiles.count(CLOSER) > before:
            looked.append(k * step)
    return models.plates, engine_, looked


def test_a_frame_whose_vehicles_show_no_plate_gets_a_closer_look_that_backs_off(tmp_path: Any) -> None:
    from pipeline.engine.engine import CLOSER_LOOK_INTERVAL_S, CLOSER_LOOK_MAX_INTERVAL_S

    plates, engine, looked = _closer_run(tmp_path, small_plate=False, seconds=90.0)
    assert looked[0] == 0.5  # the first frame showed no plate: the second gets the closer look
    assert len(looked) == engine.metrics.counters["closer_looks"] == plates.whole_tiles.count(CLOSER)
    # nothing found: the interval doubles (2, 4, 8, 16 s, then 30 s); a look comes at the first frame showing no
    # plate after it (a vehicle whose reads back off is not searched, so some frames show nothing either way)
    gaps = np.diff(looked)
    intervals = [min(CLOSER_LOOK_INTERVAL_S * 2 ** i, CLOSER_LOOK_MAX_INTERVAL_S) for i in range(len(gaps))]
    assert all(gap >= interval for gap, interval in zip(gaps, intervals, strict=True)), (looked, intervals)
    assert 3 <= len(looked) <= 7
    # a closer look that finds a plate keeps the camera at the short interval
    plates, engine, looked = _closer_run(tmp_path, small_plate=True, seconds=10.0)
    assert len(looked) >= 3 and engine.cameras["cam"].closer_interval == CLOSER_LOOK_INTERVAL_S
    assert engine.metrics.counters["plate_only_jobs"] > 0  # the plate it found (no vehicle's) is tracked and read
    # switched off: never
    plates, engine, looked = _closer_run(tmp_path, small_plate=True, seconds=10.0, plates_closer_look=False)
    assert not looked and CLOSER not in plates.whole_tiles and engine.metrics.counters["closer_looks"] == 0


# -- the turned second look: spent where it can find a plate ------------------------------------------------


COARSE = 777  # the double's coarse tile side for whole frames searched turned


class _RolledPlateDetector(_PlateDetector):
    """Finds nothing upright; the turned look finds a plate only when ``rolled`` (and records what it searched)."""

    def __init__(self, rolled: bool, rolled_looks: int | None = None) -> None:
        super().__init__()
        self.rolled = rolled
        self.rolled_looks = rolled_looks  # the turned look finds a plate this many times, then never
        self.turned: list[int] = []
        self.frame_looks: list[int] = []  # per whole-frame call: how many frames it turned
        self.searched: list[list[tuple[tuple[int, int], int | None]]] = []  # per call: (shape, tile) searched turned

    def detect_batch(self, crops: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        self.crops += len(crops)
        return [Detections.empty() for _ in crops]

    @staticmethod
    def coarse_tile(image_hw: tuple[int, ...], crop: bool = False) -> int:
        return COARSE

    def look_again(self, crops: list[np.ndarray], found: list[Detections], min_confidence: float = 0.0,
                   eligible: list[int] | None = None, tiles: list[int] | None = None) -> list[Detections]:
        eligible = list(range(len(crops))) if eligible is None else eligible
        self.turned.append(len(eligible))
        if crops and crops[0].shape[:2] == (360, 640):  # the whole frames' call (one a batch, one frame a batch)
            self.frame_looks.append(len(eligible))
        self.searched.append([(crops[k].shape[:2], None if tiles is None else tiles[k]) for k in eligible])
        looks = sum(1 for n in self.frame_looks if n)
        if self.rolled and (self.rolled_looks is None or looks <= self.rolled_looks):
            for k in eligible:
                h, w = crops[k].shape[:2]
                found[k] = Detections(xyxy=np.array([[w * 0.35, h * 0.6, w * 0.65, h * 0.75]], np.float32),
                                      confidence=np.array([0.8], np.float32), class_id=np.array([0]))
        return found


def _turned_looks(rolled: bool, vehicle: bool, tmp_path: Any, whole_frame: str = "off",
                  rolled_looks: int | None = None, frames: int = 40) -> tuple[list[int], Engine]:
    config = Config.model_validate({
        "engine": {"device": "cpu", "plates_whole_frame": whole_frame, "plate_rectification": False,
                   "detection_schedule": "every_frame"},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False},
                     "analysis_fps": 2}]})
    models = _Models()
    models.plates = _RolledPlateDetector(rolled, rolled_looks)
    if not vehicle:
        models.vehicles.detect_batch = lambda frames: [Detections.empty() for _ in frames]
    engine = Engine(config, models, _Reader(), recordings_dir=tmp_path)
    for k in range(frames):  # 2 fps
        engine.process_batch([_Frame(k * 0.5, _scene(40 + 3 * (k % 40)))])
    return [n for n in models.plates.turned if n], engine


def test_a_vehicle_whose_plate_is_not_rolled_gets_two_turned_looks_and_no_more(tmp_path: Any) -> None:
    turned, _ = _turned_looks(rolled=False, vehicle=True, tmp_path=tmp_path)
    assert sum(turned) == 2


def test_a_vehicle_whose_turned_look_finds_its_plate_keeps_getting_it(tmp_path: Any) -> None:
    turned, engine = _turned_looks(rolled=True, vehicle=True, tmp_path=tmp_path)
    assert sum(turned) >= 3  # read turned until the plate settled (3 agreeing reads)
    engine.finish()
    assert {e.plate_text for kind, e in engine.events if kind == "plate"} == {"1กข1234"}


def test_frames_without_vehicles_get_a_turned_look_every_ten_seconds_unless_the_camera_rolls_plates(
        tmp_path: Any) -> None:
    turned, _ = _turned_looks(rolled=False, vehicle=False, tmp_path=tmp_path / "upright")
    assert sum(turned) == 2  # at 0 s and 10 s of the 20 s
    turned, _ = _turned_looks(rolled=True, vehicle=False, tmp_path=tmp_path / "rolled")
    assert sum(turned) >= 30  # the first one found a plate: every frame without a plate found upright


def test_a_camera_that_stopped_rolling_plates_falls_back_to_a_turned_look_every_two_seconds(tmp_path: Any) -> None:
    """The turned look finds a plate on the first 10 looks (5 s), then never: every frame until 10 s after the last
    hit, then one every 2 s (the camera's mount rolled plates once), not every frame for ever."""
    _, engine = _turned_looks(rolled=True, vehicle=False, tmp_path=tmp_path, rolled_looks=10, frames=100)
    calls = engine.models.plates.frame_looks  # one call a frame, 2 fps: whether it turned the frame
    assert len(calls) == 100
    looked = [k * 0.5 for k, n in enumerate(calls) if n]
    assert looked[:30] == [k * 0.5 for k in range(30)]  # every frame to 14.5 s (last hit at 4.5 s, held 10 s)
    later = looked[30:]
    assert later and all(round(b - a, 1) == 2.0 for a, b in zip(later, later[1:], strict=False))
    assert len(later) == 17  # 15.5 ... 47.5 s, every 2 s, of the remaining 70 frames


def test_frames_with_vehicles_get_a_coarse_turned_look_of_the_whole_frame_every_ten_seconds(
        tmp_path: Any) -> None:
    """With the whole-frame window on, a frame with vehicles where it found no plate gets a turned look of the
    whole frame too (a rolled plate no vehicle box holds), in coarse tiles (searched upright in one window, which
    loses turned plates), on the ten second schedule even when a turned look finds a plate (the vehicles' crops
    get their own turned looks); the vehicle crop still gets its own two."""
    for rolled in (False, True):
        _, engine = _turned_looks(rolled=rolled, vehicle=True, tmp_path=tmp_path / str(rolled), whole_frame="window")
        detector = engine.models.plates
        whole = [(k, s) for k, call in enumerate(detector.searched) for s in call if s[0] == (360, 640)]
        assert len(whole) == 2, detector.searched  # at 0 s and 10 s of the 20 s
        crops = [s for call in detector.searched for s in call if s[0] != (360, 640)]
        assert crops and all(tile == COARSE for _, (_, tile) in whole) and all(tile == COARSE for _, tile in crops)


class _CropPlateDetector(_PlateDetector):
    """Finds the plate in vehicle crops only; the whole frame adds nothing."""

    def detect_batch(self, crops: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        out = super().detect_batch(crops, tiles, **search)
        return [Detections.empty() if crop.shape[:2] == (360, 640) else dets for crop, dets in zip(crops, out, strict=True)]


class _FreePlateDetector(_PlateDetector):
    """Also finds a plate in the top-left corner of a whole frame, outside every vehicle box (a close-up plate the
    vehicle detector missed)."""

    def detect_batch(self, crops: list[np.ndarray], tiles: Any = None, **search: Any) -> list[Detections]:
        out = super().detect_batch(crops, tiles, **search)
        for k, crop in enumerate(crops):
            if crop.shape[:2] == (360, 640):
                out[k] = Detections(xyxy=np.array([[10, 10, 90, 40]], np.float32),
                                    confidence=np.array([0.8], np.float32), class_id=np.array([0]))
        return out


class _UnreadReader:
    """Reads every plate as nothing valid, so no track settles and the detector runs on every frame."""

    def read_batch(self, crops: list[np.ndarray], layouts: Any = None) -> list[PlateRead]:
        return [PlateRead(text="", confidence=0.0, char_confidences=[], valid=False) for _ in crops]


def _whole_looks(plates: _PlateDetector, tmp_path: Any, schedule: str = "adaptive", step: float = 0.5) -> int:
    config = Config.model_validate({
        "engine": {"device": "cpu", "plates_whole_frame": "window", "plate_rectification": False,
                   "detection_schedule": schedule, "plate_second_look": False},
        "cameras": [{"id": "cam", "name": "cam", "url": "/v.mp4", "analytics": {"plates": True, "faces": False},
                     "analysis_fps": 2}]})
    models = _Models()
    models.plates = plates
    engine = Engine(config, models, _UnreadReader(), recordings_dir=tmp_path)
    for k in range(40):  # 20 s at 2 fps (the camera's analysis rate; ``step`` longer: an engine that falls behind)
        engine.process_batch([_Frame(k * step, _scene(40 + 3 * k))])
    assert engine.metrics.counters.get("frames_analysed", 0) == 40  # unsettled: the detector ran on every frame
    return int(engine.metrics.counters.get("whole_looks", 0))


def test_frames_with_vehicles_are_searched_whole_every_two_seconds_until_it_finds_a_free_plate(tmp_path: Any) -> None:
    """The whole-frame window (a close-up plate the vehicle detector missed) is rationed to one frame every 2 s
    while it finds only the plates the vehicles' own crops find; once it finds a plate outside every vehicle, every
    frame is searched whole; the every_frame schedule (the answer check's reference) searches every frame."""
    assert _whole_looks(_CropPlateDetector(), tmp_path / "crops") == 10  # 0, 2, ... 18 s
    assert _whole_looks(_FreePlateDetector(), tmp_path / "free") == 40
    assert _whole_looks(_CropPlateDetector(), tmp_path / "reference", schedule="every_frame") == 40


def test_a_camera_analysed_less_often_than_its_rate_gets_the_periodic_looks_on_the_same_share_of_frames(
        tmp_path: Any) -> None:
    """An engine that keeps up with only every fifth frame of a 2 fps camera (one every 2.5 s): the whole-frame
    window's 2 s interval runs on the camera's look clock (at most 1.5 analysis intervals, 0.75 s, a frame), so it
    searches every third frame, not every frame; its hold (a free plate found, every frame for 10 s) stays on real
    time."""
    assert _whole_looks(_CropPlateDetector(), tmp_path / "slow", step=2.5) == 14  # frames 0, 3, 6, ... 39
    assert _whole_looks(_FreePlateDetector(), tmp_path / "slow_free", step=2.5) == 40
