"""Ultralytics YOLO detector (vehicles and people, COCO ids) behind ``detect_batch``.

Two backends:

- :class:`YoloOnnxDetector` runs an Ultralytics ONNX export directly with ONNX Runtime (own letterbox, decode and
  NMS) so that a whole batch goes through the network in one call; used for ``.onnx`` files.
- :class:`UltralyticsDetector` uses ``ultralytics.YOLO(path, task='detect')`` for every other format Ultralytics
  loads (``.pt``, OpenVINO folders, TensorRT ``.engine``...).

Raw outputs are converted once into :class:`~pipeline.detections.Detections` by :func:`from_yolo_onnx` and
:func:`from_ultralytics`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.detections import Detections
from pipeline.models.base import check_frames
from pipeline.models.onnx_utils import (
    Letterbox,
    batched_nms,
    create_session,
    fit_side,
    letterbox,
    run_batched,
    session_runtime,
    to_blob,
)
from pipeline.models.yolo_canvas import STRIDES, CanvasRewriteError, canvas_for, write_canvas_model

logger = logging.getLogger(__name__)

COCO_PERSON, COCO_CAR, COCO_MOTORCYCLE, COCO_BUS, COCO_TRUCK = 0, 2, 3, 5, 7
TRAFFIC_CLASSES = (COCO_PERSON, COCO_CAR, COCO_MOTORCYCLE, COCO_BUS, COCO_TRUCK)
VEHICLE_CLASSES = (COCO_CAR, COCO_MOTORCYCLE, COCO_BUS, COCO_TRUCK)
MAX_DETECTIONS = 300
CANVAS_MODES = ("square", "fit")
MAX_CANVASES = 4
"""Input canvases (frame shapes) one detector keeps a rewritten network for; others run on the square."""


def from_yolo_onnx(
    prediction: np.ndarray,
    box: Letterbox,
    conf: float = 0.25,
    iou: float = 0.45,
    classes: Sequence[int] | None = None,
    max_det: int = MAX_DETECTIONS,
) -> Detections:
    """Decode one image's raw Ultralytics YOLO head output ``(4 + num_classes, anchors)`` into Detections.

    Rows 0-3 are ``cx, cy, w, h`` in network pixels, the rest per-class scores (already sigmoid). Applies the
    score threshold, the class filter, class-aware NMS and maps boxes back through the letterbox.
    """
    pred = prediction.T  # anchors x (4 + nc)
    scores_all = pred[:, 4:]
    class_id = scores_all.argmax(axis=1)
    score = scores_all[np.arange(len(pred)), class_id]
    mask = score >= conf
    if classes is not None:
        mask &= np.isin(class_id, np.asarray(classes))
    if not mask.any():
        return Detections.empty()
    cxcywh, score, class_id = pred[mask, :4], score[mask], class_id[mask]
    xyxy = np.empty_like(cxcywh)
    xyxy[:, :2] = cxcywh[:, :2] - cxcywh[:, 2:] / 2
    xyxy[:, 2:] = cxcywh[:, :2] + cxcywh[:, 2:] / 2
    keep = batched_nms(xyxy, score, class_id, iou)[:max_det]
    return Detections(xyxy=box.to_original(xyxy[keep]), confidence=score[keep], class_id=class_id[keep])


def from_ultralytics(result: Any) -> Detections:
    """Convert one ``ultralytics.engine.results.Results`` into Detections (boxes already in image pixels)."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return Detections.empty()
    return Detections(
        xyxy=boxes.xyxy.cpu().numpy(),
        confidence=boxes.conf.cpu().numpy(),
        class_id=boxes.cls.cpu().numpy().astype(np.int32),
    )


