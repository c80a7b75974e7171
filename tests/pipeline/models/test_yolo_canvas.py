"""Rectangular input canvases for the YOLO detector: the same boxes as the square input on real footage."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from benchmarks.runtimes import match_detections
from pipeline.models.yolo import TRAFFIC_CLASSES, YoloOnnxDetector
from pipeline.models.yolo_canvas import CanvasRewriteError, anchor_grid, canvas_for, rewrite_for_canvas


def _footage_frames(shared_dir: Path, count: int = 6) -> list[np.ndarray]:
    """Frames spread over the Bangkok dashcam (1280x720) and the walkway clip (people), both 16:9."""
    frames = []
    for name in ("thai_bangkok_night_dashcam_bus.mp4", "pedestrians_walking_toward_camera.mp4"):
        cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / name))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for k in range(count // 2):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(total * (k + 0.5) / (count // 2)))
            ok, frame = cap.read()
            assert ok, f"cannot read {name}"
            frames.append(frame)
        cap.release()
    return frames


def test_canvas_sizes() -> None:
    assert canvas_for((720, 1280), 640) == (384, 640)  # 16:9 -> 640x360 fitted, 384 rows
    assert canvas_for((480, 640), 640) == (480, 640)  # 4:3
    assert canvas_for((1080, 1080), 640) == (640, 640)
    assert canvas_for((1920, 1080), 640) == (640, 384)  # portrait
    assert canvas_for((432, 432), 640, fit=432) == (448, 448)  # a small photo at its own size, stride-aligned
    assert canvas_for((150, 200), 640, fit=200) == (160, 224)
    points, strides = anchor_grid(640, 640)
    assert points.shape == (1, 2, 8400) and strides.shape == (1, 8400)
    assert anchor_grid(384, 640)[0].shape == (1, 2, 80 * 48 + 40 * 24 + 20 * 12)


@pytest.mark.timeout(300)
def test_fit_canvas_gives_the_square_inputs_boxes_on_footage(derived: tuple[Path, Path, list[Path]],
                                                            shared_dir: Path) -> None:
    path = derived[0] / "yolo" / "yolov8n_int8.batch.fp32.onnx"
    square = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="square")
    fit = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit")
    frames = _footage_frames(shared_dir)
    assert fit.canvas_of(frames[0].shape[:2]) == (384, 640)
    agreement = match_detections(square.detect_batch(frames), fit.detect_batch(frames), min_iou=0.7)
    assert agreement["boxes_ref"] >= 6, "the footage should show vehicles and people"
    assert agreement["match_rate"] >= 0.95, agreement
    blob, _ = fit.preprocess(frames[:1], canvas_hw=(384, 640))
    assert fit.forward(blob).shape == (1, 84, 80 * 48 + 40 * 24 + 20 * 12)


@pytest.mark.timeout(300)
def test_mixed_shapes_keep_their_order_and_match_one_by_one(derived: tuple[Path, Path, list[Path]],
                                                            shared_dir: Path) -> None:
    path = derived[0] / "yolo" / "yolov8n_int8.batch.onnx"  # the int8 file has the same head constants
    fit = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit")
    wide = _footage_frames(shared_dir, count=2)[0]
    four_three = cv2.resize(wide[:, 160:1120], (640, 480))
    square = cv2.resize(wide[:, 280:1000], (640, 640))
    frames = [wide, four_three, square, wide]
    batched = fit.detect_batch(frames)
    for frame, got in zip(frames, batched, strict=True):
        alone = fit.detect_batch([frame])[0]
        assert np.array_equal(alone.class_id, got.class_id)
        assert np.allclose(alone.xyxy, got.xyxy, atol=1e-3)
    assert {(384, 640), (480, 640), (640, 640)} <= set(fit._sessions)
    for frame, dets in zip(frames, batched, strict=True):
        h, w = frame.shape[:2]
        assert (dets.xyxy[:, [0, 2]] <= w).all() and (dets.xyxy[:, [1, 3]] <= h).all()


def test_a_graph_without_the_anchor_grid_is_refused(model_dir: Path,
                                                    derived: tuple[Path, Path, list[Path]]) -> None:
    face_detector = onnx.load(str(model_dir / "insightface/models/buffalo_s/det_500m.onnx"))
    with pytest.raises(CanvasRewriteError):
        rewrite_for_canvas(face_detector, 384, 640)
    model = onnx.load(str(derived[0] / "yolo" / "yolov8n_int8.batch.fp32.onnx"))
    with pytest.raises(CanvasRewriteError, match="multiple of 32"):
        rewrite_for_canvas(model, 360, 640)
    for points in (i for i in model.graph.initializer if list(i.dims) == [1, 2, 8400]):
        points.float_data[:] = []
        points.raw_data = np.zeros((1, 2, 8400), np.float32).tobytes()  # an unknown head: no grid to recognise
    with pytest.raises(CanvasRewriteError, match="anchor grid"):
        rewrite_for_canvas(model, 384, 640)


def test_fit_detector_falls_back_to_the_square_when_rewriting_fails(
        tmp_path: Path, derived: tuple[Path, Path, list[Path]], shared_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    model = onnx.load(str(derived[0] / "yolo" / "yolov8n_int8.batch.fp32.onnx"))
    for init in model.graph.initializer:
        if list(init.dims) == [1, 8400]:  # strides replaced: the head is no longer recognised
            init.float_data[:] = []
            init.raw_data = np.full((1, 8400), 7.0, np.float32).tobytes()
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    fit = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit")
    frame = _footage_frames(shared_dir, count=2)[0]
    with caplog.at_level(logging.WARNING, logger="pipeline.models.yolo"):
        assert fit.canvas_of(frame.shape[:2]) == (640, 640)
        fit.detect_batch([frame])
    assert "no 384x640 input canvas" in caplog.text
    with pytest.raises(ValueError, match="canvas must be"):
        YoloOnnxDetector(path, canvas="round")


@pytest.mark.timeout(300)
def test_small_frames_run_at_their_own_size_without_upscale(derived: tuple[Path, Path, list[Path]],
                                                            shared_dir: Path) -> None:
    """``upscale=False``: a frame smaller than the input runs on a canvas that just holds it, its boxes still in
    frame pixels (the enlarged run's vehicles and people found again); frames of 640 px and more are untouched."""
    path = derived[0] / "yolo" / "yolov8n_int8.batch.onnx"
    enlarged = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit")
    native = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit", upscale=False)
    frames = _footage_frames(shared_dir)
    small = [cv2.resize(f, (480, 270), interpolation=cv2.INTER_AREA) for f in frames]
    assert native.fit_side((270, 480)) == 480 and enlarged.fit_side((270, 480)) == 640
    assert native.canvas_of((270, 480)) == (288, 480) and enlarged.canvas_of((270, 480)) == (384, 640)
    assert native.canvas_of((720, 1280)) == (384, 640)
    assert native.canvas_of((432, 432)) == (448, 448)
    found = native.detect_batch(small)
    agreement = match_detections(enlarged.detect_batch(small), found, min_iou=0.7)
    assert agreement["boxes_ref"] >= 10, "the small frames should still show vehicles and people"
    assert agreement["match_rate"] >= 0.8, agreement
    for dets in found:
        assert (dets.xyxy[:, [0, 2]] <= 480 + 1e-3).all() and (dets.xyxy[:, [1, 3]] <= 270 + 1e-3).all()
    for a, b in zip(enlarged.detect_batch(frames[:2]), native.detect_batch(frames[:2]), strict=True):
        assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.class_id, b.class_id)
    square = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", upscale=False)
    same = match_detections(found, square.detect_batch(small), min_iou=0.8)  # the same frame centred in 640x640
    assert same["match_rate"] >= 0.85, same


def test_a_small_frame_without_a_canvas_of_its_own_is_enlarged_as_before(
        derived: tuple[Path, Path, list[Path]], shared_dir: Path) -> None:
    """Past ``max_canvases`` frame shapes a small frame runs on the canvas it had when enlarged (not on the
    square at its own size, which costs the whole square)."""
    path = derived[0] / "yolo" / "yolov8n_int8.batch.onnx"
    native = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit", upscale=False,
                              max_canvases=1)
    wide = _footage_frames(shared_dir, count=2)[0]
    assert native.plan((720, 1280)) == ((384, 640), 640)  # the square plus this canvas: the limit is reached
    small = cv2.resize(wide, (480, 270), interpolation=cv2.INTER_AREA)
    assert native.plan((270, 480)) == ((384, 640), 640)  # its own (288, 480) canvas would be one too many
    assert native.plan((300, 300)) == ((640, 640), 640)  # its enlarged canvas is the square: as before
    enlarged = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cpu", canvas="fit")
    a, b = enlarged.detect_batch([small])[0], native.detect_batch([small])[0]
    assert len(a) and np.allclose(a.xyxy, b.xyxy, atol=1e-3) and np.array_equal(a.class_id, b.class_id)
