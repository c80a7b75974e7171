"""Faces searched in the upper part of person boxes: the regions, their cost rule, faces moved back into the
frame, and on real footage the same faces as the whole frame (and the engine's choice of regions or whole frame)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.config import Config, EngineConfig
from pipeline.detections import Detections
from pipeline.engine.engine import Engine, assign_faces_to_persons
from pipeline.engine.face_regions import (
    MIN_REGION_SIDE,
    WHOLE_FRAME_INTERVAL_S,
    face_searches,
    faces_per_frame,
    merge_overlapping,
    regions_cost_less,
    shifted_faces,
    upper_person_regions,
)
from pipeline.engine.tracking import iou_matrix

PERSON = 0


def test_regions_cover_the_upper_part_of_each_person_merged_and_clipped() -> None:
    persons = np.float32([[100, 100, 200, 400],  # a person
                          [180, 120, 280, 420],  # beside it, overlapping: one region for both
                          [900, 50, 1000, 350],  # far away: its own region
                          [1260, 600, 1290, 700],  # at the frame's corner: clipped
                          [600, 300, 604, 308]])  # a tiny box: grown to the minimum side
    regions = upper_person_regions(persons, (720, 1280))
    assert len(regions) == 4
    first = regions[np.argmin(regions[:, 0])]
    assert first[0] == 85 and first[1] == 85  # 15 % of the person's width left and above
    assert first[2] == 295 and first[3] == 300  # the second person's right edge grown; 60 % of its height down
    assert (regions[:, [0, 2]] <= 1280).all() and (regions[:, [1, 3]] <= 720).all() and (regions >= 0).all()
    tiny = regions[(regions[:, 0] < 604) & (regions[:, 2] > 600)][0]
    assert tiny[2] - tiny[0] >= MIN_REGION_SIDE and tiny[3] - tiny[1] >= MIN_REGION_SIDE
    assert len(upper_person_regions(np.zeros((0, 4), np.float32), (720, 1280))) == 0


def test_overlapping_regions_merge_until_none_overlap() -> None:
    chain = np.int64([[0, 0, 10, 10], [20, 0, 30, 10], [8, 0, 22, 10], [100, 100, 110, 110]])
    assert merge_overlapping(chain).tolist() == [[0, 0, 30, 10], [100, 100, 110, 110]]
    touching = np.int64([[0, 0, 10, 10], [10, 0, 20, 10]])  # sharing an edge is not overlapping
    assert len(merge_overlapping(touching)) == 2


def test_regions_are_used_only_where_they_cost_fewer_detector_pixels() -> None:
    few = np.int64([[100, 100, 260, 300], [600, 100, 760, 300]])  # 64,000 px against 640 x 360 = 230,400
    assert regions_cost_less(few, (720, 1280), 640)
    assert regions_cost_less(np.int64([[0, 0, 1280, 400]]), (720, 1280), 640)  # fitted to 640: 640 x 200
    assert not regions_cost_less(np.int64([[0, 0, 600, 400]]), (720, 1280), 640)  # 240,000 px at its own size


def test_faces_of_regions_come_back_in_frame_pixels_once() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    searches = face_searches([frame, frame], [np.int64([[100, 50, 300, 250], [280, 50, 480, 250]]), None])
    assert [(s.frame, s.offset, s.whole, s.image.shape[:2]) for s in searches] == [
        (0, (100, 50), False, (200, 200)), (0, (280, 50), False, (200, 200)), (1, (0, 0), True, (720, 1280))]

    def face(x: float, y: float, score: float) -> Detections:
        return Detections(xyxy=np.float32([[x, y, x + 40, y + 50]]), confidence=np.float32([score]),
                          class_id=np.zeros(1, np.int32),
                          data={"landmarks": np.float32([[[x + 10, y + 20]] * 5]), "quality": np.float32([0.8])})

    # one face across both regions (frame x 285-325) found by each, and one in the whole second frame
    per_frame = faces_per_frame(searches, [face(185, 10, 0.9), face(5, 10, 0.7), face(500, 300, 0.8)], 2)
    assert len(per_frame[0]) == 1 and per_frame[0].confidence[0] == pytest.approx(0.9)
    assert per_frame[0].xyxy[0].tolist() == [285, 60, 325, 110]
    assert np.asarray(per_frame[0].data["landmarks"][0]).tolist() == [[295, 80]] * 5
    assert per_frame[1].xyxy[0].tolist() == [500, 300, 540, 350]
    moved = shifted_faces(face(0, 0, 0.5), (7, 9))
    assert moved.xyxy[0].tolist() == [7, 9, 47, 59] and moved.data["landmarks"][0][0].tolist() == [17, 29]


@pytest.fixture(scope="module")
def models(shared_dir: Path) -> Any:
    from pipeline.models.registry import load_model_set

    return load_model_set(EngineConfig(), model_dir=shared_dir / "models", device="cpu")


def _walkway(shared_dir: Path, count: int, step: int = 1, start: int = 0) -> list[np.ndarray]:
    """Frames of the walkway clip (1920x1080) as the engine analyses them (1280x720)."""
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "pedestrians_walking_toward_camera.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        assert ok, "the walkway clip ended"
        frames.append(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_AREA))
        for _ in range(step - 1):
            cap.grab()
    cap.release()
    return frames


@pytest.mark.timeout(300)
def test_person_regions_find_the_faces_the_whole_frame_finds(models: Any, shared_dir: Path) -> None:
    frames = _walkway(shared_dir, 4, step=25)
    persons = [d[(d.class_id == PERSON) & (d.confidence >= 0.3)] for d in models.vehicles.detect_batch(frames)]
    whole = models.faces.detect_batch(frames)
    regions = [upper_person_regions(p.xyxy, f.shape[:2]) for p, f in zip(persons, frames, strict=True)]
    searches = face_searches(frames, regions)
    found = models.faces.detect_batch([s.image for s in searches], enlarge=[s.whole for s in searches])
    per_frame = faces_per_frame(searches, found, len(frames))
    in_persons = matched = 0
    for w, p, got in zip(whole, persons, per_frame, strict=True):
        owned = assign_faces_to_persons(w.xyxy, p.xyxy) >= 0
        in_persons += int(owned.sum())
        if len(got) and owned.any():
            matched += int((iou_matrix(w.xyxy[owned], got.xyxy).max(axis=1) >= 0.5).sum())
        landmarks = np.asarray(list(got.data.get("landmarks", [])), np.float32).reshape(-1, 5, 2)
        for box, points in zip(got.xyxy, landmarks, strict=True):  # moved back with their boxes
            grown = box + np.float32([-0.2, -0.2, 0.2, 0.2]) * (box[2] - box[0])
            assert (points[:, 0] >= grown[0]).all() and (points[:, 0] <= grown[2]).all()
            assert (points[:, 1] >= grown[1]).all() and (points[:, 1] <= grown[3]).all()
    assert in_persons >= 10, "the walkway should show faces inside person boxes"
    assert matched >= 0.9 * in_persons, (matched, in_persons)


class _Recording:
    """The real face model, recording for each call which images were searched whole."""

    def __init__(self, faces: Any) -> None:
        self.faces = faces
        self.calls: list[list[bool]] = []

    def detect_batch(self, frames: list[np.ndarray], select: Any = None, enlarge: Any = None) -> list[Detections]:
        self.calls.append(list(enlarge) if enlarge is not None else [True] * len(frames))
        return self.faces.detect_batch(frames, select, enlarge)


class _Models:
    """The real detectors with the recording face model."""

    def __init__(self, models: Any) -> None:
        self.vehicles, self.plates, self.faces = models.vehicles, models.plates, _Recording(models.faces)


class _Item:
    def __init__(self, t: float, frame: np.ndarray, k: int) -> None:
        self.camera_id, self.capture_time, self.frame, self.frame_id = "walk", t, frame, k


@pytest.mark.timeout(300)
def test_the_engine_searches_person_regions_and_the_whole_frame_once_a_second(models: Any, shared_dir: Path,
                                                                             tmp_path: Path) -> None:
    frames = _walkway(shared_dir, 10, step=6)  # about 4 fps of the 25 fps clip
    step = 0.25

    def run(face_search: str) -> tuple[list[list[bool]], Engine]:
        config = Config.model_validate({
            "engine": {"device": "cpu", "motion_threshold": 0.0, "detector_keepalive_s": 0.1,
                       "person_tracks_for_faces": True, "face_search": face_search},
            "cameras": [{"id": "walk", "name": "walk", "url": "/v.mp4", "analysis_fps": 4,
                         "analytics": {"plates": False, "faces": True}}]})
        wired = _Models(models)
        engine = Engine(config, wired, None, recordings_dir=tmp_path / face_search)
        for k, frame in enumerate(frames):
            engine.process_batch([_Item(1000.0 + k * step, frame, k)])
        return wired.faces.calls, engine

    calls, engine = run("person_boxes")
    whole_at = [k for k, call in enumerate(calls) if any(call)]
    assert whole_at[0] == 0  # the camera's first look searches the whole frame
    assert all(b - a <= round(WHOLE_FRAME_INTERVAL_S / step) for a, b in zip(whole_at, whole_at[1:], strict=False))
    assert len(whole_at) < len(calls)  # the other looks searched person regions only
    assert engine.metrics.counters["face_regions"] > 0
    aimed = len(engine.aggregator.faces)
    calls, engine = run("frame")
    assert all(all(call) for call in calls) and engine.metrics.counters.get("face_regions", 0) == 0
    whole = len(engine.aggregator.faces)
    assert whole >= 5, "the walkway should give face tracks"
    assert aimed >= 0.8 * whole  # about as many face tracks as the whole frame gives (13 and 13 here)
