"""Track -> event aggregation: what is remembered per track and when its event is published.

A vehicle track collects the plate reads of its frames (voted with :func:`pipeline.plates.voting.vote`), the best
plate crop and the full frame it came from. A person (or face-only) track keeps its best face by quality with the
embedding, crop and frame. An event is published when the track ends or once it is ``publish_after_s`` old,
whichever comes first; later, a better read/face publishes the same ``event_id`` with ``version + 1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.events import FaceEvent, PlateCandidate, PlateEvent, new_event_id

logger = logging.getLogger(__name__)

PLATE_ONLY_CLASS = -1  # class of a plate tracked without a vehicle (the event says "vehicle")
VEHICLE_CLASS_NAMES = {PLATE_ONLY_CLASS: "vehicle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
MAX_OBSERVATIONS = 64
MIN_TEXT_GAIN = 0.05
MIN_QUALITY_GAIN = 0.05
PLATE_INTERVAL_S = 0.4
SETTLED_GROWTH = 1.5  # a settled vehicle is read again once its box is this many times the largest box read
TOP_FACES = 3


@dataclass
class PlateObservation:
    """One frame's plate of a vehicle track."""

    read: Any  # PlateRead | None (None when no reader is available)
    crop_area: float
    frame_time: float
    det_score: float


@dataclass
class TrackState:
    """Event bookkeeping common to vehicle and face tracks."""

    camera_id: str
    track_id: int
    started_at: float
    last_seen: float
    hits: int = 0
    event_id: str = field(default_factory=new_event_id)
    version: int = 0
    last_publish_time: float | None = None
    published_until: float = 0.0
    ended: bool = False
    best_score: float = -1.0
    best_time: float = 0.0
    best_crop: np.ndarray | None = None
    best_frame: np.ndarray | None = None
    dirty: bool = False

    @property
    def published(self) -> bool:
        """Whether a version of the event is out."""
        return self.version > 0


@dataclass
class VehicleState(TrackState):
    """A vehicle track and its plate evidence."""

    class_votes: dict[int, float] = field(default_factory=dict)
    observations: list[PlateObservation] = field(default_factory=list)
    best_plate_box: list[float] = field(default_factory=list)
    best_vehicle_box: list[float] = field(default_factory=list)
    published_text: str = ""
    published_confidence: float = -1.0
    voted: Any = None
    last_plate_attempt: float | None = None
    plate_misses: int = 0
    read_box_area: float = 0.0  # largest vehicle box (px^2) the plate was looked for in
    rotated_misses: int = 0  # turned second looks on this vehicle that found no plate (plate_second_look)

    @property
    def vehicle_class(self) -> str:
        """Majority vehicle class name over the track."""
        if not self.class_votes:
            return "car"
        return VEHICLE_CLASS_NAMES.get(max(self.class_votes, key=self.class_votes.__getitem__), "car")

    @property
    def plate_only(self) -> bool:
        """The track follows a plate seen without any vehicle (no vehicle detection ever voted)."""
        return set(self.class_votes) == {PLATE_ONLY_CLASS}

    @property
    def has_content(self) -> bool:
        """A plate was seen at least once. A plate tracked without a vehicle also needs one read that is a real
        Thai plate (when a reader runs): text on a van or a sign that the plate detector fires on is no event."""
        if not self.plate_only:
            return bool(self.observations)
        # without a reader (read None) the detection alone is the evidence
        return any(o.read is None or getattr(o.read, "valid", False) for o in self.observations)


@dataclass
class FaceState(TrackState):
    """A person (or face-only) track and its best face."""

    embedding: np.ndarray | None = None
    quality: float = 0.0
    det_score: float = 0.0
    face_box: list[float] = field(default_factory=list)
    published_quality: float = -1.0
    top_faces: list[tuple[float, np.ndarray]] = field(default_factory=list)

    @property
    def has_content(self) -> bool:
        """A face with an embedding was seen at least once."""
        return self.embedding is not None


