"""Per-camera multi-object tracking: IoU association with a constant-velocity Kalman filter (SORT/ByteTrack style).

Why our own tracker rather than a frame-counting one: frames reach the engine at irregular intervals (motion gating
skips static frames, backpressure drops frames), so ageing and motion prediction are driven by *capture time*, not
by frame counts. A track also has to miss :data:`LOST_AFTER_MISSES` looks in a row before it ends: a camera analysed
less often than ``lost_s`` allows (a saturated engine analyses each of many cameras once every few seconds) would
otherwise end every track between two of its frames and start it again on the next, splitting one vehicle or face
into an event per frame and paying the new track's plate and face work each time. Association follows ByteTrack:
confident detections are matched first (IoU, Hungarian), then low-score detections may continue unmatched tracks;
leftovers are matched on centre distance (fast objects at low analysis fps); only confident leftovers start new
tracks. Track ids are written into ``Detections.tracker_id``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.detections import Detections

LOST_AFTER_MISSES = 2
"""Looks in a row a track must miss, besides being unseen for ``lost_s``, before it ends (a camera analysed once every
few seconds keeps its tracks across one missed detection, as at full rate)."""
LOST_UNLOOKED_FACTOR = 5.0
"""A track its tracker did not look for (a plate-only track while only vehicle crops are searched) ends after this
many ``lost_s`` unseen, misses or not."""


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4) in xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def _to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)], dtype=np.float64)


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).ravel()
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _assign(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Optimal one-to-one (row, column) pairs of ``similarity`` whose similarity reaches ``threshold``."""
    rows, cols = linear_sum_assignment(-similarity)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if similarity[r, c] >= threshold]


def _to_xyxy(state: np.ndarray) -> np.ndarray:
    cx, cy, w, h = state[:4]
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)


@dataclass
class Track:
    """One tracked object; velocities are in pixels per second."""

    track_id: int
    class_id: int
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    state: np.ndarray = field(default_factory=lambda: np.zeros(8))
    cov: np.ndarray = field(default_factory=lambda: np.eye(8))
    state_time: float = 0.0
    class_votes: dict[int, float] = field(default_factory=dict)
    embedding: np.ndarray | None = None  # running mean of unit appearance embeddings (face tracks)
    embedding_time: float = float("-inf")  # capture time of the last embedding in that mean
    misses: int = 0  # looks in a row (detector frames of its camera) that did not find it

    @property
    def box(self) -> np.ndarray:
        """Current box estimate (xyxy)."""
        return _to_xyxy(self.state)

    @property
    def majority_class(self) -> int:
        """Class with the highest summed detection score over the track's life."""
        return max(self.class_votes, key=self.class_votes.__getitem__) if self.class_votes else self.class_id


class KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, w, h) with time-scaled process noise."""

    def __init__(self, position_noise: float = 0.05, velocity_noise: float = 0.2) -> None:
        self.position_noise = position_noise
        self.velocity_noise = velocity_noise

    def initiate(self, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """State and covariance of a new track."""
        mean = np.zeros(8)
        mean[:4] = _to_cxcywh(box)
        size = max(mean[2], mean[3])
        std = np.array([0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 0.5, 0.5]) * size
        return mean, np.diag(std**2)

    def predict(self, mean: np.ndarray, cov: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance the state by ``dt`` seconds."""
        dt = max(dt, 0.0)
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        size = max(mean[2], mean[3], 1.0)
        q_pos = (self.position_noise * size) ** 2 * max(dt, 1e-3)
        q_vel = (self.velocity_noise * size) ** 2 * max(dt, 1e-3)
        q = np.diag([q_pos] * 4 + [q_vel] * 4)
        return f @ mean, f @ cov @ f.T + q

    def update(self, mean: np.ndarray, cov: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct the state with a measured box."""
        h = np.zeros((4, 8))
        h[:, :4] = np.eye(4)
        z = _to_cxcywh(box)
        size = max(z[2], z[3])
        r = np.diag([(0.05 * size) ** 2] * 4)
        s = h @ cov @ h.T + r
        k = cov @ h.T @ np.linalg.inv(s)
        mean = mean + k @ (z - h @ mean)
        cov = (np.eye(8) - k @ h) @ cov
        return mean, cov


class Tracker:
    """Multi-object tracker of one camera and one object family (vehicles, persons or faces)."""

    def __init__(
        self,
        lost_s: float,
        high_score: float = 0.5,
        low_score: float = 0.1,
        iou_threshold: float = 0.2,
        centre_threshold: float = 0.6,
        id_source: Callable[[], int] | None = None,
        appearance_threshold: float | None = None,
    ) -> None:
        self.lost_s = lost_s
        self.high_score = high_score
        self.low_score = low_score
        self.iou_threshold = iou_threshold
        self.centre_threshold = centre_threshold
        self.appearance_threshold = appearance_threshold
        self._next_id = id_source or itertools.count(1).__next__
        self._kf = KalmanBox()
        self.tracks: dict[int, Track] = {}

    def update(self, detections: Detections, t: float) -> Detections:
        """Associate ``detections`` seen at time ``t``; return the tracked ones with ``tracker_id`` set."""
        ids = self.assign(detections, t)
        tracked = detections[ids >= 0]
        tracked.tracker_id = ids[ids >= 0]
        return tracked

    def assign(self, detections: Detections, t: float) -> np.ndarray:
        """Associate ``detections`` seen at time ``t``; return one track id per detection (-1: not tracked)."""
        self._predict(t)
        tracks = list(self.tracks.values())
        ids = np.full(len(detections), -1, dtype=np.int64)
        high, low = self._score_bands(detections)
        track_boxes = np.stack([tr.box for tr in tracks]) if tracks else np.zeros((0, 4), np.float32)
        matches, unmatched_tracks = self._match_geometry(track_boxes, detections, high, low)
        for ti, d in matches:
            self._apply(tracks[ti], detections, d, t)
            ids[d] = tracks[ti].track_id
        for ti, d in self._associate_by_appearance(tracks, unmatched_tracks, detections, high[ids[high] < 0]):
            self._apply(tracks[ti], detections, d, t)
            ids[d] = tracks[ti].track_id
        found = set(ids[ids >= 0].tolist())
        for track in tracks:
            track.misses += track.track_id not in found
        for d in high:
            if ids[d] < 0:
                ids[d] = self._start(detections, int(d), t).track_id
        return ids

    def match_by_geometry(self, detections: Detections, t: float) -> np.ndarray:
        """The track each detection would join by its box alone (:meth:`assign`'s overlap and centre passes on the
        tracks predicted to ``t``), without changing any track; -1 where only its appearance, or a new track,
        could place it. The engine uses it to embed only the faces whose track their box does not already tell."""
        tracks = list(self.tracks.values())
        ids = np.full(len(detections), -1, dtype=np.int64)
        if not tracks or not len(detections):
            return ids
        high, low = self._score_bands(detections)
        matches, _ = self._match_geometry(self.predicted_boxes(t), detections, high, low)
        for ti, d in matches:
            ids[d] = tracks[ti].track_id
        return ids

    def _score_bands(self, detections: Detections) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the high-score detections and of the low-score ones the tracker still follows."""
        high = np.flatnonzero(detections.confidence >= self.high_score)
        low = np.flatnonzero((detections.confidence < self.high_score) & (detections.confidence >= self.low_score))
        return high, low

    def _match_geometry(self, track_boxes: np.ndarray, detections: Detections, high: np.ndarray, low: np.ndarray
                        ) -> tuple[list[tuple[int, int]], list[int]]:
        """Overlap pass on the high-score detections, then on the low ones, then a centre pass on the high ones
        left; returns the (track index, detection) pairs and the track indices left unmatched."""
        matched_dets: set[int] = set()
        pairs_out: list[tuple[int, int]] = []
        unmatched_tracks = list(range(len(track_boxes)))
        for det_idx, by_centre in ((high, False), (low, False), (high, True)):
            det_idx = np.array([i for i in det_idx if int(i) not in matched_dets], dtype=np.int64)
            pairs = self._associate(track_boxes, unmatched_tracks, detections.xyxy[det_idx], by_centre)
            for ti, di in pairs:
                pairs_out.append((unmatched_tracks[ti], int(det_idx[di])))
                matched_dets.add(int(det_idx[di]))
            matched = {unmatched_tracks[ti] for ti, _ in pairs}
            unmatched_tracks = [i for i in unmatched_tracks if i not in matched]
        return pairs_out, unmatched_tracks

    def touch(self, t: float) -> None:
        """Mark every live track as still present at ``t`` (the scene did not change, so nothing left)."""
        for track in self.tracks.values():
            track.last_seen = max(track.last_seen, t)
            track.misses = 0

    def expire(self, now: float, count_misses: bool = True) -> list[Track]:
        """Remove and return the tracks unseen for longer than ``lost_s`` at time ``now`` that also missed
        :data:`LOST_AFTER_MISSES` looks in a row or were not looked for in :data:`LOST_UNLOOKED_FACTOR` times that
        (``count_misses=False``: time alone, for a camera that stopped sending frames)."""
        ended = [tr for tr in self.tracks.values() if now - tr.last_seen > self.lost_s
                 and (not count_misses or tr.misses >= LOST_AFTER_MISSES
                      or now - tr.last_seen > LOST_UNLOOKED_FACTOR * self.lost_s)]
        for track in ended:
            del self.tracks[track.track_id]
        return ended

    def predicted_boxes(self, t: float) -> np.ndarray:
        """Where the live tracks are expected at time ``t`` (xyxy, one row per track), without changing them."""
        boxes = []
        for track in self.tracks.values():
            dt = t - track.state_time
            boxes.append(_to_xyxy(self._kf.predict(track.state, track.cov, dt)[0]) if dt > 0 else track.box)
        return np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)

    def drain(self) -> list[Track]:
        """Remove and return every track (end of stream)."""
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended

    def _predict(self, t: float) -> None:
        for track in self.tracks.values():
            dt = t - track.state_time
            if dt > 0:
                track.state, track.cov = self._kf.predict(track.state, track.cov, dt)
                track.state_time = t

    def _associate(
        self, all_track_boxes: np.ndarray, candidates: list[int], boxes: np.ndarray, by_centre: bool
    ) -> list[tuple[int, int]]:
        if not candidates or not len(boxes):
            return []
        track_boxes = all_track_boxes[candidates]
        if by_centre:
            similarity = self._centre_similarity(track_boxes, boxes)
            threshold = 1.0 - self.centre_threshold
        else:
            similarity = iou_matrix(track_boxes, boxes)
            threshold = self.iou_threshold
        return _assign(similarity, threshold)

    def _associate_by_appearance(
        self, tracks: list[Track], candidates: list[int], detections: Detections, det_idx: np.ndarray
    ) -> list[tuple[int, int]]:
        """Last pass (face tracks): a face that moved too far for its box to match keeps its track when its
        embedding matches the track's (cosine >= ``appearance_threshold``); returns (track index, detection)."""
        embeddings = detections.data.get("embedding")
        if self.appearance_threshold is None or embeddings is None or not len(det_idx):
            return []
        cands = [i for i in candidates if tracks[i].embedding is not None]
        dets = [int(d) for d in det_idx if embeddings[d] is not None]
        if not cands or not dets:
            return []
        a = np.stack([tracks[i].embedding for i in cands])
        b = np.stack([_unit(embeddings[d]) for d in dets])
        return [(cands[r], dets[c]) for r, c in _assign(a @ b.T, self.appearance_threshold)]

    @staticmethod
    def _centre_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """1 - centre distance / track diagonal, zeroed where the sizes differ by more than 2x."""
        ca = (a[:, None, :2] + a[:, None, 2:]) / 2
        cb = (b[None, :, :2] + b[None, :, 2:]) / 2
        diag = np.linalg.norm(a[:, 2:] - a[:, :2], axis=1)[:, None]
        dist = np.linalg.norm(ca - cb, axis=2) / np.maximum(diag, 1.0)
        area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 1, None), axis=1)[:, None]
        area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 1, None), axis=1)[None, :]
        ratio = area_a / area_b
        similar_size = (ratio > 0.5) & (ratio < 2.0)
        return np.where(similar_size, 1.0 - dist, 0.0)

    def _apply(self, track: Track, detections: Detections, d: int, t: float) -> None:
        track.state, track.cov = self._kf.update(track.state, track.cov, detections.xyxy[d])
        track.state_time = t
        track.last_seen = max(track.last_seen, t)
        track.misses = 0
        track.hits += 1
        track.score = float(detections.confidence[d])
        track.class_id = int(detections.class_id[d])
        track.class_votes[track.class_id] = track.class_votes.get(track.class_id, 0.0) + track.score
        self._remember_appearance(track, detections, d, t)

    @staticmethod
    def _remember_appearance(track: Track, detections: Detections, d: int, t: float) -> None:
        embeddings = detections.data.get("embedding")
        if embeddings is None or embeddings[d] is None:
            return
        e = _unit(embeddings[d])
        track.embedding = e if track.embedding is None else _unit(0.7 * track.embedding + 0.3 * e)
        track.embedding_time = t

    def _start(self, detections: Detections, d: int, t: float) -> Track:
        mean, cov = self._kf.initiate(detections.xyxy[d])
        class_id = int(detections.class_id[d])
        score = float(detections.confidence[d])
        track = Track(
            track_id=int(self._next_id()), class_id=class_id, score=score, first_seen=t, last_seen=t,
            state=mean, cov=cov, state_time=t, class_votes={class_id: score},
        )
        self._remember_appearance(track, detections, d, t)
        self.tracks[track.track_id] = track
        return track
