"""ONNX Runtime helpers shared by the backends: sessions, batched runs, letterbox, NMS."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.models.base import onnxruntime_has_cuda, select_providers
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)


RUNTIMES = ("auto", "onnxruntime", "openvino", "openvino-bf16", "torch", "torch-fp16")
OPENVINO_PRECISION = {"openvino": "f32", "openvino-bf16": "bf16"}  # runtime name -> OpenVINO inference precision
TORCH_PRECISION = {"torch": "f32", "torch-fp16": "f16"}  # runtime name -> precision of the PyTorch module
# The runtime ``auto`` takes per model (the engine's roles: vehicles, plates, face_detector, face_embedder) where
# OpenVINO is installed, per kind of CPU (:func:`cpu_class`): the fastest with the same outputs, as measured by
# ``python -m benchmarks.runtimes`` on that kind. A model not listed runs on ONNX Runtime.
# - ``f32`` (no native bfloat16; measured on a 2-core AMD EPYC, AVX2): OpenVINO 2026.4 gave the same outputs for
#   every model but was slower (plate detector, faces, plate reader and rectifier) or at most ~10 % faster (vehicle
#   detector at batch 4-8, within the shared host's noise): none is listed.
# - ``bf16`` (AMX; measured on a 2-core Intel Xeon of the Sapphire Rapids kind, 2026-12-02): OpenVINO in f32 runs
#   the vehicle and plate detectors 1.1-1.26x and the face embedder 1.04-1.22x faster than ONNX Runtime with
#   identical outputs. Not taken: bfloat16 (``openvino-bf16``), 2.7-3x faster with every box matched at IoU > 0.9
#   and embeddings at cosine > 0.99, because answers moved: with the vehicle detector in bf16 the Thai scene photos
#   read 8 of 11 (9 in f32) and the OpenALPR US cascade recall fell 0.960 -> 0.953 (0.946 with the plate detector
#   in bf16 too); with the face detector in bf16 the engine made 55 face events on the footage where the f32
#   reference made 66; with the embedder in bf16 it made one extra face event (2 of 66 instead of 1,
#   ``benchmarks.throughput --mode files --streams 3 --fps 1 --seconds 60``). ``engine.runtime: openvino-bf16``
#   runs every model that way where capacity matters more. The face detector stays on ONNX Runtime (OpenVINO
#   was slower at batch 4-8); the plate reader and rectifier are loaded on ONNX Runtime (small networks).
#   A 2-core AMD EPYC with AVX-512 BF16 (Zen 4; 2026-12-02 evening) is of this class too and agrees: OpenVINO f32
#   1.07-1.14x (vehicles), 1.06-1.14x (plates), 1.07-1.24x (embedder), 0.80-0.90x (face detector); bf16 1.4-2.3x.
FASTEST_RUNTIME: dict[str, dict[str, str]] = {
    "f32": {},
    "bf16": {"vehicles": "openvino", "plates": "openvino", "face_embedder": "openvino"},
}


def cpu_class() -> str:
    """``bf16`` where OpenVINO is installed and runs bfloat16 natively on this CPU, else ``f32``."""
    from pipeline.models.openvino_runtime import native_bf16

    return "bf16" if native_bf16() else "f32"


def small_model_runtime(runtime: str, model: str, device: str = "auto") -> str:
    """The runtime of a small network (the plate reader, the rectifier) under ``engine.runtime`` ``runtime``:
    ``torch`` in f32 where it resolves to a torch runtime (the GPU path; in half precision the reader read none of 60
    plates as in f32), else ONNX Runtime (OpenVINO was not faster on them)."""
    return "torch" if resolve_runtime(runtime, model, device) in TORCH_PRECISION else "onnxruntime"


NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present where an NVIDIA kernel driver is loaded


def torch_gpu_path(device: str) -> bool:
    """Whether models of ``device`` (``cuda``, or ``auto``) run on a GPU through PyTorch: an NVIDIA driver is
    loaded, this onnxruntime has no CUDA provider, and torch with onnx2torch sees a CUDA device (``pip install
    .[gpu]``). Cheap where there is no NVIDIA driver: torch is not imported."""
    if device not in ("cuda", "auto") or not NVIDIA_DRIVER.exists() or onnxruntime_has_cuda():
        return False
    from pipeline.models.torch_runtime import torch_cuda_available

    return torch_cuda_available()


def gpu_unavailable(device: str, runtime: str) -> str | None:
    """Why models of ``engine.device`` ``device`` and ``engine.runtime`` ``runtime`` cannot run here, or None: only
    ``cuda`` can fail (``auto`` and ``cpu`` always run, on the CPU at worst). The service checks it before starting
    any process, so that a GPU asked for where there is none is one clear error, not an engine restarting."""
    if device != "cuda":
        return None
    import onnxruntime as ort

    ort_cuda = onnxruntime_has_cuda()
    if runtime in TORCH_PRECISION:
        from pipeline.models.torch_runtime import torch_available, torch_cuda_available

        ok, detail = torch_available()
        if ok and torch_cuda_available():
            return None
        why = detail if not ok else f"{detail} sees no CUDA device"
        return None if ort_cuda else f"engine.device cuda with engine.runtime {runtime}: {why}"
    if ort_cuda or (runtime == "auto" and torch_gpu_path(device)):
        return None
    return (f"engine.device cuda, but this onnxruntime {ort.__version__} has no CUDA provider"
            + ("" if runtime != "auto" else " and torch reaches no GPU here")
            + ": install onnxruntime-gpu, or PyTorch with CUDA and pip install .[gpu] (engine.runtime auto or torch), "
              "or set engine.device to auto or cpu")


def resolve_runtime(runtime: str, model: str, device: str = "auto") -> str:
    """The runtime (one of :data:`RUNTIMES` but ``auto``) to run ``model`` (a :data:`FASTEST_RUNTIME` key) with.

    ``auto`` takes ``torch`` where the model runs on a GPU (``device`` ``cuda``, or ``auto``) that only PyTorch
    reaches (:func:`torch_gpu_path`); else the :data:`FASTEST_RUNTIME` entry of this CPU's :func:`cpu_class` when
    OpenVINO imports and the model runs on the CPU, else ONNX Runtime; an explicit runtime is kept
    (:func:`create_session` falls back, with a warning, where it cannot run).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    if torch_gpu_path(device):
        logger.info("runtime auto: %s on torch (CUDA; this onnxruntime has no CUDA provider)", model)
        return "torch"
    from pipeline.models.openvino_runtime import openvino_available

    ok, detail = openvino_available()
    if not ok:
        logger.info("runtime auto: %s on ONNX Runtime (%s)", model, detail)
        return "onnxruntime"
    choice = FASTEST_RUNTIME[cpu_class()].get(model, "onnxruntime")
    if choice != "onnxruntime" and select_providers(device)[0] != "CPUExecutionProvider":
        logger.info("runtime auto: %s on ONNX Runtime (CUDA is in use; OpenVINO runs on the CPU)", model)
        return "onnxruntime"
    return choice


