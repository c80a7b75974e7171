"""The PyTorch runtime (the GPU path where ONNX Runtime has no CUDA build) behind the session interface: the same
outputs as ONNX Runtime on the real models, run here on the CPU, and a clean fallback wherever it cannot run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EngineConfig
from pipeline.engine.tracking import iou_matrix
from pipeline.models import torch_runtime
from pipeline.models.faces import FaceEmbedder, ScrfdDetector
from pipeline.models.onnx_utils import create_session, model_providers, resolve_runtime, session_runtime
from pipeline.models.registry import load_model_set
from pipeline.models.torch_runtime import TorchSession, torch_available
from pipeline.models.yolo import TRAFFIC_CLASSES, YoloOnnxDetector
from pipeline.plates.crnn_backend import CrnnPlateReader
from pipeline.settings import PROJECT_ROOT
from tests.runtime_support import assert_vehicle_detector_on, derived_file

HAVE_TORCH = torch_available()[0]
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch / onnx2torch are not installed (pip install .[gpu])")
READER_DIR = PROJECT_ROOT / "models" / "plate_reader"



@pytest.fixture()
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where torch sees no GPU (this one, usually; forced so that the test means the same everywhere)."""
    monkeypatch.setattr(torch_runtime, "torch_cuda_available", lambda: False)


def test_engine_config_takes_the_torch_runtimes() -> None:
    assert EngineConfig(runtime="torch").runtime == "torch"
    assert EngineConfig(runtime="torch-fp16").runtime == "torch-fp16"
    assert resolve_runtime("torch", "vehicles", "cuda") == "torch"  # an explicit choice is kept, GPU or not


@needs_torch
def test_vehicle_detector_on_torch_finds_the_same_boxes_on_real_frames(
        derived: tuple[Path, Path, list[Path]], dashcam_frames: list[np.ndarray]) -> None:
    assert_vehicle_detector_on("torch", "TorchCPU", derived, dashcam_frames, min_iou=0.99)


@needs_torch
def test_reshapes_and_splits_of_the_detector_keep_their_shapes_on_the_host(
        derived: tuple[Path, Path, list[Path]]) -> None:
    """The YOLO export's constant reshapes and splits become modules holding Python ints: onnx2torch's own read the
    shape tensor on the device at every call (a GPU-to-CPU wait each, 71 reshapes in the vehicle detector)."""
    from onnx2torch.node_converters.reshape import OnnxReshape
    from onnx2torch.node_converters.split import OnnxSplit13

    session = TorchSession(derived_file(derived, "yolov8n_int8.batch.fp32.onnx"), device="cpu")
    kinds = {type(m).__name__ for m in session.module.modules()}
    assert "ConstantReshape" in kinds and "OnnxSplit" in kinds
    assert not any(isinstance(m, (OnnxReshape, OnnxSplit13)) for m in session.module.modules())


@needs_torch
def test_face_models_on_torch_give_the_same_faces_and_embeddings(
        derived: tuple[Path, Path, list[Path]], model_dir: Path, shared_dir: Path) -> None:
    import cv2

    det_path = derived_file(derived, "det_500m.batch.onnx")
    emb_path = derived_file(derived, "mobilefacenet.batch.onnx")
    source = model_dir / "insightface/models/buffalo_s/mobilefacenet.onnx"
    photos = [cv2.imread(str(p)) for p in sorted((shared_dir / "data" / "videos" / "enroll").glob("*"))[:4]]
    photos = [p for p in photos if p is not None]
    ort_det, torch_det = ScrfdDetector(det_path, device="cpu"), ScrfdDetector(det_path, device="cpu", runtime="torch")
    assert session_runtime(torch_det.session) == "torch"
    faces = []
    for img in photos:
        ref, got = ort_det.detect_batch([img])[0], torch_det.detect_batch([img])[0]
        assert len(ref) == len(got)
        if len(ref):
            assert (np.diag(iou_matrix(ref.xyxy, got.xyxy)) > 0.99).all()
            faces.append((img, ref.data["landmarks"][0]))
    assert faces
    ort_emb = FaceEmbedder(emb_path, device="cpu", source_path=source)
    torch_emb = FaceEmbedder(emb_path, device="cpu", source_path=source, runtime="torch")
    aligned = [ort_emb.align(img, lm) for img, lm in faces]
    cosine = np.sum(ort_emb.embed(aligned) * torch_emb.embed(aligned), axis=1)
    assert (cosine > 0.999).all(), cosine