class Aggregator:
    """Holds the per-track states of every camera and decides which events are due."""

    def __init__(
        self,
        publish_after_s: float,
        min_hits: int,
        vote: Callable[[list[Any], list[float]], Any] | None,
        max_agreeing_reads: int = 8,
        update_interval_s: float = 1.0,
        settle_reads: int | None = None,
        settle_confidence: float = 0.75,
    ) -> None:
        self.publish_after_s = publish_after_s
        self.min_hits = min_hits
        self.vote = vote
        self.max_agreeing_reads = max_agreeing_reads
        self.settle_reads = min(settle_reads or max_agreeing_reads, max_agreeing_reads)
        self.settle_confidence = settle_confidence
        self.settled_skips = 0  # plate looks saved on settled vehicles (a metric)
        self.update_interval_s = update_interval_s
        self.vehicles: dict[tuple[str, int], VehicleState] = {}
        self.faces: dict[tuple[str, int], FaceState] = {}

    # -- updates ----------------------------------------------------------------------------------------------

    def vehicle(self, camera_id: str, track_id: int, t: float, class_id: int, score: float) -> VehicleState:
        """Record a detection of a vehicle track at time ``t`` and return its state."""
        state = self.vehicles.get((camera_id, track_id))
        if state is None:
            state = self.vehicles[(camera_id, track_id)] = VehicleState(camera_id, track_id, t, t)
        state.last_seen = max(state.last_seen, t)
        state.hits += 1
        state.class_votes[class_id] = state.class_votes.get(class_id, 0.0) + score
        return state

    def face_track(self, camera_id: str, track_id: int, t: float) -> FaceState:
        """Record a detection of a person/face track at time ``t`` and return its state."""
        state = self.faces.get((camera_id, track_id))
        if state is None:
            state = self.faces[(camera_id, track_id)] = FaceState(camera_id, track_id, t, t)
        state.last_seen = max(state.last_seen, t)
        state.hits += 1
        return state

    def plate_settled(self, state: VehicleState) -> bool:
        """Whether the vehicle's voted plate can no longer change: ``max_agreeing_reads`` agreeing frames, or
        ``settle_reads`` agreeing frames with a vote and a province both at ``settle_confidence`` or better
        (without a reader: ``max_agreeing_reads`` crops collected)."""
        voted = state.voted
        if voted is None:
            return self.vote is None and len(state.observations) >= self.max_agreeing_reads
        agreeing = getattr(voted, "agreeing_frames", 0)
        if agreeing >= self.max_agreeing_reads:
            return True
        return (agreeing >= self.settle_reads and voted.confidence >= self.settle_confidence
                and voted.province is not None and voted.province_confidence >= self.settle_confidence)

    def wants_plate(self, state: VehicleState, t: float, box_area: float | None = None) -> bool:
        """Whether to look for this vehicle's plate in the frame at ``t`` (its box ``box_area`` px^2 now).

        Only while the plate can still change the answer: not on a settled vehicle (:meth:`plate_settled`)
        unless its box has grown to :data:`SETTLED_GROWTH` times the largest box its plate was looked for in
        (an approaching vehicle: a larger, sharper plate may correct the read); never after
        ``max_agreeing_reads`` agreeing frames; at most once per ``PLATE_INTERVAL_S`` per track (consecutive
        frames add little), backing off on vehicles whose plate is not found.
        """
        if state.last_plate_attempt is not None:
            # back off on vehicles whose plate is not visible (side views, far away): 0.4 s, 0.8 s, ... 3.2 s
            interval = PLATE_INTERVAL_S * 2 ** min(state.plate_misses, 3)
            if t - state.last_plate_attempt < interval:
                return False
        voted = state.voted
        if voted is not None and getattr(voted, "agreeing_frames", 0) >= self.max_agreeing_reads:
            return False
        if self.vote is None or not any(o.read is not None for o in state.observations):
            if len(state.observations) >= self.max_agreeing_reads:
                return False
        if self.plate_settled(state) and (box_area is None or box_area < SETTLED_GROWTH * state.read_box_area):
            self.settled_skips += 1
            return False
        state.last_plate_attempt = t
        if box_area is not None:
            state.read_box_area = max(state.read_box_area, box_area)
        return True

    @staticmethod
    def plate_missed(state: VehicleState) -> None:
        """The plate detector found nothing on this vehicle this time."""
        state.plate_misses += 1

    def add_plate(
        self,
        state: VehicleState,
        obs: PlateObservation,
        crop: np.ndarray,
        frame_getter: Callable[[], np.ndarray],
        plate_box: Sequence[float],
        vehicle_box: Sequence[float],
    ) -> None:
        """Add one plate observation; keep the crop/frame if it is the best so far; re-vote."""
        state.observations.append(obs)
        state.plate_misses = 0
        if len(state.observations) > MAX_OBSERVATIONS:
            # keep the most informative observations (largest crops) when a track lives very long
            state.observations.sort(key=lambda o: (o.read is not None and _read_confidence(o.read)) * o.crop_area)
            state.observations = state.observations[-MAX_OBSERVATIONS:]
        score = _plate_crop_score(obs)
        if score > state.best_score:
            state.best_score = score
            state.best_time = obs.frame_time
            state.best_crop = np.ascontiguousarray(crop).copy()
            state.best_frame = frame_getter()
            state.best_plate_box = [float(v) for v in plate_box]
            state.best_vehicle_box = [float(v) for v in vehicle_box]
        reads = [o.read for o in state.observations if o.read is not None]
        if self.vote is not None and reads:
            areas = [o.crop_area for o in state.observations if o.read is not None]
            state.voted = self.vote(reads, areas)
        text, confidence = self._voted_text(state)
        if not state.published or text != state.published_text or confidence > state.published_confidence + MIN_TEXT_GAIN:
            state.dirty = True

    @staticmethod
    def face_could_improve(state: FaceState, quality: float) -> bool:
        """Whether a face of this quality would enter the track's ``TOP_FACES`` best (and so change its
        template, crop or snapshot)."""
        if len(state.top_faces) < TOP_FACES or state.embedding is None:
            return True
        return quality > min(q for q, _ in state.top_faces)

    def add_face(
        self,
        state: FaceState,
        embedding: np.ndarray,
        quality: float,
        det_score: float,
        box: Sequence[float],
        t: float,
        crop: np.ndarray,
        frame_getter: Callable[[], np.ndarray],
    ) -> None:
        """Offer one face of a person/face track.

        The event's embedding is the normalised mean of the track's ``TOP_FACES`` best-quality embeddings (a
        template is more robust than one frame); the crop and snapshot are those of the best face.
        """
        emb = np.asarray(embedding, dtype=np.float32)
        state.top_faces.append((float(quality), emb))
        state.top_faces.sort(key=lambda qe: -qe[0])
        del state.top_faces[TOP_FACES:]
        if quality <= state.quality and state.embedding is not None:
            if any(e is emb for _, e in state.top_faces):
                state.embedding = _mean_embedding([e for _, e in state.top_faces])
                state.dirty = state.dirty or not state.published
            return
        state.embedding = _mean_embedding([e for _, e in state.top_faces])
        state.quality = float(quality)
        state.det_score = float(det_score)
        state.face_box = [float(v) for v in box]
        state.best_time = t
        state.best_crop = np.ascontiguousarray(crop).copy()
        state.best_frame = frame_getter()
        if not state.published or state.quality > state.published_quality + MIN_QUALITY_GAIN:
            state.dirty = True

    # -- decisions --------------------------------------------------------------------------------------------

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        """Mark tracks of ``camera_id`` as ended (the tracker lost them)."""
        for tid in track_ids:
            for table in (self.vehicles, self.faces):
                state = table.get((camera_id, tid))
                if state is not None:
                    state.ended = True

    def due(self, camera_id: str, now: float) -> list[TrackState]:
        """States of ``camera_id`` whose event must be (re)published now; ended states are removed."""
        out: list[TrackState] = []
        for table in (self.vehicles, self.faces):
            for key in [k for k in table if k[0] == camera_id]:
                state = table[key]
                if self._is_due(state, now):
                    out.append(state)
                if state.ended:
                    del table[key]
        return out

    def all_cameras(self) -> set[str]:
        """Cameras with live track states."""
        return {k[0] for k in self.vehicles} | {k[0] for k in self.faces}

    def _is_due(self, state: TrackState, now: float) -> bool:
        if not state.has_content or state.hits < self.min_hits:
            return False
        if state.ended:
            # the final version: anything better, or the track went on after the last publication
            return state.dirty or (state.published and state.last_seen > state.published_until)
        if not state.dirty:
            return False
        if not state.published:
            return now - state.started_at >= self.publish_after_s
        return state.last_publish_time is None or now - state.last_publish_time >= self.update_interval_s

    # -- event construction -----------------------------------------------------------------------------------

    @staticmethod
    def _voted_text(state: VehicleState) -> tuple[str, float]:
        voted = state.voted
        if voted is None:
            return "", 0.0
        return str(voted.text or ""), float(voted.confidence)

    def plate_event(self, state: VehicleState, snapshot_path: str | None, crop_path: str | None) -> PlateEvent:
        """Build the next version of a vehicle track's event and mark it published."""
        text, confidence = self._voted_text(state)
        voted = state.voted
        reads_total = sum(1 for o in state.observations if o.read is not None)
        event = PlateEvent(
            event_id=state.event_id,
            version=state.version + 1,
            camera_id=state.camera_id,
            track_id=state.track_id,
            started_at=state.started_at,
            ended_at=state.last_seen,
            frame_time=state.best_time,
            plate_text=text,
            province=getattr(voted, "province", None) if voted else None,
            province_latin=getattr(voted, "province_latin", None) if voted else None,
            confidence=min(max(confidence, 0.0), 1.0),
            candidates=[
                PlateCandidate(text=str(t), score=min(max(float(s), 0.0), 1.0))
                for t, s in (getattr(voted, "candidates", None) or [])[:5] if t
            ],
            agreeing_frames=int(getattr(voted, "agreeing_frames", 0)) if voted else 0,
            total_frames=int(getattr(voted, "total_frames", reads_total)) if voted else reads_total,
            vehicle_class=state.vehicle_class,
            vehicle_box=state.best_vehicle_box,
            plate_box=state.best_plate_box,
            snapshot_path=snapshot_path,
            crop_path=crop_path,
        )
        state.published_text, state.published_confidence = text, confidence
        return event

    def face_event(self, state: FaceState, snapshot_path: str | None, crop_path: str | None) -> FaceEvent:
        """Build the next version of a face track's event and mark it published."""
        assert state.embedding is not None
        event = FaceEvent(
            event_id=state.event_id,
            version=state.version + 1,
            camera_id=state.camera_id,
            track_id=state.track_id,
            started_at=state.started_at,
            ended_at=state.last_seen,
            frame_time=state.best_time,
            embedding=[float(v) for v in state.embedding],
            quality=min(max(state.quality, 0.0), 1.0),
            det_score=min(max(state.det_score, 0.0), 1.0),
            face_box=state.face_box,
            snapshot_path=snapshot_path,
            crop_path=crop_path,
        )
        state.published_quality = state.quality
        return event

    @staticmethod
    def mark_published(state: TrackState, now: float) -> None:
        """Record that the state's next version went out (to Redis or to the spool)."""
        state.version += 1
        state.last_publish_time = now
        state.published_until = state.last_seen
        state.dirty = False
        if state.ended:
            state.best_frame = None
            state.best_crop = None


def _mean_embedding(embeddings: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(np.stack(embeddings), axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-9)).astype(np.float32)


def _read_confidence(read: Any) -> float:
    return float(getattr(read, "confidence", 0.0) or 0.0)


def _plate_crop_score(obs: PlateObservation) -> float:
    """How good a plate crop is as evidence: read confidence (or detector score) and size."""
    base = _read_confidence(obs.read) if obs.read is not None else obs.det_score
    return base + 0.5 * min(1.0, obs.crop_area / 6000.0)