class YoloOnnxDetector:
    """Ultralytics YOLO ONNX export run directly with ONNX Runtime (or OpenVINO, ``runtime="openvino"``), one
    network call per batch."""

    def __init__(
        self,
        path: Path,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[int] | None = None,
        device: str = "auto",
        max_batch: int | None = None,
        imgsz: int | None = None,
        runtime: str = "onnxruntime",
        canvas: str = "square",
        upscale: bool = True,
        canvas_sides: tuple[int, ...] | None = None,
        max_canvases: int = MAX_CANVASES,
    ) -> None:
        if canvas not in CANVAS_MODES:
            raise ValueError(f"canvas must be one of {CANVAS_MODES}, not {canvas!r}")
        self.path = Path(path)
        self.device, self.runtime, self.canvas = device, runtime, canvas
        self.upscale = upscale  # False: frames smaller than the input run at their own size, never enlarged
        if canvas_sides and any(s <= 0 or s % STRIDES[-1] for s in canvas_sides):
            raise ValueError(f"canvas sides must be positive multiples of {STRIDES[-1]}, not {canvas_sides}")
        self.canvas_sides = tuple(sorted(canvas_sides)) if canvas_sides else None
        self.max_canvases = max_canvases
        self.session = create_session(self.path, device, runtime=runtime)
        shape = self.session.get_inputs()[0].shape
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            if shape[2] != shape[3]:
                raise ValueError(f"{self.path}: expected a square input size, got input shape {shape}")
            self.imgsz = int(shape[2])
        else:  # dynamic-size export: use the size it was trained/exported at
            self.imgsz = imgsz or _imgsz_from_metadata(self.session) or 640
        self.conf, self.iou = conf, iou
        self.classes = tuple(classes) if classes is not None else None
        self.max_batch = max_batch
        self.names = _names_from_metadata(self.session)
        self._sessions: dict[tuple[int, int], Any] = {(self.imgsz, self.imgsz): self.session}
        self._sessions_lock = threading.Lock()

    @property
    def providers(self) -> list[str]:
        """The ONNX Runtime providers in use."""
        return list(self.session.get_providers())

    def preprocess(self, frames: list[np.ndarray], canvas_hw: tuple[int, int] | None = None,
                   sides: list[int] | None = None) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox each frame, fitted into a square of ``sides[i]`` (default :meth:`fit_side`), on the
        ``canvas_hw`` canvas (default: the network's square) and stack them into one RGB 0..1 blob."""
        canvas = canvas_hw or (self.imgsz, self.imgsz)
        sides = sides or [self.fit_side(f.shape[:2]) for f in frames]
        pairs = [letterbox(f, side, canvas_hw=canvas) for f, side in zip(frames, sides, strict=True)]
        return to_blob([p[0] for p in pairs]), [p[1] for p in pairs]

    def forward(self, blob: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed blob; returns the raw ``N x (4 + nc) x anchors`` output."""
        session = self._sessions.get(tuple(blob.shape[2:4]), self.session)
        return run_batched(session, blob, self.max_batch)[0]

    def fit_side(self, image_hw: tuple[int, int]) -> int:
        """The side of the square a frame of ``image_hw`` is fitted into: the network's input size, or with
        ``upscale=False`` the frame's own longer side where that is smaller (a small frame is not enlarged)."""
        return fit_side(image_hw, self.imgsz, self.upscale)

    def canvas_of(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The input canvas a frame of ``image_hw`` runs on (see :meth:`plan`)."""
        return self.plan(image_hw)[0]

    def plan(self, image_hw: tuple[int, int]) -> tuple[tuple[int, int], int]:
        """The input canvas a frame of ``image_hw`` runs on and the side of the square it is fitted into: the
        square, or with ``canvas="fit"`` the smallest stride-aligned canvas holding the fitted frame, where its
        rewritten network is available. A frame left at its own size (``upscale=False``) whose canvas has no
        network (more frame shapes than :data:`MAX_CANVASES`) is enlarged onto the canvas it had with ``upscale``."""
        side = self.fit_side(image_hw)
        if self.canvas == "square":
            return (self.imgsz, self.imgsz), side
        hw = self._available(canvas_for(image_hw, self.imgsz, fit=side, sides=self.canvas_sides))
        if hw is None and side < self.imgsz:
            side = self.imgsz
            hw = self._available(canvas_for(image_hw, self.imgsz, sides=self.canvas_sides))
        return hw or (self.imgsz, self.imgsz), side

    def prepare_canvases(self) -> list[tuple[int, int]]:
        """Make, now, the rewritten network of every canvas a frame enlarged to the input can get (``canvas="fit"``
        with :attr:`canvas_sides`: the input's side one way, one of those the other; widest first, up to
        :attr:`max_canvases`), so that no frame waits for one (0.2-0.5 s each on a 2-core CPU). Returns the
        canvases that have a network."""
        if self.canvas == "fit" and self.canvas_sides:
            for short in sorted({min(s, self.imgsz) for s in self.canvas_sides}, reverse=True):
                for hw in ((short, self.imgsz), (self.imgsz, short)):
                    self._available(hw)
        return [hw for hw, session in self._sessions.items() if session is not None]

    def _available(self, hw: tuple[int, int]) -> tuple[int, int] | None:
        """``hw`` when a network for that canvas exists or can be made; None otherwise."""
        with self._sessions_lock:
            if hw not in self._sessions:
                self._sessions[hw] = self._canvas_session(hw)
            return hw if self._sessions[hw] is not None else None

    def _session_device(self) -> str:
        """The device the square session actually runs on: ``cpu`` where it fell back to the CPU (a model the torch
        runtime could not convert, on a machine whose onnxruntime has no CUDA), else the detector's ``device``."""
        return "cpu" if list(self.session.get_providers())[:1] in (["CPUExecutionProvider"], ["TorchCPU"]) \
            else self.device

    def _canvas_session(self, hw: tuple[int, int]) -> Any:
        """A session of the network rewritten for ``hw`` (None: keep the square, with the reason logged)."""
        if len(self._sessions) > self.max_canvases:
            logger.warning("%s: more than %d frame shapes, a %dx%d frame runs on the square input", self.path.name,
                           self.max_canvases, *hw)
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="cctv-canvas-") as folder:
                session = create_session(write_canvas_model(self.path, *hw, Path(folder)), self._session_device(),
                                         runtime=session_runtime(self.session))  # the square's: warned once
        except (CanvasRewriteError, OSError) as exc:
            logger.warning("%s: no %dx%d input canvas (%s); frames of that shape run on the square input",
                           self.path.name, *hw, exc)
            return None
        logger.info("%s: %dx%d input canvas for frames fitted to %s", self.path.name, *hw, self.imgsz)
        return session

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Detect objects in every frame, one batched network call per input canvas (one for same-shaped frames)."""
        if not frames:
            return []
        check_frames(frames, str(self.path.name))
        groups: dict[tuple[int, int], list[int]] = {}
        sides: list[int] = []
        for i, frame in enumerate(frames):
            hw, side = self.plan(frame.shape[:2])
            groups.setdefault(hw, []).append(i)
            sides.append(side)
        out: list[Detections] = [Detections.empty()] * len(frames)
        for hw, indices in groups.items():
            blob, boxes = self.preprocess([frames[i] for i in indices], canvas_hw=hw, sides=[sides[i] for i in indices])
            raw = self.forward(blob)
            for k, i in enumerate(indices):
                out[i] = from_yolo_onnx(raw[k], boxes[k], self.conf, self.iou, self.classes)
        return out


class UltralyticsDetector:
    """Any format ``ultralytics.YOLO`` loads (``.pt``, OpenVINO, TensorRT, ONNX), batched by Ultralytics."""

    def __init__(
        self,
        path: Path,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[int] | None = None,
        device: str = "auto",
        imgsz: int | None = None,
    ) -> None:
        from ultralytics import YOLO

        self.path = Path(path)
        self.model = YOLO(str(self.path), task="detect")
        self.conf, self.iou = conf, iou
        self.classes = list(classes) if classes is not None else None
        self.device = _ultralytics_device(device)
        self.imgsz = imgsz
        self.names = dict(getattr(self.model, "names", {}) or {})

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Detect objects in every frame (Ultralytics batches the list itself)."""
        if not frames:
            return []
        check_frames(frames, str(self.path.name))
        kwargs: dict[str, Any] = {"conf": self.conf, "iou": self.iou, "classes": self.classes, "verbose": False}
        if self.device:
            kwargs["device"] = self.device
        if self.imgsz:
            kwargs["imgsz"] = self.imgsz
        results = self.model.predict(list(frames), **kwargs)
        return [from_ultralytics(r) for r in results]


def load_yolo_detector(
    path: Path,
    conf: float = 0.25,
    iou: float = 0.45,
    classes: Sequence[int] | None = None,
    device: str = "auto",
    backend: str = "auto",
    max_batch: int | None = None,
    runtime: str = "onnxruntime",
    canvas: str = "square",
    upscale: bool = True,
    canvas_sides: tuple[int, ...] | None = None,
    max_canvases: int = MAX_CANVASES,
) -> YoloOnnxDetector | UltralyticsDetector:
    """Load a YOLO detector: ONNX files run on ONNX Runtime directly, anything else through Ultralytics.

    ``backend`` forces ``onnx`` or ``ultralytics``; ``auto`` picks by the file type. ``runtime`` (``onnxruntime``
    or ``openvino``, see :func:`pipeline.models.onnx_utils.create_session`) runs the ONNX file. ``canvas``
    ``fit`` runs each frame on the smallest input canvas that holds it (:mod:`pipeline.models.yolo_canvas`);
    ``upscale=False`` runs frames smaller than the input at their own size (ONNX files; Ultralytics enlarges).
    ``canvas_sides`` (multiples of the largest stride) are the only sides a fitted canvas may have besides the input's,
    so that frames of many shapes share a few; past ``max_canvases`` shapes a frame runs on the square.
    """
    path = Path(path)
    use_onnx = backend == "onnx" or (backend == "auto" and path.suffix == ".onnx")
    if use_onnx:
        return YoloOnnxDetector(path, conf=conf, iou=iou, classes=classes, device=device, max_batch=max_batch,
                                runtime=runtime, canvas=canvas, upscale=upscale, canvas_sides=canvas_sides,
                                max_canvases=max_canvases)
    return UltralyticsDetector(path, conf=conf, iou=iou, classes=classes, device=device)


def _ultralytics_device(device: str) -> str | None:
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        return "0"
    return None  # auto: Ultralytics picks CUDA when torch sees it


def _imgsz_from_metadata(session) -> int | None:  # noqa: ANN001
    import ast

    try:
        size = ast.literal_eval(session.get_modelmeta().custom_metadata_map.get("imgsz", "None"))
    except (ValueError, SyntaxError):
        return None
    return int(max(size)) if isinstance(size, list | tuple) and size else None


def _names_from_metadata(session) -> dict[int, str]:  # noqa: ANN001
    import ast

    meta = session.get_modelmeta().custom_metadata_map
    try:
        return {int(k): str(v) for k, v in ast.literal_eval(meta.get("names", "{}")).items()}
    except (ValueError, SyntaxError):
        return {}