@needs_torch
def test_half_precision_session_hands_back_float32_close_to_the_reference(
        derived: tuple[Path, Path, list[Path]], dashcam_frames: list[np.ndarray]) -> None:
    path = derived_file(derived, "license_plate_detector_int8.batch.fp32.onnx")
    reference = create_session(path, "cpu")
    half = create_session(path, "cpu", runtime="torch-fp16")
    assert session_runtime(half) == "torch-fp16"
    rng = np.random.default_rng(0)
    blob = rng.uniform(0, 1, (2, 3, 320, 320)).astype(np.float32)
    name = reference.get_inputs()[0].name
    ref, got = reference.run(None, {name: blob})[0], half.run(None, {name: blob})[0]
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.abs(got - ref).max() <= 0.01 * np.abs(ref).max()
    with pytest.raises(ValueError, match="unknown torch precision"):
        TorchSession(path, device="cpu", precision="int4")
    with pytest.raises(ValueError, match="unknown torch device"):
        TorchSession(path, device="tpu")


@needs_torch
def test_model_set_and_plate_reader_on_torch_read_the_same_plates(
        derived: tuple[Path, Path, list[Path]], model_dir: Path, shared_dir: Path) -> None:
    import cv2

    models = load_model_set(EngineConfig(runtime="torch"), model_dir=model_dir, device="cpu", derived_dir=derived[0])
    assert models.runtimes == {"vehicles": "torch", "plates": "torch", "face_detector": "torch",
                               "face_embedder": "torch"}
    assert models.providers == ["TorchCPU"]
    # The reader's bidirectional GRU (no onnx2torch converter of its own) as torch.nn.GRU, gates reordered.
    reader = CrnnPlateReader(READER_DIR, device="cpu", runtime="torch")
    reference = CrnnPlateReader(READER_DIR, device="cpu")
    assert session_runtime(reader.session) == "torch"
    folder = shared_dir / "data" / "plates_thai"
    rows = (folder / "labels.csv").read_text(encoding="utf-8").splitlines()[1:41]
    crops = [cv2.imread(str(folder / row.split(",")[0])) for row in rows]
    crops = [c for c in crops if c is not None]
    assert len(crops) >= 30
    got, want = reader.read_batch(crops), reference.read_batch(crops)
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.province for r in got] == [r.province for r in want]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(got, want, strict=True)) < 1e-3


