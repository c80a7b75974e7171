"""Face detection, embeddings (size read from the model, unit norm), batching and identity separation."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from pipeline.detections import Detections
from pipeline.models.registry import ModelSet


def _enrol_images(shared_dir: Path) -> list[np.ndarray]:
    paths = sorted((shared_dir / "data" / "videos" / "enroll").glob("*.png"))
    assert paths
    return [cv2.imread(str(p)) for p in paths]


@pytest.mark.timeout(60)
def test_faces_in_enrolment_stills_have_landmarks_quality_and_unit_embeddings(
    model_set: ModelSet, shared_dir: Path, model_dir: Path
) -> None:
    recogniser = onnx.load(str(model_dir / "insightface/models/buffalo_s/mobilefacenet.onnx"))
    size = recogniser.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    assert model_set.embedding_size == size
    images = _enrol_images(shared_dir)
    for faces in model_set.faces.detect_batch(images):
        assert len(faces) >= 1
        emb = np.asarray(faces.data["embedding"])
        assert emb.shape == (len(faces), size) and emb.dtype == np.float32
        assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        lm = np.asarray(faces.data["landmarks"])
        assert lm.shape == (len(faces), 5, 2)
        x1, y1, x2, y2 = faces.xyxy[0]
        assert (lm[0, :, 0] >= x1 - 5).all() and (lm[0, :, 0] <= x2 + 5).all()
        quality = np.asarray(faces.data["quality"])
        assert ((quality >= 0) & (quality <= 1)).all() and quality.max() > 0.3


@pytest.mark.timeout(60)
def test_all_faces_of_all_frames_go_through_one_embedder_call(
    model_set: ModelSet, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = model_set.faces.embedder
    calls: list[int] = []

    class CountingSession:
        """The real ONNX Runtime session, counting the batch size of every run."""

        def __init__(self, real: object) -> None:
            self.real = real

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

        def run(self, outputs, feeds):  # noqa: ANN001, ANN201
            calls.append(next(iter(feeds.values())).shape[0])
            return self.real.run(outputs, feeds)

    monkeypatch.setattr(embedder, "session", CountingSession(embedder.session))
    images = _enrol_images(shared_dir)
    faces = model_set.faces.detect_batch(images)
    assert calls == [sum(len(f) for f in faces)]


@pytest.mark.timeout(90)
def test_same_person_lfw_photos_are_more_similar_than_different_people(model_set: ModelSet, shared_dir: Path) -> None:
    root = shared_dir / "data" / "faces_lfw"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    people = sorted({r["label"] for r in rows})[:4]
    chosen = [r for p in people for r in [r for r in rows if r["label"] == p][:2]]
    embeddings = model_set.embed_face_images([cv2.imread(str(root / r["relative_path"])) for r in chosen])
    assert all(e is not None for e in embeddings)
    labels = [r["label"] for r in chosen]
    same, different = [], []
    for i in range(len(chosen)):
        for j in range(i + 1, len(chosen)):
            (same if labels[i] == labels[j] else different).append(float(embeddings[i] @ embeddings[j]))
    assert np.mean(same) > np.mean(different) + 0.3, (same, different)
    assert min(same) > np.percentile(different, 90)


@pytest.mark.timeout(30)
def test_photo_without_a_face_gives_none(model_set: ModelSet, shared_dir: Path) -> None:
    plate = cv2.imread(str(next((shared_dir / "data" / "plates_thai").rglob("*.jpg"))))
    blank = np.full((200, 200, 3), 128, np.uint8)
    face = _enrol_images(shared_dir)[0]
    result = model_set.embed_face_images([blank, face, plate])
    assert result[0] is None and result[2] is None
    assert result[1] is not None and result[1].shape == (model_set.embedding_size,)


def _pedestrian_frames(shared_dir: Path, count: int = 6) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "pedestrians_walking_toward_camera.mp4"))
    frames = []
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            assert ok, "cannot read the pedestrian clip"
            frames.append(frame)
            for _ in range(10):
                cap.grab()
    finally:
        cap.release()
    return frames


@pytest.mark.timeout(120)
def test_tight_canvas_finds_the_faces_of_the_square_one(model_set: ModelSet, shared_dir: Path) -> None:
    """A 16:9 camera runs SCRFD on a 640x384 canvas instead of 640x640: the same faces, boxes and scores."""
    from pipeline.engine.tracking import iou_matrix
    from pipeline.models.faces import ScrfdDetector

    tight = model_set.faces.detector
    assert isinstance(tight, ScrfdDetector) and tight.tight
    square = ScrfdDetector(tight.path, conf=tight.conf, device="cpu", tight=False)
    frames = _pedestrian_frames(shared_dir)
    assert tight.canvas_size([f.shape[:2] for f in frames]) == (384, 640)
    assert tight.canvas_size([(1080, 1920), (1920, 1080)]) == (640, 640)  # a portrait camera in the batch
    assert tight.canvas_size([(250, 250)]) == (640, 640)
    found_tight, found_square = tight.detect_batch(frames), square.detect_batch(frames)
    assert sum(len(d) for d in found_square) >= 6
    for a, b in zip(found_square, found_tight, strict=True):
        for box, score in zip(a.xyxy, a.confidence, strict=True):
            if score < tight.conf + 0.05:
                continue  # a face at the threshold may fall either side
            overlap = iou_matrix(box[None], b.xyxy)[0]
            j = int(np.argmax(overlap)) if len(overlap) else -1
            assert j >= 0 and overlap[j] > 0.9, (box, b.xyxy)
            assert abs(float(b.confidence[j]) - float(score)) < 0.05



@pytest.mark.timeout(60)
def test_only_the_faces_selected_are_embedded_with_the_same_embedding(model_set: ModelSet, shared_dir: Path) -> None:
    images = _enrol_images(shared_dir)
    full = model_set.faces.detect_batch(images)
    seen: list[tuple[int, int]] = []

    def first_frame_only(k: int, faces: Detections) -> np.ndarray:
        assert "embedding" not in faces.data and len(faces.data["quality"]) == len(faces)
        seen.append((k, len(faces)))
        return np.full(len(faces), k == 0)

    part = model_set.faces.detect_batch(images, first_frame_only)
    assert seen == [(k, len(f)) for k, f in enumerate(full)]
    assert all(e is not None for e in part[0].data["embedding"])
    assert np.allclose(np.asarray(part[0].data["embedding"]), np.asarray(full[0].data["embedding"]), atol=1e-5)
    assert all(e is None for faces in part[1:] for e in faces.data["embedding"])
    assert np.allclose(part[1].data["quality"], full[1].data["quality"])