def _openvino_session(path: Path, device: str, threads: int,
                      precision: str = "f32"):  # noqa: ANN202 (OpenVinoSession | None)
    """An :class:`~pipeline.models.openvino_runtime.OpenVinoSession` on ``path``, or ``None`` (reason logged as a
    warning) when OpenVINO is not installed, the device is CUDA, or OpenVINO cannot compile the model. ``bf16`` on a
    CPU without native bfloat16 runs in f32 (logged): emulated bf16 would be slower and no more exact."""
    from pipeline.models.openvino_runtime import OpenVinoSession, native_bf16, openvino_available

    if device == "cuda":
        logger.warning("runtime openvino: %s runs on ONNX Runtime instead (device cuda; OpenVINO runs on the CPU)",
                       path)
        return None
    ok, detail = openvino_available()
    if not ok:
        logger.warning("runtime openvino: %s runs on ONNX Runtime instead (%s; pip install .[openvino])", path,
                       detail)
        return None
    if precision == "bf16" and not native_bf16():
        logger.warning("runtime openvino-bf16: %s runs in f32 (this CPU has no native bfloat16)", path)
        precision = "f32"
    try:
        return OpenVinoSession(path, threads=threads, precision=precision)
    except Exception as exc:  # noqa: BLE001 (any compile failure means: use ONNX Runtime)
        logger.warning("runtime openvino: %s runs on ONNX Runtime instead (OpenVINO could not compile it: %s: %s)",
                       path, type(exc).__name__, exc)
        return None