def _gru_model(path: Path, linear_before_reset: int) -> Path:
    """A one-node ONNX GRU (hidden 2, input 4) that ONNX Runtime runs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
             for name, shape in (("W", (1, 6, 4)), ("R", (1, 6, 2)), ("B", (1, 12)))]
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=2,
                            linear_before_reset=linear_before_reset)
    graph = helper.make_graph([node], "gru", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [3, "batch", 4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, 1, "batch", 2]),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "batch", 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), str(path))
    return path


@needs_torch
def test_gru_converts_where_pytorch_computes_it_the_onnx_way_and_falls_back_where_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype(np.float32)
    same = _gru_model(tmp_path / "gru1.onnx", linear_before_reset=1)
    ref, got = create_session(same, "cpu").run(None, {"X": x}), create_session(same, "cpu", runtime="torch")
    assert session_runtime(got) == "torch"
    for a, b in zip(ref, got.run(None, {"X": x}), strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5
    other = _gru_model(tmp_path / "gru0.onnx", linear_before_reset=0)  # not PyTorch's formula: no conversion
    with caplog.at_level(logging.WARNING, logger="pipeline.models.onnx_utils"):
        session = create_session(other, "cpu", runtime="torch")
    assert session_runtime(session) == "onnxruntime"
    assert any("could not convert" in r.getMessage() and "linear_before_reset" in r.getMessage()
               for r in caplog.records)


def _one_node_model(path: Path, node: object, inputs: list, outputs: list, opset: int) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph([node], "one", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9), str(path))
    return path


@needs_torch
def test_split_into_uneven_parts_and_resize_modes_pytorch_lacks(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    x = np.arange(2 * 7 * 3, dtype=np.float32).reshape(2, 7, 3)
    split = _one_node_model(tmp_path / "split.onnx", helper.make_node("Split", ["X"], ["A", "B", "C"], axis=1,
                                                                      num_outputs=3),
                            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 7, 3])],
                            [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ABC"], 18)
    ref, got = create_session(split, "cpu"), create_session(split, "cpu", runtime="torch")
    assert session_runtime(got) == "torch"
    for a, b in zip(ref.run(None, {"X": x}), got.run(None, {"X": x}), strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)  # 3, 3, 1 as ONNX says, not 2, 2, 2 (+1)
    scales = helper.make_tensor("S", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    node = helper.make_node("Resize", ["X", "", "S"], ["Y"], mode="nearest",
                            coordinate_transformation_mode="half_pixel")
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 3, 3])]
    resize = _one_node_model(tmp_path / "resize.onnx", node, inputs,
                             [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], 19)
    import onnx

    model = onnx.load(str(resize))
    model.graph.initializer.append(scales)
    onnx.save(model, str(resize))
    session = create_session(resize, "cpu", runtime="torch")
    assert session_runtime(session) == "onnxruntime"  # refused, not converted with PyTorch's other rounding


@needs_torch
def test_gru_whose_outputs_are_not_both_used_is_refused(tmp_path: Path) -> None:
    import onnx

    path = _gru_model(tmp_path / "gru.onnx", linear_before_reset=1)
    model = onnx.load(str(path))
    model.graph.node[0].output[1] = ""  # Y_h unused
    del model.graph.output[1]
    onnx.save(model, str(path))
    assert session_runtime(create_session(path, "cpu", runtime="torch")) == "onnxruntime"


@needs_torch
def test_detector_that_fell_back_to_the_cpu_makes_its_canvases_there_too(
        no_cuda: None, derived: tuple[Path, Path, list[Path]], dashcam_frames: list[np.ndarray]) -> None:
    """A model left on ONNX Runtime on the CPU (torch could not run it on the GPU asked for) must not ask ONNX
    Runtime for CUDA when it makes the input canvas of a new frame shape."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    path = derived_file(derived, "yolov8n_int8.batch.fp32.onnx")
    detector = YoloOnnxDetector(path, conf=0.3, classes=TRAFFIC_CLASSES, device="cuda", runtime="torch",
                                canvas="fit")
    assert detector.session.get_providers() == ["CPUExecutionProvider"]
    assert len(detector.detect_batch(dashcam_frames[:2])) == 2


