"""The analytics engine: one object that turns batches of frames from many cameras into events and alerts.

:meth:`Engine.process_batch` runs, for one batch gathered across cameras:

1. motion gating per camera (static frames skip the detector but keep their camera's tracks alive);
2. the vehicle/person detector once on the gated frames of plate cameras (and of face cameras when
   ``engine.person_tracks_for_faces`` is on);
3. zone filtering and per-camera tracking (vehicles on plate cameras, persons on face cameras);
4. the plate detector once on all vehicle crops of the batch (frames of plate cameras without any vehicle, such as
   close-up gate views, are searched whole and their plates tracked on their own), then the plate reader once
   on all plate crops;
5. the face model once on the gated frames of face cameras (with ``engine.face_search: person_boxes`` only on the
   upper part of their person boxes where the detector found persons, :mod:`pipeline.engine.face_regions`); faces
   are attached to person tracks (face inside the person box) or tracked on their own (no person detector on the
   camera, or no person box);
6. track -> event aggregation; due events get their JPEGs, are matched against the watchlists and published
   (to Redis, or to the on-disk spool while Redis is down).

It needs no processes or Redis to run (tests feed decoded video frames); :mod:`pipeline.engine.process` wires it
to the frame bus, Redis and the metrics endpoints.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.config import Camera, Config
from pipeline.detections import Detections
from pipeline.engine.aggregate import (
    PLATE_ONLY_CLASS,
    Aggregator,
    FaceState,
    PlateObservation,
    TrackState,
    VehicleState,
)
from pipeline.engine.face_regions import (
    DETECTOR_INPUT,
    WHOLE_FRAME_INTERVAL_S,
    face_searches,
    faces_per_frame,
    regions_cost_less,
    shifted_faces,
    upper_person_regions,
)
from pipeline.engine.gating import GateBank
from pipeline.engine.metrics import EngineMetrics
from pipeline.engine.schedule import DetectionSchedule
from pipeline.engine.snapshots import SnapshotWriter
from pipeline.engine.tracking import Tracker
from pipeline.engine.zones import ZoneFilter
from pipeline.models.onnx_utils import box_overlap, nms
from pipeline.models.plate_detector import MERGE_IOS, VEHICLE_MARGIN, centres_inside, has_plate, owner_of
from pipeline.models.yolo import VEHICLE_CLASSES
from pipeline.plates.geometry import READING_PAD, crop_box
from pipeline.plates.rectifier import RectifiedPlate, reading_layout
from pipeline.plates.regrow import better_regrown_read, found_box, regrown_box
from pipeline.plates.second_read import read_plates
from pipeline.plates.turned_look import (
    TURN_MIN_REGION_WIDTH,
    better_read,
    large_enough,
    turned_plates,
    wants_turned_look,
)

logger = logging.getLogger(__name__)

PERSON = 0
MIN_VEHICLE_WIDTH = 64  # narrower vehicles have plates too small to read
MIN_VEHICLE_HEIGHT = 40
PLATE_ONLY_REGION = (1.0, 1.5)  # a plate-only job searches the plate box grown by 100 % / 150 % of its size
FACE_TRACK_SIMILARITY = 0.5  # a face that moved too far for its box keeps its track at this embedding cosine
CROSS_CLASS_IOU = 0.7
MIN_FACE_SIDE = 16
# The turned second look (plate_second_look) costs two detector windows per miss: a vehicle gets it until it has come
# back empty twice (a plate rolled by the camera's mount stays rolled), a frame without vehicles at most this often.
# A vehicle whose plate reads unsure (pipeline.plates.turned_look) gets the turned look too, until it has come back
# empty or no better ROTATED_LOOKS_PER_TRACK times; plates of a whole frame read unsure (or every plate of the frame)
# make the camera's next whole-frame search due a turned look, within UNSURE_HOLD_S and at the same interval.
ROTATED_LOOKS_PER_TRACK = 2  # empty turned looks after which a vehicle gets no more
ROTATED_LOOK_INTERVAL_S = 10.0
UNSURE_HOLD_S = 2.0
# A frame without vehicles gets a turned look on every frame while one found a plate on the camera within
# TURNED_HIT_HOLD_S (its mount rolls the plates in view), then at least every ROLLED_CAMERA_INTERVAL_S on a camera
# where a turned look ever found one (the next rolled plate is found within that), else every ROTATED_LOOK_INTERVAL_S.
TURNED_HIT_HOLD_S = 10.0
ROLLED_CAMERA_INTERVAL_S = 2.0
# A frame without vehicles is searched with tiles (small plates of a close-up view: a dozen detector windows for a
# 960x540 frame) at most this often per camera, and on every such frame while a tiled search found a plate on the
# camera in the last TILED_HIT_HOLD_S; its other frames get one window, as frames with vehicles do. A road or
# dashcam camera whose vehicle-less frames hold no plate so stops paying for the tiles on each frame.
TILED_LOOK_INTERVAL_S = 2.0
TILED_HIT_HOLD_S = 10.0
# A frame with vehicles is searched whole in one window (plates_whole_frame: a close-up plate the vehicle detector
# missed) at most this often per camera, and on every such frame while that window found a plate the vehicles' own
# crops did not (a free plate, or one a vehicle took from it) within WHOLE_HIT_HOLD_S. Files mode, 3 cameras at 1 and
# 3 fps: the window off changed no answer and saved 10 and 7 CPU ms a frame (77 -> 67, 59 -> 52).
WHOLE_LOOK_INTERVAL_S = 2.0
WHOLE_HIT_HOLD_S = 10.0
# A frame with vehicles to search whose crops, and whole-frame window if it had one, showed no plate (a night scene
# whose vehicle boxes miss the plates, plates too small for one window) makes the camera's next frame with vehicles
# get a closer look (plates_closer_look): searched whole in tiles (PlateDetector.closer_tile: 7 windows for a
# 960x540 frame). Plates it finds are held by their vehicles or tracked on their own. At most one every
# CLOSER_LOOK_INTERVAL_S per camera; the interval doubles after each look that finds nothing, up to
# CLOSER_LOOK_MAX_INTERVAL_S (a camera whose plates are simply too small stops paying), and resets on a find.
CLOSER_LOOK_INTERVAL_S = 2.0
CLOSER_LOOK_MAX_INTERVAL_S = 30.0
# ... and is still embedded when its track's appearance (the running mean the tracker matches a face that jumped, at a
# cut or after an occlusion, against) was last refreshed this long ago. Files mode, 3 cameras at 3 fps: without the
# refresh the engine split six face tracks that the every-frame reference kept (119 of 125 events matched, 6 extra);
# with it 125 of 125, none extra, for 10 % more embeddings (1071 -> 1177 of 1470 faces); 2 s did not help.
APPEARANCE_REFRESH_S = 1.0
# The intervals of the periodic looks above (whole-frame window, tiles, closer look, turned look of a whole frame) run
# on a camera's *look clock*, not its capture time: each frame the engine takes from the camera moves it by the time
# since the camera's previous frame, but at most LOOK_CLOCK_MAX_STEP of the camera's analysis interval
# (1 / analysis_fps). At the analysis rate it is the capture time; an engine that keeps up with only a few of many
# cameras' frames (saturation: a camera analysed every 2-3 s instead of 3 times a second) would otherwise give the
# periodic looks to almost every frame it does analyse (files mode, 3 cameras, every 7th frame of 3 fps: whole-frame
# turned looks alone cost 45 of 170 CPU ms a frame), spending more per frame exactly when it has the least time; on
# the look clock they cost the same share of analysed frames at any load. The holds (a look found something, or plates
# read unsure, within so many seconds) stay on capture time: they say what the scene held recently.
LOOK_CLOCK_MAX_STEP = 1.5
MAX_PENDING_LATENCIES = 10_000  # capture times of published versions awaiting delivery, kept for event latency


class FrameLike(Protocol):
    """What the engine needs from a frame item (the frame bus's ``FrameItem`` fits)."""

    camera_id: str
    frame_id: int
    capture_time: float
    frame: np.ndarray


@dataclass
class CameraRuntime:
    """Per-camera state: config, zones, trackers and clocks."""

    camera: Camera
    zones: ZoneFilter
    vehicles: Tracker
    persons: Tracker
    faces: Tracker
    plates: Tracker  # plates found without a vehicle (close-up views), tracked on their own
    last_capture: float = 0.0
    last_arrival: float = 0.0
    frames: int = 0
    last_rotated_look: float = float("-inf")  # look time of the last turned search of a whole frame
    turned_hits: int = 0  # turned searches of frames without vehicles that found a plate
    last_turned_hit: float = float("-inf")  # capture time of the last of them
    unsure_whole_at: float = float("-inf")  # capture time of the last frame whose whole-frame plates read unsure
    last_tiled_look: float = float("-inf")  # look time of the last tiled search of a frame without vehicles
    last_tiled_hit: float = float("-inf")  # capture time of the last one that found a plate
    last_whole_look: float = float("-inf")  # look time of the last whole-frame window of a frame with vehicles
    last_whole_hit: float = float("-inf")  # capture time of the last one that found a plate the crops did not
    plateless: bool = False  # the last frame with vehicles to search showed no plate in their crops nor whole
    last_closer_look: float = float("-inf")  # look time of the last closer look at a frame with vehicles
    closer_interval: float = CLOSER_LOOK_INTERVAL_S  # seconds between closer looks (doubles after each miss)
    look_clock: float = float("-inf")  # the camera's look clock (see LOOK_CLOCK_MAX_STEP) at its last frame
    last_whole_face_search: float = float("-inf")  # look time of the last face search of a whole frame

    def take_frame(self, t: float) -> None:
        """A frame captured at ``t`` arrived: the look clock moves by the time since the camera's last frame, but
        at most :data:`LOOK_CLOCK_MAX_STEP` of its analysis interval (the first frame sets it to ``t``)."""
        if self.look_clock == float("-inf"):
            self.look_clock = t
        else:
            step = LOOK_CLOCK_MAX_STEP / self.camera.analysis_fps
            self.look_clock += min(max(t - self.last_capture, 0.0), step)
        self.last_capture = max(self.last_capture, t)
        self.last_arrival = time.time()
        self.frames += 1

    @property
    def trackers(self) -> tuple[Tracker, ...]:
        """Every tracker of the camera."""
        return (self.vehicles, self.persons, self.faces, self.plates)


@dataclass
class _Frame:
    """A gated frame moving through one batch."""

    item: FrameLike
    cam: CameraRuntime
    _copy: np.ndarray | None = None
    persons: Detections = field(default_factory=Detections.empty)
    no_vehicle: bool = False  # a plate camera's frame in which the detector found no vehicle
    vehicle_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # tracked, frame px
    # plates of the whole-frame window whose centre lies in a tracked vehicle's box (frame px): a vehicle crop whose
    # upright search finds no plate takes its plate from here instead of a turned look
    held_plates: Detections = field(default_factory=Detections.empty)
    whole_found: bool = False  # its whole-frame search found a plate (free or held)
    closer: bool = False  # its whole-frame search is a closer look (tiles), its camera's last frame was plateless
    look_t: float = 0.0  # its camera's look clock at this frame (see LOOK_CLOCK_MAX_STEP): the look schedules' time

    def copy(self) -> np.ndarray:
        """A private copy of the frame (made once, shared by every track that keeps it as its snapshot)."""
        if self._copy is None:
            self._copy = np.ascontiguousarray(self.item.frame).copy()
        return self._copy


@dataclass
class _VehicleJob:
    frame: _Frame
    state: VehicleState
    box: np.ndarray
    offset: tuple[int, int]
    crop: np.ndarray
    turned: bool = False  # its crop was searched turned in this batch
    found: bool = False  # the plate detector found a plate in its crop (upright, turned or held) in this batch


@dataclass
class _PlateCrop:
    job: _VehicleJob
    box: np.ndarray  # tight plate rectangle in the job's crop
    score: float
    crop: np.ndarray  # the detector's box with the reading pad: what the rectifier and reader see
    reading_box: np.ndarray | None = None  # the detector's box in the job's crop (None: found turned)


class Engine:
    """Batched multi-camera analytics; see the module docstring."""

    def __init__(
        self,
        config: Config,
        models: Any,
        plate_reader: Any | None,
        publisher: Any | None = None,
        matcher: Any | None = None,
        recordings_dir: str | Path | None = None,
        metrics: EngineMetrics | None = None,
        vote: Callable[[list[Any], list[float]], Any] | None = None,
        live: bool = False,
        plate_rectifier: Any | None = None,
    ) -> None:
        """Create the engine.

        Args:
            config: the validated cameras.yaml (cameras and ``engine`` section).
            models: a ``ModelSet`` (``vehicles``, ``plates``, ``faces`` batched detectors).
            plate_reader: an object with ``read_batch(crops)``, or None when no reader model is available
                (plate events are then published without text).
            publisher: where events and alerts go (``publish(kind, record)``); None keeps them in ``self.events``.
            matcher: a :class:`~pipeline.engine.watchmatch.WatchlistMatcher`, or None for no alerts.
            recordings_dir: root of snapshot JPEGs (default: settings.recordings_dir).
            metrics: metrics sink (a fresh one if None).
            vote: plate voting function (default :func:`pipeline.plates.voting.vote`).
            live: frames come from live cameras, so tracks of a camera that stopped sending frames are ended by
                wall-clock time in :meth:`tick`; file-driven runs use capture times only and end with :meth:`finish`.
            plate_rectifier: a :class:`~pipeline.plates.rectifier.PlateRectifier` between the plate detector and
                the reader (corners and layout of each plate, warped upright), or None to read the crops as cut.
        """
        self.config = config
        self.engine_config = config.engine
        self.models = models
        self.plate_reader = plate_reader
        self.plate_rectifier = plate_rectifier
        self.publisher = publisher
        self.matcher = matcher
        if recordings_dir is None:
            from pipeline.settings import get_settings

            recordings_dir = get_settings().recordings_dir
        self.snapshots = SnapshotWriter(recordings_dir)
        self.metrics = metrics or EngineMetrics()
        self.live = live
        if vote is None:
            vote = _default_vote()
        ec = self.engine_config
        self.aggregator = Aggregator(ec.publish_after_s, ec.min_track_hits, vote, ec.plate_reads_per_track,
                                     settle_reads=ec.plate_settle_reads, settle_confidence=ec.plate_settle_confidence)
        self.gates = GateBank(ec.motion_threshold, ec.detector_keepalive_s)
        self.schedule = DetectionSchedule(ec.detection_schedule, ec.settled_detect_interval_s, ec.motion_threshold)
        self.cameras: dict[str, CameraRuntime] = {}
        self.events: list[tuple[str, Any]] = []  # what was published (kept only when there is no publisher)
        self._trigger_times: dict[tuple[str, int], float] = {}
        self._warned_unknown: set[str] = set()
        if plate_reader is None:
            logger.warning("no plate reader available: plate events are published with empty text")

    # -- cameras ----------------------------------------------------------------------------------------------

    def _camera(self, camera_id: str) -> CameraRuntime | None:
        runtime = self.cameras.get(camera_id)
        if runtime is not None:
            return runtime
        try:
            camera = self.config.camera(camera_id)
        except KeyError:
            if camera_id not in self._warned_unknown:
                logger.error("frame from camera %r which is not in the configuration; ignoring it", camera_id)
                self._warned_unknown.add(camera_id)
            return None
        ec = self.engine_config
        ids = itertools.count(1).__next__  # one id space per camera: vehicle, person and face tracks never collide
        runtime = CameraRuntime(
            camera=camera,
            zones=ZoneFilter(camera.zones),
            vehicles=Tracker(ec.track_lost_s, high_score=ec.vehicle_confidence,
                             low_score=ec.vehicle_confidence / 2, id_source=ids),
            persons=Tracker(ec.track_lost_s, high_score=ec.vehicle_confidence,
                            low_score=ec.vehicle_confidence / 2, id_source=ids),
            faces=Tracker(ec.track_lost_s, high_score=ec.face_confidence,
                          low_score=ec.face_confidence / 2, iou_threshold=0.1, id_source=ids,
                          appearance_threshold=FACE_TRACK_SIMILARITY),
            plates=Tracker(ec.track_lost_s, high_score=ec.plate_confidence, low_score=ec.plate_confidence / 2,
                           iou_threshold=0.1, id_source=ids),
        )
        self.cameras[camera_id] = runtime
        return runtime

    # -- the batch --------------------------------------------------------------------------------------------

    def process_batch(self, items: Sequence[FrameLike]) -> None:
        """Analyse one batch of frames (any mix of cameras, each camera's frames in capture order)."""
        if not items:
            return
        self.metrics.observe_batch(len(items))
        gated = self._gate(items)
        if gated:
            skipped_before = self.aggregator.settled_skips
            with self.metrics.stage("detect"):
                detections = self._detect_objects(gated)
            with self.metrics.stage("track"):
                jobs = self._track(gated, detections)
            jobs += self._plate_only_jobs(self._frames_searched_whole(gated))
            self.metrics.count("plate_looks_settled", self.aggregator.settled_skips - skipped_before)
            self._plates(jobs)
            self._note_plateless_frames(gated, jobs)
            self._faces(gated)
        self.metrics.count("frames_analysed", len(gated))
        self.metrics.count("frames_gated_out", len(items) - len(gated))
        touched = {item.camera_id for item in items if item.camera_id in self.cameras}
        for camera_id in sorted(touched):
            runtime = self.cameras[camera_id]
            self._expire_and_publish(runtime, runtime.last_capture)

    def _needs_object_detector(self, g: _Frame) -> bool:
        analytics = g.cam.camera.analytics
        return analytics.plates or (analytics.faces and self.engine_config.person_tracks_for_faces)

    def _detect_objects(self, gated: list[_Frame]) -> list[Detections]:
        """The object detector on the frames that need it (plate cameras; face cameras with person tracks)."""
        wanted = [i for i, g in enumerate(gated) if self._needs_object_detector(g)]
        found = self.models.vehicles.detect_batch([gated[i].item.frame for i in wanted]) if wanted else []
        detections = [Detections.empty() for _ in gated]
        for i, dets in zip(wanted, found, strict=True):
            detections[i] = dets
        return detections

    def _gate(self, items: Sequence[FrameLike]) -> list[_Frame]:
        gated: list[_Frame] = []
        with self.metrics.stage("gate"):
            for item in items:
                runtime = self._camera(item.camera_id)
                if runtime is None:
                    continue
                runtime.take_frame(item.capture_time)
                analytics = runtime.camera.analytics
                if not (analytics.plates or analytics.faces):
                    continue
                decision = self.gates.check(item.camera_id, item.frame, item.capture_time)
                if decision.run_detector and decision.reason == "motion" and not self._scheduled(runtime, item,
                                                                                                   decision.changed):
                    self.metrics.count("frames_scheduled_out")
                elif decision.run_detector:
                    gated.append(_Frame(item, runtime, look_t=runtime.look_clock))
                    continue
                for tracker in runtime.trackers:
                    tracker.touch(item.capture_time)
                self._touch_states(item.camera_id, item.capture_time)
        return gated

    def _scheduled(self, runtime: CameraRuntime, item: FrameLike, changed: np.ndarray | None) -> bool:
        """The detection schedule's say on a moving frame (see :mod:`pipeline.engine.schedule`)."""
        camera_id = item.camera_id
        settled = self._settled_for_schedule
        face_trackers = (runtime.persons, runtime.faces) if runtime.camera.analytics.faces else ()
        return self.schedule.decide(camera_id, item.capture_time, changed, item.frame.shape[:2],
                                    (runtime.vehicles, runtime.plates), face_trackers,
                                    lambda tid: settled(camera_id, tid)).run_detector

    def _settled_for_schedule(self, camera_id: str, track_id: int) -> bool:
        """A vehicle (or plate-only) track the detector need not follow on every frame: its plate is settled, or
        its plate was not found four times running (the plate look backs off anyway)."""
        state = self.aggregator.vehicles.get((camera_id, track_id))
        if state is None:
            return False
        return self.aggregator.plate_settled(state) or (not state.observations and state.plate_misses >= 4)

    def _touch_states(self, camera_id: str, t: float) -> None:
        for table in (self.aggregator.vehicles, self.aggregator.faces):
            for (cam, _), state in table.items():
                if cam == camera_id:
                    state.last_seen = max(state.last_seen, t)

    def _track(self, gated: list[_Frame], detections: list[Detections]) -> list[_VehicleJob]:
        ec = self.engine_config
        jobs: list[_VehicleJob] = []
        for g, dets in zip(gated, detections, strict=True):
            frame, t = g.item.frame, g.item.capture_time
            height, width = frame.shape[:2]
            dets = g.cam.zones.filter(dets, width, height)
            dets = dets[dets.confidence >= ec.vehicle_confidence / 2]
            if g.cam.camera.analytics.plates:
                vehicles = dets[np.isin(dets.class_id, VEHICLE_CLASSES)]
                g.no_vehicle = not len(vehicles)
                # one object, one box: the detector's class-aware NMS leaves car/truck/bus boxes on one vehicle
                vehicles = vehicles[np.sort(nms(vehicles.xyxy, vehicles.confidence, CROSS_CLASS_IOU))]
                vehicles = g.cam.vehicles.update(vehicles, t)
                g.vehicle_boxes = vehicles.xyxy
                for i in range(len(vehicles)):
                    box = vehicles.xyxy[i]
                    state = self.aggregator.vehicle(g.item.camera_id, int(vehicles.tracker_id[i]), t,
                                                    int(vehicles.class_id[i]), float(vehicles.confidence[i]))
                    w, h = box[2] - box[0], box[3] - box[1]
                    if w < MIN_VEHICLE_WIDTH or h < MIN_VEHICLE_HEIGHT or \
                            not self.aggregator.wants_plate(state, t, float(w * h)):
                        continue
                    crop, ox, oy = crop_box(frame, box, pad_x=VEHICLE_MARGIN, pad_y=VEHICLE_MARGIN)
                    if crop.size:
                        jobs.append(_VehicleJob(g, state, box, (ox, oy), crop))
            if g.cam.camera.analytics.faces:
                g.persons = g.cam.persons.update(dets[dets.class_id == PERSON], t)
        return jobs

    def _frames_searched_whole(self, gated: list[_Frame]) -> list[_Frame]:
        """Plate-camera frames the plate detector also searches whole: frames without any vehicle
        (``plates_without_vehicle``) and, unless ``plates_whole_frame`` is off, frames with vehicles."""
        ec = self.engine_config
        return [g for g in gated if g.cam.camera.analytics.plates and (
            (g.no_vehicle and ec.plates_without_vehicle)
            or (not g.no_vehicle and ec.plates_whole_frame != "off"
                and (self._closer_look_due(g) or self._whole_look_due(g))))]

    def _closer_look_due(self, g: _Frame) -> bool:
        """Whether a frame with vehicles gets a closer look (see ``CLOSER_LOOK_INTERVAL_S``): its camera's last frame
        with vehicles to search showed no plate, and its last closer look is the camera's interval old."""
        t, cam = g.look_t, g.cam
        if not (self.engine_config.plates_closer_look and cam.plateless) or \
                t - cam.last_closer_look < cam.closer_interval:
            return False
        cam.last_closer_look = t
        g.closer = True
        self.metrics.count("closer_looks")
        return True

    def _note_plateless_frames(self, gated: list[_Frame], jobs: list[_VehicleJob]) -> None:
        """Remember per plate camera whether its last frame with vehicles showed no plate: it had vehicles to
        search, and neither their crops nor its whole-frame search found one (settled or unreadably small
        vehicles alone do not count)."""
        searched = {id(job.frame) for job in jobs if not job.state.plate_only}
        found = {id(job.frame) for job in jobs if job.found}
        for g in gated:
            if g.cam.camera.analytics.plates and not g.no_vehicle:
                g.cam.plateless = id(g) in searched and id(g) not in found and not g.whole_found

    def _whole_look_due(self, g: _Frame) -> bool:
        """Whether a frame with vehicles is searched whole: with the ``adaptive`` detection schedule at most every
        ``WHOLE_LOOK_INTERVAL_S`` per camera, and every frame within ``WHOLE_HIT_HOLD_S`` of a whole-frame window
        that found a plate the crops did not; with ``every_frame``, every frame."""
        t, cam = g.look_t, g.cam
        if self.engine_config.detection_schedule != "adaptive" or t - cam.last_whole_look >= WHOLE_LOOK_INTERVAL_S \
                or g.item.capture_time - cam.last_whole_hit <= WHOLE_HIT_HOLD_S:
            cam.last_whole_look = t
            self.metrics.count("whole_looks")
            return True
        return False

    def _plate_only_jobs(self, frames: list[_Frame]) -> list[_VehicleJob]:
        """Plates found by searching whole frames that belong to no tracked vehicle: a frame without vehicles (a
        close-up gate view) is searched with tiles, a frame with vehicles in one window (``plates_whole_frame``:
        a close-up motorcycle the vehicle detector missed); plates whose centre lies in a tracked vehicle's box
        are left to that vehicle. The rest are tracked on their own and each track's plate region becomes a
        plate job."""
        if not frames:
            return []
        ec = self.engine_config
        tiles = self._whole_frame_tiles(frames)
        with self.metrics.stage("plate_detect"):
            images = [g.item.frame for g in frames]
            found = self.models.plates.detect_batch(images, tiles, coarse_first=ec.plate_search == "coarse_first",
                                                    min_confidence=ec.plate_confidence)
            self._note_tiled_hits(frames, tiles, found)
            if ec.plate_second_look:
                due = self._frames_due_a_turned_look(frames, found)
                # a closer look's tiles are for small plates; a turned look of that frame searches as usual
                turned = self._look_turned(images, found, due, [0 if g.closer else side
                                                                for g, side in zip(frames, tiles, strict=True)])
                for k, dets in zip(due, turned, strict=True):
                    if frames[k].no_vehicle and has_plate(dets, ec.plate_confidence):
                        frames[k].cam.turned_hits += 1
                        frames[k].cam.last_turned_hit = frames[k].item.capture_time
        jobs: list[_VehicleJob] = []
        with self.metrics.stage("track"):
            for g, dets in zip(frames, found, strict=True):
                frame, t = g.item.frame, g.item.capture_time
                height, width = frame.shape[:2]
                dets = g.cam.zones.filter(dets, width, height)
                g.whole_found = has_plate(dets, ec.plate_confidence)
                if len(dets) and len(g.vehicle_boxes):
                    free = np.array([owner_of(b, g.vehicle_boxes) < 0 for b in dets.xyxy], bool)
                    g.held_plates, dets = dets[~free], dets[free]
                    if has_plate(dets, ec.plate_confidence):
                        g.cam.last_whole_hit = t
                tracked = g.cam.plates.update(dets[dets.confidence >= ec.plate_confidence / 2], t)
                for i in range(len(tracked)):
                    state = self.aggregator.vehicle(g.item.camera_id, int(tracked.tracker_id[i]), t,
                                                    PLATE_ONLY_CLASS, float(tracked.confidence[i]))
                    box = tracked.xyxy[i]
                    if not self.aggregator.wants_plate(state, t, float((box[2] - box[0]) * (box[3] - box[1]))):
                        continue
                    crop, ox, oy = crop_box(frame, box, *PLATE_ONLY_REGION)
                    if crop.size:
                        jobs.append(_VehicleJob(g, state, box, (ox, oy), crop))
        self.metrics.count("plate_only_jobs", len(jobs))
        return jobs

    def _look_turned(self, images: list[np.ndarray], found: list[Detections], due: list[int], tiles: list[int]
                     ) -> list[Detections]:
        """Whole frames ``due`` a turned look searched turned (as searched upright when tiled, else in coarse
        tiles). A frame without an upright plate takes what the turned look found; in a frame with upright plates
        (read unsure), a plate found turned joins them unless it overlaps one (intersection over the smaller box
        at least ``MERGE_IOS``: the same plate, whose upright box keeps its track). Returns what each turned look
        found."""
        plates = self.models.plates
        conf = self.engine_config.plate_confidence
        turned_tiles = [(tiles[k] or plates.coarse_tile(images[k].shape)) if k in due else 0
                        for k in range(len(images))]
        missing = [k for k in due if not has_plate(found[k], conf)]
        plates.look_again(images, found, conf, eligible=missing, tiles=turned_tiles)
        turned_of = {k: found[k] for k in missing}
        unsure = [k for k in due if k not in turned_of]
        if unsure:
            for k, dets in zip(unsure, plates.detect_rotated([images[k] for k in unsure],
                                                             tiles=[turned_tiles[k] for k in unsure]), strict=True):
                turned_of[k] = dets
                upright = found[k]
                new = [max(box_overlap(b, upright.xyxy, over="smaller")) < MERGE_IOS for b in dets.xyxy]
                found[k] = Detections.merge([upright, dets[np.asarray(new, bool)]])
        return [turned_of[k] for k in due]

    def _whole_frame_tiles(self, frames: list[_Frame]) -> list[int]:
        """Tile side of each frame searched whole (0: one window). Frames with vehicles get one window
        (``plates_whole_frame: tiles``: tiles), or the closer look's tiles when it is due; a frame without
        vehicles gets tiles (:meth:`PlateDetector.closer_tile`: at most half a small frame) when its camera's last
        tiled search is ``TILED_LOOK_INTERVAL_S`` old or one found a plate within ``TILED_HIT_HOLD_S``, else one
        window."""
        plates = self.models.plates
        tiles = []
        for g in frames:
            t = g.look_t
            if not g.no_vehicle and self.engine_config.plates_whole_frame == "tiles":
                tiles.append(plates.tile)
            elif not g.no_vehicle:
                tiles.append(plates.closer_tile(g.item.frame.shape) if g.closer else 0)
            elif t - g.cam.last_tiled_look >= TILED_LOOK_INTERVAL_S or \
                    g.item.capture_time - g.cam.last_tiled_hit <= TILED_HIT_HOLD_S:
                g.cam.last_tiled_look = t
                tiles.append(plates.closer_tile(g.item.frame.shape))
            else:
                tiles.append(0)
        self.metrics.count("tiled_looks", sum(1 for g, s in zip(frames, tiles, strict=True) if g.no_vehicle and s))
        return tiles

    def _note_tiled_hits(self, frames: list[_Frame], tiles: list[int], found: list[Detections]) -> None:
        conf = self.engine_config.plate_confidence
        for g, side, dets in zip(frames, tiles, found, strict=True):
            if g.no_vehicle and side and has_plate(dets, conf):
                g.cam.last_tiled_hit = g.item.capture_time
            elif g.closer:
                g.cam.closer_interval = CLOSER_LOOK_INTERVAL_S if has_plate(dets, conf) else \
                    min(2 * g.cam.closer_interval, CLOSER_LOOK_MAX_INTERVAL_S)

    def _plates(self, jobs: list[_VehicleJob]) -> None:
        """Plate detection on the jobs' crops, rectification, reading, then the reads go to their tracks."""
        selected = self._detect_plates(jobs)
        if not selected:
            return
        rectified = self._rectify([s.crop for s in selected])
        reads = self._read(selected, rectified)
        if rectified is not None and self.engine_config.plate_regrow:
            self._regrow_cut(selected, rectified, reads)
        if self.engine_config.plate_second_look and self.plate_reader is not None:
            self._turn_unread(selected, reads)
            self._note_unsure_frames(selected, reads)
        for plate, read in zip(selected, reads, strict=True):
            job, box = plate.job, plate.box
            ox, oy = job.offset
            frame_box = [float(box[0] + ox), float(box[1] + oy), float(box[2] + ox), float(box[3] + oy)]
            area = float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
            obs = PlateObservation(read=read, crop_area=area, frame_time=job.frame.item.capture_time,
                                   det_score=plate.score)
            self.aggregator.add_plate(job.state, obs, plate.crop, job.frame.copy, frame_box, job.box)

    def _detect_plates(self, jobs: list[_VehicleJob]) -> list[_PlateCrop]:
        """The plate detector once over every job's crop; the best plate of each job, cut for reading."""
        if not jobs:
            return []
        conf = self.engine_config.plate_confidence
        with self.metrics.stage("plate_detect"):
            crops = [job.crop for job in jobs]
            plate_dets = self.models.plates.detect_batch(
                crops, coarse_first=self.engine_config.plate_search == "coarse_first", min_confidence=conf)
            for k, job in enumerate(jobs):
                held = None if has_plate(plate_dets[k], conf) else _held_plate(job, conf)
                if held is not None:
                    plate_dets[k] = held
                    job.frame.cam.last_whole_hit = job.frame.item.capture_time
            if self.engine_config.plate_second_look:
                due = self._jobs_due_a_turned_look(jobs, plate_dets)
                if due:
                    self.models.plates.look_again(crops, plate_dets, conf, eligible=due,
                                                  tiles=[self.models.plates.coarse_tile(c.shape, crop=True)
                                                         for c in crops])
                self._count_turned_misses(jobs, plate_dets, due, conf)
                for k in due:
                    jobs[k].turned = True
            for job, dets in zip(jobs, plate_dets, strict=True):
                job.found = has_plate(dets, conf)
        selected: list[_PlateCrop] = []
        for job, dets in zip(jobs, plate_dets, strict=True):
            dets = dets[dets.confidence >= conf]
            if not len(dets):
                self.aggregator.plate_missed(job.state)
                continue
            best = int(np.argmax(dets.confidence))
            box = dets.xyxy[best]  # the tight plate rectangle (calibrated)
            reading_box = np.asarray(dets.data.get("reading_xyxy", dets.xyxy)[best])  # the detector's own box
            plate_crop, _, _ = crop_box(job.crop, reading_box, *READING_PAD)
            if plate_crop.size == 0:
                continue
            selected.append(_PlateCrop(job, box, float(dets.confidence[best]), plate_crop, reading_box))
        self.metrics.count("plates_detected", len(selected))
        return selected

    def _regrow_cut(self, selected: list[_PlateCrop], rectified: list[RectifiedPlate], reads: list[Any]) -> None:
        """Plates the rectifier finds cut by the detector's box (:func:`regrown_box`): the grown box's crop of the
        job's crop is rectified and read, and replaces the plate and its read when :func:`better_regrown_read`."""
        grown = [(i, *found) for i, (s, r) in enumerate(zip(selected, rectified, strict=True))
                 if s.reading_box is not None
                 for found in [regrown_box(s.job.crop, s.reading_box, r, s.job.state.vehicle_class == "motorcycle")]
                 if found is not None]
        if not grown:
            return
        self.metrics.count("regrown_plates", len(grown))
        cuts = [crop_box(selected[i].job.crop, box, *READING_PAD) for i, box, _ in grown]
        again = [_PlateCrop(selected[i].job, box, selected[i].score, crop, box)
                 for (i, box, _), (crop, _, _) in zip(grown, cuts, strict=True)]
        again_rectified = self._rectify([a.crop for a in again])
        again_reads = self._read(again, again_rectified)
        kept = 0
        for k, ((i, _, cut), plate, read) in enumerate(zip(grown, again, again_reads, strict=True)):
            if better_regrown_read(read, reads[i], cut):
                if again_rectified is not None:  # the tight box from the corners found in the grown crop
                    crop, ox, oy = cuts[k]
                    plate.box = found_box(again_rectified[k], (ox, oy), crop.shape[:2], selected[i].box)
                selected[i], reads[i] = plate, read
                kept += 1
        self.metrics.count("regrown_kept", kept)

    def _turn_unread(self, selected: list[_PlateCrop], reads: list[Any]) -> None:
        """Vehicles whose plate read unsure (:func:`wants_turned_look`; a plate :func:`large_enough` to read) and
        whose crop was not searched turned in
        this batch get a turned look of the crop (coarse tiles: the plate was found upright); the best plate found
        there is read and replaces the plate and read when its read is better (:func:`better_read`); a look that
        finds nothing better counts against ``ROTATED_LOOKS_PER_TRACK``."""
        due = [i for i, (s, read) in enumerate(zip(selected, reads, strict=True))
               if wants_turned_look(read) and large_enough(s.crop.shape) and not s.job.turned
               and not s.job.state.plate_only
               and s.job.state.rotated_misses < ROTATED_LOOKS_PER_TRACK
               and s.job.crop.shape[1] >= TURN_MIN_REGION_WIDTH]
        if not due:
            return
        self.metrics.count("unsure_turned_looks", len(due))
        plates = self.models.plates
        with self.metrics.stage("plate_detect"):
            crops = [selected[i].job.crop for i in due]
            turned = turned_plates(plates, crops, self.engine_config.plate_confidence,
                                   [plates.coarse_tile(c.shape, crop=True) for c in crops])
        hits = [(i, found[0]) for i, found in zip(due, turned, strict=True) if found]
        again = [_PlateCrop(selected[i].job, p.box, p.score, p.crop) for i, p in hits]
        again_reads = self._read(again, self._rectify([a.crop for a in again])) if again else []
        better = set()
        for (i, _), plate, read in zip(hits, again, again_reads, strict=True):
            if better_read(read, reads[i]):
                selected[i], reads[i] = plate, read
                better.add(i)
        for i in due:
            selected[i].job.turned = True
            selected[i].job.state.rotated_misses += i not in better
        self.metrics.count("unsure_turned_kept", len(better))

    @staticmethod
    def _note_unsure_frames(selected: list[_PlateCrop], reads: list[Any]) -> None:
        """Cameras whose frame read every plate unsure, or a plate without a vehicle unsure: their next whole-frame
        search is due a turned look (:meth:`_frames_due_a_turned_look`)."""
        sure: dict[int, bool] = {}
        frames: dict[int, _Frame] = {}
        for s, read in zip(selected, reads, strict=True):
            key = id(s.job.frame)
            frames[key] = s.job.frame
            unsure = wants_turned_look(read)
            sure[key] = sure.get(key, False) or not unsure
            if unsure and s.job.state.plate_only:
                frames[key].cam.unsure_whole_at = s.job.frame.item.capture_time
        for key, any_sure in sure.items():
            if not any_sure:
                frames[key].cam.unsure_whole_at = frames[key].item.capture_time

    def _jobs_due_a_turned_look(self, jobs: list[_VehicleJob], found: list[Detections]) -> list[int]:
        """Vehicle crops without a plate, wide enough to hold a readable plate (``TURN_MIN_REGION_WIDTH``), whose
        track's turned looks have not come back empty ``ROTATED_LOOKS_PER_TRACK`` times (a vehicle whose plate
        the turned look finds keeps getting it: its plate is rolled)."""
        conf = self.engine_config.plate_confidence
        due = [k for k, (job, dets) in enumerate(zip(jobs, found, strict=True))
               if job.state.rotated_misses < ROTATED_LOOKS_PER_TRACK and job.crop.shape[1] >= TURN_MIN_REGION_WIDTH
               and not has_plate(dets, conf)]
        self.metrics.count("turned_looks", len(due))
        return due

    @staticmethod
    def _count_turned_misses(jobs: list[_VehicleJob], found: list[Detections], due: list[int], conf: float) -> None:
        for k in due:
            jobs[k].state.rotated_misses += not has_plate(found[k], conf)

    @staticmethod
    def _turned_look_due(g: _Frame) -> bool:
        """The turned-look schedule of a frame searched whole (see :meth:`_frames_due_a_turned_look`)."""
        cam = g.cam
        since = g.look_t - cam.last_rotated_look
        if g.no_vehicle and cam.turned_hits:
            return g.item.capture_time - cam.last_turned_hit <= TURNED_HIT_HOLD_S or since >= ROLLED_CAMERA_INTERVAL_S
        return since >= ROTATED_LOOK_INTERVAL_S

    def _frames_due_a_turned_look(self, frames: list[_Frame], found: list[Detections]) -> list[int]:
        """Frames searched whole in which no plate was found (or whose camera's plates read unsure within
        ``UNSURE_HOLD_S``), whose camera is due a turned look: a frame without vehicles every time within
        ``TURNED_HIT_HOLD_S`` of a turned look that found a plate in one on that camera, one every
        ``ROLLED_CAMERA_INTERVAL_S`` on a camera where one ever did (its mount rolls the plates); otherwise, and
        for frames with vehicles always (their crops get turned looks of their own; this is for a rolled plate no
        vehicle box holds), one every ``ROTATED_LOOK_INTERVAL_S``."""
        due = []
        conf = self.engine_config.plate_confidence
        for k, (g, dets) in enumerate(zip(frames, found, strict=True)):
            if has_plate(dets, conf) and g.item.capture_time - g.cam.unsure_whole_at > UNSURE_HOLD_S:
                continue
            if self._turned_look_due(g):
                g.cam.last_rotated_look = g.look_t
                due.append(k)
        self.metrics.count("turned_looks", len(due))
        return due

    def _rectify(self, crops: list[np.ndarray]) -> list[RectifiedPlate] | None:
        """Corners and layout of each plate, warped upright (None without a rectifier)."""
        if self.plate_rectifier is None or self.plate_reader is None:
            return None
        with self.metrics.stage("rectify"):
            return self.plate_rectifier.rectify_batch(crops)

    def _read(self, selected: list[_PlateCrop], rectified: list[RectifiedPlate] | None) -> list[Any]:
        """The plate reader once over every plate (None per plate without a reader)."""
        if self.plate_reader is None:
            return [None] * len(selected)
        layouts = [reading_layout(rectified[i] if rectified is not None else None,
                                  s.job.state.vehicle_class == "motorcycle") for i, s in enumerate(selected)]
        with self.metrics.stage("read"):  # uncertain rectified plates read again from margin views
            return read_plates(self.plate_reader, [s.crop for s in selected], rectified, layouts,
                               rectifier=self.plate_rectifier)

    def _faces(self, gated: list[_Frame]) -> None:
        face_frames = [g for g in gated if g.cam.camera.analytics.faces]
        if not face_frames:
            return
        searches = face_searches([g.item.frame for g in face_frames], [self._face_regions(g) for g in face_frames])

        def worth_embedding(j: int, faces: Detections) -> np.ndarray:
            search = searches[j]
            return self._faces_worth_embedding(face_frames[search.frame], shifted_faces(faces, search.offset))

        with self.metrics.stage("face"):
            results = self.models.faces.detect_batch([s.image for s in searches], worth_embedding,
                                                     enlarge=[s.whole for s in searches])
        embedded = sum(sum(e is not None for e in r.data.get("embedding", [])) for r in results)
        self.metrics.count("faces_embedded", embedded)
        self.metrics.count("faces_not_embedded", sum(len(r) for r in results) - embedded)
        self.metrics.count("face_regions", sum(not s.whole for s in searches))
        with self.metrics.stage("track"):
            for g, faces in zip(face_frames, faces_per_frame(searches, results, len(face_frames)), strict=True):
                self._attach_faces(g, faces)

    def _face_regions(self, g: _Frame) -> np.ndarray | None:
        """The regions of ``g`` the face detector searches instead of the whole frame (see
        :mod:`pipeline.engine.face_regions`); None: the whole frame (and the camera's clock for it restarts)."""
        if self.engine_config.face_search == "person_boxes" and len(g.persons) and \
                g.look_t - g.cam.last_whole_face_search < WHOLE_FRAME_INTERVAL_S:
            frame_hw = g.item.frame.shape[:2]
            regions = upper_person_regions(g.persons.xyxy, frame_hw)
            if len(regions) and regions_cost_less(regions, frame_hw, DETECTOR_INPUT):
                return regions
        g.cam.last_whole_face_search = g.look_t
        return None

    def _faces_worth_embedding(self, g: _Frame, faces: Detections) -> np.ndarray:
        """Which faces of a frame to embed: a face whose track its box already tells (its person box, or the face
        track the tracker's overlap and centre passes give it) is embedded only while that track holds fewer
        than ``TOP_FACES`` better faces, or when the face track's appearance is ``APPEARANCE_REFRESH_S`` old
        (a face that jumps is found again by it); faces the box does not place (new faces, faces that moved too
        far, which the tracker's appearance pass then places) always are."""
        want = np.ones(len(faces), bool)
        quality = faces.data.get("quality")
        if quality is None or not len(faces):
            return want
        camera_id, t = g.item.camera_id, g.item.capture_time
        want &= self._faces_kept(g, faces)  # the others are dropped before tracking
        owners = assign_faces_to_persons(faces.xyxy, g.persons.xyxy)
        loose = np.flatnonzero((owners < 0) & want)
        by_box = np.full(len(faces), -1, dtype=np.int64)
        if len(loose):
            by_box[loose] = g.cam.faces.match_by_geometry(faces[loose], t)
        for i in np.flatnonzero(want):
            if owners[i] >= 0:
                track_id = int(g.persons.tracker_id[owners[i]])
            elif by_box[i] >= 0:
                track_id = int(by_box[i])
                if t - g.cam.faces.tracks[track_id].embedding_time >= APPEARANCE_REFRESH_S:
                    continue  # its track's appearance is getting old: refresh it
            else:
                continue  # a new face, or one only its embedding can place
            state = self.aggregator.faces.get((camera_id, track_id))
            if state is not None and not self.aggregator.face_could_improve(state, float(quality[i])):
                want[i] = False
        return want

    def _faces_kept(self, g: _Frame, faces: Detections) -> np.ndarray:
        """Boolean mask of the faces the engine tracks: inside the camera's zones, at least the face confidence,
        and at least ``MIN_FACE_SIDE`` pixels on their shorter side."""
        if not len(faces):
            return np.zeros(0, dtype=bool)
        height, width = g.item.frame.shape[:2]
        sides = np.minimum(faces.xyxy[:, 2] - faces.xyxy[:, 0], faces.xyxy[:, 3] - faces.xyxy[:, 1])
        return g.cam.zones.keeps(faces, width, height) & (faces.confidence >= self.engine_config.face_confidence) \
            & (sides >= MIN_FACE_SIDE)

    def _attach_faces(self, g: _Frame, faces: Detections) -> None:
        frame, t, camera_id = g.item.frame, g.item.capture_time, g.item.camera_id
        faces = faces[self._faces_kept(g, faces)]
        if not len(faces):
            return
        owners = assign_faces_to_persons(faces.xyxy, g.persons.xyxy)
        loose = np.flatnonzero(owners < 0)
        face_track_ids = np.full(len(faces), -1, dtype=np.int64)
        if len(loose):
            face_track_ids[loose] = g.cam.faces.assign(faces[loose], t)
        embeddings = faces.data.get("embedding")
        qualities = faces.data.get("quality")
        for i in range(len(faces)):
            if owners[i] >= 0:
                track_id = int(g.persons.tracker_id[owners[i]])
            else:
                track_id = int(face_track_ids[i])
            if track_id < 0:
                continue
            state = self.aggregator.face_track(camera_id, track_id, t)
            if embeddings is None or embeddings[i] is None:
                continue  # not embedded: it could not improve its track (it is still seen)
            quality = float(qualities[i]) if qualities is not None and qualities[i] is not None else 0.0
            crop, _, _ = crop_box(frame, faces.xyxy[i], pad_x=0.2, pad_y=0.2)
            self.aggregator.add_face(state, np.asarray(embeddings[i], dtype=np.float32), quality,
                                     float(faces.confidence[i]), faces.xyxy[i], t, crop, g.copy)

    # -- events -----------------------------------------------------------------------------------------------

    def _expire_and_publish(self, runtime: CameraRuntime, now: float, measure_latency: bool = True,
                            count_misses: bool = True) -> None:
        """End the camera's tracks that are lost at ``now`` (unseen ``track_lost_s`` and, with ``count_misses``,
        missed by its last looks: see :data:`pipeline.engine.tracking.LOST_AFTER_MISSES`) and publish what is
        due."""
        camera_id = runtime.camera.id
        for tracker in runtime.trackers:
            ended = tracker.expire(now, count_misses)
            if ended:
                self.aggregator.end_tracks(camera_id, [tr.track_id for tr in ended])
        due = self.aggregator.due(camera_id, now)
        if due:
            with self.metrics.stage("publish"):
                trigger = runtime.last_capture if measure_latency else None
                for state in due:
                    self._publish_state(state, trigger_capture_time=trigger)

    def _publish_state(self, state: TrackState, trigger_capture_time: float | None) -> None:
        """Write the JPEGs, build the next version of the state's event, match it, publish event and alerts.

        ``trigger_capture_time``: capture time of the frame whose processing made the event due (for the
        capture-to-Redis latency metric); None when the event is due for another reason (shutdown, silence).
        """
        version = state.version + 1
        snapshot_failures = self.snapshots.total_failures
        frame_rel = self.snapshots.save(state.camera_id, state.best_time, state.event_id, "frame", state.best_frame) \
            if state.best_frame is not None else None
        if isinstance(state, VehicleState):
            crop_rel = self.snapshots.save(state.camera_id, state.best_time, state.event_id, "plate", state.best_crop) \
                if state.best_crop is not None else None
            event: Any = self.aggregator.plate_event(state, frame_rel, crop_rel)
            kind = "plate"
            alerts = self.matcher.match_plate(event) if self.matcher is not None else []
        else:
            assert isinstance(state, FaceState)
            crop_rel = self.snapshots.save(state.camera_id, state.best_time, state.event_id, "face", state.best_crop) \
                if state.best_crop is not None else None
            event = self.aggregator.face_event(state, frame_rel, crop_rel)
            kind = "face"
            alerts = self.matcher.match_face(event) if self.matcher is not None else []
        self.aggregator.mark_published(state, state.last_seen if trigger_capture_time is None else trigger_capture_time)
        if trigger_capture_time is not None:
            self._trigger_times[(event.event_id, version)] = trigger_capture_time
        self._emit(kind, event)
        for alert in alerts:
            self._emit("alert", alert)
        self.metrics.count(f"{kind}_events")
        self.metrics.count("alerts", len(alerts))
        self.metrics.count("event_snapshot_errors", self.snapshots.total_failures - snapshot_failures)

    def _emit(self, kind: str, record: Any) -> None:
        if self.publisher is None:
            self.events.append((kind, record))
            self.on_delivered(kind, record)
            return
        self.publisher.publish(kind, record)

    def on_delivered(self, kind: str, record: Any) -> None:
        """Called once a record is stored: records the capture-to-Redis latency of events (live runs)."""
        if kind == "alert":
            return
        trigger = self._trigger_times.pop((record.event_id, record.version), None)
        if trigger is not None and self.live:
            self.metrics.observe_latency(time.time() - trigger)
        while len(self._trigger_times) > MAX_PENDING_LATENCIES:  # never delivered (dropped): forget the oldest
            del self._trigger_times[next(iter(self._trigger_times))]

    def tick(self, pending: Callable[[str], bool] | None = None) -> None:
        """Live runs: end tracks of cameras that stopped sending frames (wall clock), without a new batch.

        ``pending(camera_id)`` tells whether frames of that camera are still queued: such a camera is not silent,
        the engine is just behind, and its tracks are ended by capture time when those frames are processed.
        """
        if not self.live:
            return
        wall = time.time()
        for runtime in self.cameras.values():
            if pending is not None and pending(runtime.camera.id):
                continue
            silent_for = wall - runtime.last_arrival
            if runtime.last_arrival and silent_for > self.engine_config.track_lost_s:
                self._expire_and_publish(runtime, runtime.last_capture + silent_for, measure_latency=False,
                                         count_misses=False)

    def finish(self) -> None:
        """End every track and publish what is due (end of a file or shutdown)."""
        for runtime in self.cameras.values():
            camera_id = runtime.camera.id
            for tracker in runtime.trackers:
                self.aggregator.end_tracks(camera_id, [tr.track_id for tr in tracker.drain()])
            for state in self.aggregator.due(camera_id, runtime.last_capture):
                self._publish_state(state, trigger_capture_time=None)


def _held_plate(job: _VehicleJob, min_confidence: float) -> Detections | None:
    """The whole-frame window's plates of at least ``min_confidence`` whose centre lies in the job's vehicle box,
    in the job's crop pixels (reading box likewise), or None: for a crop whose upright search found no plate, the
    whole frame's upright box is sharper than the hull of a turned look, and two detector windows cheaper."""
    held = job.frame.held_plates
    if not len(held):
        return None
    mine = held[(held.confidence >= min_confidence) & centres_inside(held.xyxy, job.box)[:, 0]]
    if not len(mine):
        return None
    ox, oy = job.offset
    shift = np.float32([ox, oy, ox, oy])
    reading = np.asarray(mine.data.get("reading_xyxy", mine.xyxy), np.float32).reshape(-1, 4) - shift
    return Detections(mine.xyxy - shift, mine.confidence, mine.class_id, None, {"reading_xyxy": reading})


def assign_faces_to_persons(faces_xyxy: np.ndarray, persons_xyxy: np.ndarray) -> np.ndarray:
    """For each face, the index of the smallest person box that contains the face centre in its upper half; -1 if none."""
    owners = np.full(len(faces_xyxy), -1, dtype=np.int64)
    if not len(faces_xyxy) or not len(persons_xyxy):
        return owners
    fc = np.stack([(faces_xyxy[:, 0] + faces_xyxy[:, 2]) / 2, (faces_xyxy[:, 1] + faces_xyxy[:, 3]) / 2], axis=1)
    px1, py1, px2, py2 = (persons_xyxy[:, k][None, :] for k in range(4))
    upper = py1 + 0.6 * (py2 - py1)
    inside = (fc[:, 0:1] >= px1) & (fc[:, 0:1] <= px2) & (fc[:, 1:2] >= py1) & (fc[:, 1:2] <= upper)
    # the face must not be much wider than the person box (a close-up face is not "inside" a tiny far person)
    face_w = (faces_xyxy[:, 2] - faces_xyxy[:, 0])[:, None]
    inside &= face_w <= (px2 - px1) * 1.05
    area = (px2 - px1) * (py2 - py1)
    for i in range(len(faces_xyxy)):
        candidates = np.flatnonzero(inside[i])
        if len(candidates):
            owners[i] = int(candidates[np.argmin(area[0, candidates])])
    return owners


def _default_vote() -> Callable[[list[Any], list[float]], Any] | None:
    try:
        from pipeline.plates.voting import vote
    except ImportError as exc:
        logger.warning("plate voting unavailable (%s): plate events carry no voted text", exc)
        return None
    return vote