def _torch_session(path: Path, device: str, precision: str):  # noqa: ANN202 (TorchSession | None)
    """A :class:`~pipeline.models.torch_runtime.TorchSession` on ``path``, or ``None`` (reason logged as a warning)
    when torch or onnx2torch is missing, CUDA was asked for and torch sees none, or the model does not convert."""
    from pipeline.models.torch_runtime import TorchSession, torch_available, torch_cuda_available, torch_device

    ok, detail = torch_available()
    if not ok:
        logger.warning("runtime torch: %s runs on ONNX Runtime instead (%s; pip install .[gpu])", path, detail)
        return None
    if device == "cuda" and not torch_cuda_available():
        logger.warning("runtime torch: %s runs on ONNX Runtime instead (torch sees no CUDA device)", path)
        return None
    try:
        return TorchSession(path, device=torch_device(device), precision=precision)
    except Exception as exc:  # noqa: BLE001 (any conversion failure means: use ONNX Runtime)
        logger.warning("runtime torch: %s runs on ONNX Runtime instead (onnx2torch could not convert it: %s: %s)",
                       path, type(exc).__name__, exc)
        return None


def model_providers(device: str, runtime: str) -> list[str]:
    """Where models of ``runtime`` (as asked for: ``auto`` too) run for ``device``: the torch runtime's
    ``TorchCUDA`` / ``TorchCPU`` when it is installed and taken, else ONNX Runtime's providers
    (:func:`~pipeline.models.base.select_providers`, which raises for ``cuda`` without a CUDA build)."""
    if runtime in TORCH_PRECISION or (runtime == "auto" and torch_gpu_path(device)):
        from pipeline.models.torch_runtime import PROVIDERS, torch_available, torch_device

        if torch_available()[0]:
            return [PROVIDERS[torch_device(device)]]
    return select_providers(device)


def create_session(path: Path, device: str = "auto", threads: int = 0,
                   runtime: str = "onnxruntime"):  # noqa: ANN201 (InferenceSession | OpenVinoSession | TorchSession)
    """Open an ONNX Runtime session on ``path`` with the providers of ``device``.

    Worker threads do not spin while idle: the engine shares the CPU with the ffmpeg decoders, and spinning
    threads burn the cycles those need between batches. ``threads`` > 0 caps the intra-op thread count; 0 takes
    the ``CCTV_MODEL_THREADS`` setting (itself 0 by default: the runtime's own choice, every core).
    ``runtime`` ``openvino`` (or ``openvino-bf16``) returns an
    :class:`~pipeline.models.openvino_runtime.OpenVinoSession` (the same ``run``/``get_inputs``/``get_outputs``
    calls) on the CPU instead, falling back to ONNX Runtime with a logged reason where OpenVINO is missing or fails
    (``auto`` is resolved per model by :func:`resolve_runtime` first). ``torch`` (or ``torch-fp16``) returns a
    :class:`~pipeline.models.torch_runtime.TorchSession` on CUDA where torch sees a GPU (the CPU otherwise), falling
    back to ONNX Runtime likewise.
    """
    if runtime not in RUNTIMES[1:]:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES[1:])} here (resolve auto first), "
                         f"not {runtime!r}")
    threads = threads or get_settings().model_threads
    if runtime in OPENVINO_PRECISION:
        session = _openvino_session(Path(path), device, threads, OPENVINO_PRECISION[runtime])
        if session is not None:
            return session
    import onnxruntime as ort

    if runtime in TORCH_PRECISION:
        session = _torch_session(Path(path), device, TORCH_PRECISION[runtime])
        if session is not None:
            return session
        if device == "cuda" and not onnxruntime_has_cuda():
            logger.warning("runtime torch: %s runs on ONNX Runtime on the CPU (this onnxruntime has no CUDA)", path)
            device = "cpu"

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads > 0:
        options.intra_op_num_threads = threads
    providers = select_providers(device)
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    logger.info("loaded %s with %s", path, session.get_providers()[0])
    return session


def session_runtime(session) -> str:  # noqa: ANN001
    """``openvino``, ``openvino-bf16``, ``torch``, ``torch-fp16`` or ``onnxruntime``: what a session from
    :func:`create_session` actually runs on."""
    from pipeline.models.openvino_runtime import PROVIDER_NAME
    from pipeline.models.torch_runtime import PROVIDERS as TORCH_PROVIDERS

    first = list(session.get_providers())[:1]
    if first and first[0] in TORCH_PROVIDERS.values():
        return "torch-fp16" if getattr(session, "precision", "f32") == "f16" else "torch"
    if first != [PROVIDER_NAME]:
        return "onnxruntime"
    return "openvino-bf16" if getattr(session, "precision", "f32") == "bf16" else "openvino"