@needs_torch
def test_cuda_sync_mode_is_checked_and_a_missing_driver_is_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ctypes

    with pytest.raises(ValueError, match="unknown CUDA sync mode"):
        torch_runtime.set_cuda_sync("busy")

    def no_driver(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    monkeypatch.setattr(torch_runtime, "_SYNC_SET", {})
    with caplog.at_level(logging.WARNING, logger="pipeline.models.torch_runtime"):
        assert torch_runtime.set_cuda_sync("blocking") is False
    assert any("libcuda.so.1" in r.getMessage() for r in caplog.records)


def test_cuda_asked_where_torch_sees_no_gpu_runs_on_the_cpu_with_a_warning(
        no_cuda: None, derived: tuple[Path, Path, list[Path]], caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the fallback runs there")
    path = derived_file(derived, "mobilefacenet.batch.onnx")
    with caplog.at_level(logging.WARNING, logger="pipeline.models.onnx_utils"):
        session = create_session(path, "cuda", runtime="torch")
    assert session_runtime(session) == "onnxruntime" and session.get_providers() == ["CPUExecutionProvider"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("no CUDA device" in m for m in messages) and any("on the CPU" in m for m in messages), messages
    if HAVE_TORCH:
        with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
            model_providers("cuda", "torch")
    assert model_providers("cpu", "torch") == (["TorchCPU"] if HAVE_TORCH else ["CPUExecutionProvider"])


def test_torch_asked_where_onnx2torch_is_missing_falls_back_to_onnxruntime(
        monkeypatch: pytest.MonkeyPatch, derived: tuple[Path, Path, list[Path]],
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # import fails as where the package is not installed
    assert torch_available()[0] is False
    path = derived_file(derived, "mobilefacenet.batch.onnx")
    with caplog.at_level(logging.WARNING, logger="pipeline.models.onnx_utils"):
        session = create_session(path, "cpu", runtime="torch")
    assert session_runtime(session) == "onnxruntime"
    assert any("runtime torch" in r.getMessage() and "pip install .[gpu]" in r.getMessage() for r in caplog.records)
    assert model_providers("cpu", "torch") == ["CPUExecutionProvider"]


def test_auto_takes_torch_on_a_gpu_that_only_pytorch_reaches(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    import onnxruntime as ort

    from pipeline.models import onnx_utils

    driver = tmp_path / "version"
    monkeypatch.setattr(onnx_utils, "NVIDIA_DRIVER", driver)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(torch_runtime, "torch_cuda_available", lambda: True)
    assert onnx_utils.torch_gpu_path("cuda") is False  # no NVIDIA driver loaded: torch is not even asked
    driver.write_text("NVRM version: test\n", encoding="utf-8")
    assert onnx_utils.torch_gpu_path("cuda") is True and onnx_utils.torch_gpu_path("cpu") is False
    assert resolve_runtime("auto", "vehicles", "cuda") == "torch"
    assert resolve_runtime("auto", "plate_reader", "auto") == "torch"
    assert resolve_runtime("onnxruntime", "vehicles", "cuda") == "onnxruntime"  # an explicit choice is kept
    if HAVE_TORCH:
        assert model_providers("cuda", "auto") == ["TorchCUDA"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_utils.torch_gpu_path("cuda") is False  # ONNX Runtime's own CUDA build comes first
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(torch_runtime, "torch_cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"pip install \.\[gpu\]"):
        model_providers("cuda", "auto")  # neither reaches a GPU: the error says both ways to get one


def test_gpu_unavailable_says_why_only_for_cuda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import onnxruntime as ort

    from pipeline.models import onnx_utils

    monkeypatch.setattr(onnx_utils, "NVIDIA_DRIVER", tmp_path / "none")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(torch_runtime, "torch_cuda_available", lambda: False)
    assert onnx_utils.gpu_unavailable("auto", "auto") is None and onnx_utils.gpu_unavailable("cpu", "torch") is None
    assert "no CUDA provider" in onnx_utils.gpu_unavailable("cuda", "auto")
    assert "engine.runtime torch" in onnx_utils.gpu_unavailable("cuda", "torch")
    monkeypatch.setattr(torch_runtime, "torch_cuda_available", lambda: True)
    (tmp_path / "none").write_text("NVRM\n", encoding="utf-8")
    if HAVE_TORCH:
        assert onnx_utils.gpu_unavailable("cuda", "torch") is None
        assert onnx_utils.gpu_unavailable("cuda", "auto") is None  # auto takes torch there
    assert "no CUDA provider" in onnx_utils.gpu_unavailable("cuda", "onnxruntime")  # explicit ONNX Runtime: no
