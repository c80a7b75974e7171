"""Face detection (InsightFace SCRFD) and face embedding (InsightFace recogniser) behind ``detect_batch``.

:class:`FaceAnalyzer.detect_batch` detects faces in a batch of frames with one SCRFD call, aligns every face
with InsightFace's ``norm_crop`` and embeds all faces of all frames with ONE recogniser call. Each face carries
``data["landmarks"]`` (5x2, frame pixels), ``data["embedding"]`` (L2-normalised float32 of the recogniser's own
size, read from the model: 128 for the offline MobileFaceNet pack) and ``data["quality"]`` (0..1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.detections import Detections
from pipeline.models.base import check_frames
from pipeline.models.onnx_utils import (
    Letterbox,
    create_session,
    fit_side,
    fitted_size,
    letterbox,
    nms,
    run_batched,
    to_blob,
)

logger = logging.getLogger(__name__)

SCRFD_MEAN, SCRFD_STD = 127.5, 128.0
ALIGNED_SIZE = 112


def _anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    centers = np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32)
    centers = (centers * stride).reshape(-1, 2)
    if num_anchors > 1:
        centers = np.stack([centers] * num_anchors, axis=1).reshape(-1, 2)
    return centers


def from_scrfd(
    outputs: list[np.ndarray],
    box: Letterbox,
    input_hw: tuple[int, int],
    conf: float = 0.5,
    iou: float = 0.4,
    strides: tuple[int, ...] = (8, 16, 32),
    num_anchors: int = 2,
) -> Detections:
    """Decode one image's SCRFD outputs (scores, box distances, landmark distances per stride) into Detections."""
    fmc = len(strides)
    all_boxes, all_scores, all_kps = [], [], []
    for idx, stride in enumerate(strides):
        scores = outputs[idx].reshape(-1)
        pos = np.where(scores >= conf)[0]
        if pos.size == 0:
            continue
        centers = _anchor_centers(input_hw[0] // stride, input_hw[1] // stride, stride, num_anchors)[pos]
        dist = outputs[idx + fmc].reshape(-1, 4)[pos] * stride
        kps = outputs[idx + 2 * fmc].reshape(-1, 10)[pos] * stride if len(outputs) >= 3 * fmc else None
        all_boxes.append(np.concatenate([centers - dist[:, :2], centers + dist[:, 2:]], axis=1))
        all_scores.append(scores[pos])
        if kps is not None:
            all_kps.append(np.repeat(centers, 5, axis=0).reshape(-1, 10) + kps)
    if not all_boxes:
        return Detections(data={"landmarks": np.zeros((0, 5, 2), np.float32)})
    boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
    keep = nms(boxes, scores, iou)
    landmarks = np.concatenate(all_kps)[keep].reshape(-1, 5, 2) if all_kps else np.zeros((len(keep), 5, 2))
    return Detections(
        xyxy=box.to_original(boxes[keep]),
        confidence=scores[keep],
        class_id=np.zeros(len(keep), dtype=np.int32),
        data={"landmarks": box.points_to_original(landmarks).astype(np.float32)},
    )


class ScrfdDetector:
    """InsightFace SCRFD face detector; frames are letterboxed to ``input_size`` and run as one batch.

    SCRFD is fully convolutional, so with ``tight=True`` (default) the batch's canvas is only as large as its
    frames need (``input_size`` on the long side, the short side rounded up to the largest stride): a 16:9
    camera costs 640x384 instead of 640x640, the same pixels at the same scale without the padding.
    """

    def __init__(
        self,
        path: Path,
        conf: float = 0.5,
        iou: float = 0.4,
        input_size: int = 640,
        device: str = "auto",
        max_batch: int | None = None,
        tight: bool = True,
        runtime: str = "onnxruntime",
    ) -> None:
        self.path = Path(path)
        self.session = create_session(self.path, device, runtime=runtime)
        self.conf, self.iou, self.input_size, self.max_batch = conf, iou, input_size, max_batch
        self.tight = tight
        n_out = len(self.session.get_outputs())
        if n_out not in (6, 9):
            raise ValueError(f"{self.path}: expected an SCRFD model with 6 or 9 outputs, got {n_out}")
        self.strides, self.num_anchors = (8, 16, 32), 2

    def detect_batch(self, frames: list[np.ndarray], enlarge: bool = True) -> list[Detections]:
        """Detect faces (boxes, scores, 5 landmarks) in every frame with one network call.

        ``enlarge=False`` searches a frame smaller than the input at its own size instead of enlarging it to
        ``input_size`` (regions cut from an analysis frame), with one call per canvas size."""
        if not frames:
            return []
        check_frames(frames, self.path.name)
        sides = [self.fit_side(f.shape[:2], enlarge) for f in frames]
        if enlarge:
            return self._run(frames, sides, self.canvas_size([f.shape[:2] for f in frames], sides))
        # regions of different sizes: one call per canvas, so that a small region is not padded to a large one's
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (frame, side) in enumerate(zip(frames, sides, strict=True)):
            groups.setdefault(self.canvas_size([frame.shape[:2]], [side]), []).append(i)
        out: list[Detections] = [Detections.empty()] * len(frames)
        for canvas_hw, idx in groups.items():
            for i, dets in zip(idx, self._run([frames[i] for i in idx], [sides[i] for i in idx], canvas_hw),
                               strict=True):
                out[i] = dets
        return out

    def _run(self, frames: list[np.ndarray], sides: list[int], canvas_hw: tuple[int, int]) -> list[Detections]:
        """One batched network call: each frame fitted into a square of its side, on ``canvas_hw``."""
        pairs = [letterbox(f, side, center=False, pad_value=0, canvas_hw=canvas_hw)
                 for f, side in zip(frames, sides, strict=True)]
        blob = to_blob([p[0] for p in pairs], mean=SCRFD_MEAN, std=SCRFD_STD)
        outputs = run_batched(self.session, blob, self.max_batch)
        per_image = [o.reshape(len(frames), -1, o.shape[-1]) for o in outputs]
        return [
            from_scrfd([o[i] for o in per_image], pairs[i][1], canvas_hw, self.conf, self.iou,
                       self.strides, self.num_anchors)
            for i in range(len(frames))
        ]

    def fit_side(self, frame_hw: tuple[int, int], enlarge: bool = True) -> int:
        """The side of the square a frame of ``frame_hw`` is fitted into: ``input_size``, or without ``enlarge``
        the frame's own longer side where that is smaller."""
        return fit_side(frame_hw, self.input_size, enlarge)

    def canvas_size(self, frame_hws: list[tuple[int, int]], sides: list[int] | None = None) -> tuple[int, int]:
        """The network input ``(height, width)`` for a batch of frames of these sizes (fitted into squares of
        ``sides``, default ``input_size``)."""
        if not self.tight:
            return self.input_size, self.input_size
        step = max(self.strides)
        sides = sides or [self.input_size] * len(frame_hws)
        fitted = [fitted_size(hw, side) for hw, side in zip(frame_hws, sides, strict=True)]
        height = max(h for h, _ in fitted)
        width = max(w for _, w in fitted)
        return (min(self.input_size, -(-height // step) * step), min(self.input_size, -(-width // step) * step))


class FaceEmbedder:
    """InsightFace recogniser (ArcFace-style) on 112x112 aligned faces; many faces per network call."""

    def __init__(self, path: Path, device: str = "auto", source_path: Path | None = None,
                 max_batch: int | None = None, runtime: str = "onnxruntime") -> None:
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        self.path = Path(path)
        self.session = create_session(self.path, device, runtime=runtime)
        # InsightFace reads the input normalisation from the graph; use the upstream file for that decision.
        reference = ArcFaceONNX(model_file=str(source_path or self.path), session=self.session)
        self.input_mean, self.input_std = float(reference.input_mean), float(reference.input_std)
        self.input_size = int(reference.input_size[0])
        size = self.session.get_outputs()[0].shape[-1]
        if not isinstance(size, int):
            raise ValueError(f"{self.path}: embedding size is not fixed in the model output ({size})")
        self.embedding_size = size
        self.max_batch = max_batch

    def align(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Warp the face with these 5 landmarks to the recogniser's aligned input (InsightFace ``norm_crop``)."""
        matrix = _arcface_transform(np.asarray(landmarks, dtype=np.float64), self.input_size)
        return cv2.warpAffine(frame, matrix, (self.input_size, self.input_size), borderValue=0.0)

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        """Embed aligned BGR faces in one network call; returns ``(N, embedding_size)`` L2-normalised float32."""
        if not aligned:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        blob = to_blob(aligned, mean=self.input_mean, std=self.input_std)
        feats = run_batched(self.session, blob, self.max_batch)[0].reshape(len(aligned), -1).astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)


def _arcface_transform(landmarks: np.ndarray, size: int) -> np.ndarray:
    """InsightFace ``estimate_norm``: similarity transform (Umeyama) of 5 landmarks onto the ArcFace template."""
    from insightface.utils.face_align import arcface_dst
    from skimage.transform import SimilarityTransform

    dst = arcface_dst * (size / 112.0) if size % 112 == 0 else arcface_dst * (size / 128.0) + [8.0 * size / 128.0, 0]
    if hasattr(SimilarityTransform, "from_estimate"):
        tform = SimilarityTransform.from_estimate(landmarks, dst)
    else:  # older scikit-image
        tform = SimilarityTransform()
        tform.estimate(landmarks, dst)
    return tform.params[0:2, :]


def face_quality(box: np.ndarray, landmarks: np.ndarray, aligned: np.ndarray) -> float:
    """Quality in 0..1: geometric mean of size, sharpness (Laplacian variance) and pose (landmark symmetry).

    - size: shorter box side, 0 at 16 px rising to 1 at 96 px;
    - sharpness: ``v / (v + 100)`` of the Laplacian variance ``v`` of the aligned grey face;
    - pose: horizontal symmetry of the nose between the eyes (yaw) times the cosine of the eye-line roll.
    """
    side = float(min(box[2] - box[0], box[3] - box[1]))
    size_score = float(np.clip((side - 16.0) / 80.0, 0.0, 1.0))
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    variance = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    sharp_score = variance / (variance + 100.0)
    left_eye, right_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    d_left, d_right = float(nose[0] - left_eye[0]), float(right_eye[0] - nose[0])
    yaw = max(0.0, min(d_left, d_right)) / max(d_left, d_right, 1e-6)
    dx, dy = float(right_eye[0] - left_eye[0]), float(right_eye[1] - left_eye[1])
    roll = max(0.0, dx) / max(float(np.hypot(dx, dy)), 1e-6)
    pose_score = float(np.clip(yaw * roll, 0.0, 1.0))
    return float((size_score * sharp_score * pose_score) ** (1.0 / 3.0))


class FaceAnalyzer:
    """Face detector + embedder: ``detect_batch`` returns faces with landmarks, embedding and quality."""

    def __init__(self, detector: ScrfdDetector, embedder: FaceEmbedder) -> None:
        self.detector = detector
        self.embedder = embedder

    @property
    def embedding_size(self) -> int:
        """Length of the embeddings, read from the recogniser model."""
        return self.embedder.embedding_size

    def detect_batch(self, frames: list[np.ndarray],
                     select: Callable[[int, Detections], np.ndarray] | None = None,
                     enlarge: Sequence[bool] | None = None) -> list[Detections]:
        """Detect faces in all frames (one detector call, two when ``enlarge`` mixes values) and embed them (one
        embedder call).

        ``enlarge[k]`` False searches image ``k`` at its own size where it is smaller than the detector's input
        (a region of a frame, :meth:`ScrfdDetector.detect_batch`); default True for every image.

        ``select(k, faces)``, when given, sees frame ``k``'s faces with their landmarks and quality (no embedding
        yet) and returns a boolean mask of the faces worth embedding; the others carry ``None`` as embedding
        (the embedder is the costly part: the engine embeds a face only when it could improve its track).
        """
        detections = self._detect(frames, enlarge)
        out: list[Detections] = []
        aligned: list[np.ndarray] = []
        wanted: list[tuple[int, int]] = []  # (frame, face) of each aligned crop to embed
        for k, (frame, dets) in enumerate(zip(frames, detections, strict=True)):
            n = len(dets)
            landmarks = np.asarray(dets.data["landmarks"], dtype=np.float32).reshape(n, 5, 2)
            faces = [self.embedder.align(frame, lm) for lm in landmarks]
            quality = np.array([face_quality(dets.xyxy[i], landmarks[i], faces[i]) for i in range(n)],
                               dtype=np.float32)
            found = Detections(xyxy=dets.xyxy, confidence=dets.confidence, class_id=dets.class_id,
                               data={"landmarks": landmarks, "quality": quality})
            mask = np.ones(n, bool) if select is None or not n else np.asarray(select(k, found), bool)
            for i in np.flatnonzero(mask):
                aligned.append(faces[i])
                wanted.append((k, int(i)))
            found.data["embedding"] = [None] * n
            out.append(found)
        for (k, i), emb in zip(wanted, self.embedder.embed(aligned), strict=True):
            out[k].data["embedding"][i] = emb
        return out

    def _detect(self, frames: list[np.ndarray], enlarge: Sequence[bool] | None) -> list[Detections]:
        """The detector on ``frames``, one call per value of ``enlarge`` (results in the frames' order)."""
        flags = [True] * len(frames) if enlarge is None else [bool(e) for e in enlarge]
        found: list[Detections] = [Detections.empty()] * len(frames)
        for flag in (True, False):
            idx = [i for i, f in enumerate(flags) if f == flag]
            if idx:
                for i, dets in zip(idx, self.detector.detect_batch([frames[i] for i in idx], enlarge=flag),
                                   strict=True):
                    found[i] = dets
        return found

    def embed_face_images(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        """Embed the largest face of each photo (enrolment, search by photo); ``None`` where no face is found."""
        if not images:
            return []
        detections = self.detector.detect_batch(images)
        aligned: list[np.ndarray] = []
        owners: list[int] = []
        for i, (image, dets) in enumerate(zip(images, detections, strict=True)):
            if len(dets):
                best = int(np.argmax(dets.area))
                aligned.append(self.embedder.align(image, dets.data["landmarks"][best]))
                owners.append(i)
        embeddings = self.embedder.embed(aligned)
        result: list[np.ndarray | None] = [None] * len(images)
        for owner, emb in zip(owners, embeddings, strict=True):
            result[owner] = emb
        return result
