"""PyTorch backend behind the small ONNX Runtime session interface the model backends use: the GPU path where
ONNX Runtime's CUDA build is not installed.

:class:`TorchSession` converts the same ONNX file into a PyTorch module (``onnx2torch``) and runs it on CUDA (or the
CPU), answering the calls the backends make on an ``onnxruntime.InferenceSession``: ``run(None, {name: blob})``,
``get_inputs()`` / ``get_outputs()`` (a dynamic dimension given as a string, as ONNX Runtime does),
``get_providers()`` and ``get_modelmeta().custom_metadata_map``. So YOLO, plate, face and plate-reader code run on it
without branching, as they do on :mod:`pipeline.models.openvino_runtime`.

Why it exists: ``onnxruntime-gpu`` is a 243 MiB wheel built against one CUDA major version, while a machine with an
NVIDIA GPU usually has PyTorch with its CUDA libraries already (``torch`` is a dependency of this project). Runtime
``torch`` runs in float32 (TF32 matrix units allowed, as PyTorch's convolutions do by default), ``torch-fp16`` in half
precision (outputs returned as float32). ``onnx2torch`` is optional (``pip install .[gpu]``); :func:`torch_available`
tells whether it imports, and :func:`pipeline.models.onnx_utils.create_session` falls back to ONNX Runtime with a
logged reason where it is missing or cannot convert a model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PROVIDERS = {"cuda": "TorchCUDA", "cpu": "TorchCPU"}  # what get_providers() reports, per device
PRECISIONS = ("f32", "f16")
_ELEM_TYPES = {1: "tensor(float)", 6: "tensor(int32)", 7: "tensor(int64)", 10: "tensor(float16)", 11: "tensor(double)"}


def torch_available() -> tuple[bool, str]:
    """``(True, versions)`` when ``torch`` and ``onnx2torch`` import, else ``(False, reason)``."""
    try:
        import onnx2torch  # noqa: F401
        import torch
    except Exception as exc:  # noqa: BLE001 (ImportError, or a broken install raising anything while loading)
        return False, f"torch / onnx2torch are not importable ({type(exc).__name__}: {exc})"
    return True, f"torch {torch.__version__}"


def torch_cuda_available() -> bool:
    """Whether the torch runtime can run on an NVIDIA GPU here (torch, onnx2torch and a CUDA device)."""
    if not torch_available()[0]:
        return False
    import torch

    try:
        return bool(torch.cuda.is_available())
    except Exception as exc:  # noqa: BLE001 (a broken driver must read as "no GPU", not crash the caller)
        logger.info("torch could not query CUDA (%s): no GPU", exc)
        return False


def torch_device(device: str) -> str:
    """``cuda`` for ``cuda`` (raising where CUDA cannot run) and for ``auto`` where it can, else ``cpu``."""
    if device == "cuda" and not torch_cuda_available():
        raise RuntimeError("device 'cuda' requested for runtime torch, but torch sees no CUDA device "
                           "(or onnx2torch is missing: pip install .[gpu])")
    if device in ("cuda", "auto") and torch_cuda_available():
        return "cuda"
    return "cpu"


CUDA_SCHED_FLAGS = {"auto": 0, "spin": 1, "yield": 2, "blocking": 4}  # CU_CTX_SCHED_* of the CUDA driver API
_SYNC_SET: dict[str, str] = {}


def set_cuda_sync(mode: str) -> bool:
    """Ask the CUDA driver to wait for the GPU the ``mode`` way (:data:`CUDA_SCHED_FLAGS`) in this process, before
    torch creates its context (``cuDevicePrimaryCtxSetFlags`` on device 0, the one ``cuda`` means); once per process.
    False (logged) where the driver library cannot be loaded or refuses."""
    import ctypes

    if mode not in CUDA_SCHED_FLAGS:
        raise ValueError(f"unknown CUDA sync mode {mode!r}; expected one of {', '.join(CUDA_SCHED_FLAGS)}")
    if _SYNC_SET.get("mode") == mode:
        return True
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        device = ctypes.c_int()
        for call, args in (("cuInit", (0,)), ("cuDeviceGet", (ctypes.byref(device), 0)),
                           ("cuDevicePrimaryCtxSetFlags", (device, CUDA_SCHED_FLAGS[mode]))):
            status = getattr(driver, call)(*args)
            if status != 0:
                raise OSError(f"{call} returned CUDA error {status}")
    except (OSError, AttributeError) as exc:
        logger.warning("CUDA sync mode %s not set (%s): CUDA's default", mode, exc)
        return False
    _SYNC_SET["mode"] = mode
    logger.info("CUDA waits for the GPU the %s way in this process", mode)
    return True


def _value_info(values: Any, symbol: str) -> list[SimpleNamespace]:  # noqa: ANN401 (onnx ValueInfoProto list)
    out = []
    for v in values:
        tensor = v.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or symbol)
                                 for d in tensor.shape.dim]
        out.append(SimpleNamespace(name=v.name, shape=dims, type=_ELEM_TYPES.get(tensor.elem_type, "tensor(float)")))
    return out


class TorchSession:
    """An ONNX model converted to PyTorch, with the ``onnxruntime.InferenceSession`` calls the backends use.

    ``device`` is ``cuda`` or ``cpu`` (see :func:`torch_device`); ``precision`` ``f32`` or ``f16`` (weights and inputs
    in half precision on the device, outputs handed back as float32). Calls from several threads are serialised: one
    CUDA stream, and PyTorch modules converted from ONNX keep no per-call state worth running in parallel.
    """

    def __init__(self, path: Path, device: str = "cuda", precision: str = "f32") -> None:
        import onnx
        import torch
        from onnx2torch import convert

        if device not in PROVIDERS:
            raise ValueError(f"unknown torch device {device!r}; expected one of {', '.join(PROVIDERS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown torch precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        self.path = Path(path)
        self.device = device
        self.precision = precision
        model = onnx.load(str(self.path))
        initialisers = {i.name for i in model.graph.initializer}
        self._inputs = _value_info([v for v in model.graph.input if v.name not in initialisers], "batch")
        self._outputs = _value_info(model.graph.output, "dim")
        self._meta = SimpleNamespace(custom_metadata_map={p.key: p.value for p in model.metadata_props})
        self._input_index = {p.name: i for i, p in enumerate(self._inputs)}
        self._output_index = {p.name: i for i, p in enumerate(self._outputs)}
        self._dtype = torch.float16 if precision == "f16" else torch.float32
        from pipeline.models.torch_converters import register

        register()
        if device == "cuda":
            from pipeline.settings import get_settings

            set_cuda_sync(get_settings().cuda_sync)
        module = convert(model).eval()
        self.module = module.to(device=device, dtype=self._dtype)
        self._lock = threading.Lock()
        logger.info("loaded %s with torch %s on %s (%s)", self.path, torch.__version__, device, precision)

    def get_inputs(self) -> list[SimpleNamespace]:
        """The model inputs (``name``, ``shape``, ``type``), like ``InferenceSession.get_inputs``."""
        return list(self._inputs)

    def get_outputs(self) -> list[SimpleNamespace]:
        """The model outputs (``name``, ``shape``, ``type``), like ``InferenceSession.get_outputs``."""
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        """``["TorchCUDA"]`` or ``["TorchCPU"]``: where ONNX Runtime names its execution providers."""
        return [PROVIDERS[self.device]]

    def get_modelmeta(self) -> SimpleNamespace:
        """The ONNX file's metadata as ``custom_metadata_map`` (class names, image size of Ultralytics exports)."""
        return self._meta

    def _tensor(self, value: np.ndarray) -> Any:  # noqa: ANN401 (torch.Tensor)
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if tensor.is_floating_point():
            tensor = tensor.to(self._dtype)
        return tensor.to(self.device, non_blocking=False)

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on ``feed`` (input name -> array); returns the outputs (all, or ``output_names``) as
        float32 numpy arrays (integer outputs keep their type)."""
        import torch

        ordered: list[Any] = [None] * len(self._inputs)
        for k, (name, value) in enumerate(feed.items()):
            ordered[self._input_index.get(name, k)] = value
        with self._lock, torch.inference_mode():
            result = self.module(*[self._tensor(v) for v in ordered])
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        arrays = [o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy() for o in outputs]
        if output_names is None:
            return arrays
        return [arrays[self._output_index[name]] for name in output_names]