def fixed_batch_size(session) -> int | None:  # noqa: ANN001
    """Return the batch size a session's first input is fixed to, or ``None`` when the batch dim is symbolic."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def run_batched(session, blob: np.ndarray, max_batch: int | None = None) -> list[np.ndarray]:  # noqa: ANN001
    """Run ``session`` on ``blob`` (``N x ...``) and return its outputs concatenated along the batch axis.

    A batch-capable session gets the whole blob in one call (or chunks of ``max_batch``); a session fixed to
    batch ``k`` is fed chunks of ``k`` (the fallback when no derived batch-capable file is available).
    """
    name = session.get_inputs()[0].name
    fixed = fixed_batch_size(session)
    step = fixed or max_batch or len(blob)
    step = max(1, step)
    if len(blob) <= step:
        return list(session.run(None, {name: blob}))
    parts = [session.run(None, {name: blob[i : i + step]}) for i in range(0, len(blob), step)]
    return [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: ``net = orig * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float
    orig_h: int
    orig_w: int

    def to_original(self, xyxy: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` network-space boxes back to clipped original-image pixels."""
        out = xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.orig_w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.orig_h)
        return out

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` network-space points back to original-image pixels."""
        out = points.astype(np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale
        return out


def fitted_size(image_hw: tuple[int, int], size: int) -> tuple[int, int]:
    """``(height, width)`` of an image of ``image_hw`` scaled to fit ``size x size`` with its aspect ratio kept."""
    h, w = image_hw
    scale = min(size / h, size / w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def fit_side(image_hw: tuple[int, int], size: int, enlarge: bool = True) -> int:
    """The side of the square an image of ``image_hw`` is fitted into for a network of input ``size``: ``size``,
    or without ``enlarge`` the image's own longer side where that is smaller (a small image is not enlarged)."""
    return size if enlarge else min(size, max(image_hw))


def letterbox(image: np.ndarray, size: int, center: bool = True, pad_value: int = 114,
              canvas_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` to fit ``size x size`` keeping its aspect ratio and pad the rest.

    ``center=True`` pads both sides like Ultralytics; ``center=False`` pads right/bottom like InsightFace.
    ``canvas_hw`` pads to that (smaller, at least the fitted size) canvas instead of the square, for networks
    that accept any input size.
    """
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = fitted_size((h, w), size)
    canvas_h, canvas_w = canvas_hw or (size, size)
    if canvas_h < nh or canvas_w < nw:
        raise ValueError(f"canvas {canvas_h}x{canvas_w} is smaller than the fitted image {nh}x{nw}")
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image
    if center:
        left, top = round((canvas_w - nw) / 2 - 0.1), round((canvas_h - nh) / 2 - 0.1)
    else:
        left, top = 0, 0
    canvas = np.full((canvas_h, canvas_w, 3), pad_value, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = resized
    return canvas, Letterbox(scale=scale, pad_x=float(left), pad_y=float(top), orig_h=h, orig_w=w)


def to_blob(images: list[np.ndarray], mean: float = 0.0, std: float = 255.0, swap_rb: bool = True) -> np.ndarray:
    """Stack same-sized BGR uint8 images into an ``N x 3 x H x W`` float32 blob ``(img - mean) / std``.

    The channel swap and transpose are made contiguous on the uint8 pixels before the float conversion (a quarter
    of the bytes moved, about 5x faster than converting the strided view), with the same arithmetic: the blob is
    bit for bit the same."""
    batch = np.stack(images)
    if swap_rb:
        batch = batch[..., ::-1]
    blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).astype(np.float32)
    if mean:
        blob -= mean
    blob *= 1.0 / std
    return blob


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, over: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; returns the kept indices, best first.

    The overlap is the intersection over the ``union`` of two boxes (IoU), or over the ``smaller`` of the two
    (a box lying mostly inside a better one goes, as when a tile edge cuts an object).
    """
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[box_overlap(boxes[i], boxes[rest], over) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def box_overlap(box: np.ndarray, others: np.ndarray, over: str = "union") -> np.ndarray:
    """Intersection of ``box`` with each of ``others`` (xyxy) over their union (IoU) or over the ``smaller`` of
    the two areas."""
    box = np.asarray(box, np.float32)
    others = np.asarray(others, np.float32).reshape(-1, 4)
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = w * h
    area = np.clip(box[2] - box[0], 0, None) * np.clip(box[3] - box[1], 0, None)
    areas = np.clip(others[:, 2] - others[:, 0], 0, None) * np.clip(others[:, 3] - others[:, 1], 0, None)
    denominator = area + areas - inter if over == "union" else np.minimum(area, areas)
    return inter / np.maximum(denominator, 1e-9)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS (boxes of different classes never suppress each other) by offsetting boxes per class."""
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    offset = class_ids.astype(np.float32)[:, None] * (float(boxes.max()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold)
