"""OpenVINO backend behind the small ONNX Runtime session interface the model backends use.

:class:`OpenVinoSession` reads the same ONNX file (or an OpenVINO IR ``.xml``) with the OpenVINO runtime and
compiles it for the CPU, and answers the calls the backends make on an ``onnxruntime.InferenceSession``:
``run(None, {name: blob})``, ``get_inputs()`` / ``get_outputs()`` (``name`` and ``shape``, a dynamic dimension
given as a string like ONNX Runtime does), ``get_providers()`` and ``get_modelmeta().custom_metadata_map``. So
YOLO, plate, face and plate-reader code run on either runtime without branching.

The ``openvino`` package is optional (``pip install .[openvino]``); :func:`openvino_available` tells whether it
imports, and :func:`pipeline.models.onnx_utils.create_session` falls back to ONNX Runtime with a logged reason
when it is missing or cannot compile a model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PROVIDER_NAME = "OpenVINO"  # what get_providers() reports, in the place of ONNX Runtime's provider names
PRECISIONS = ("f32", "bf16")  # OpenVINO's INFERENCE_PRECISION_HINT values a session may ask for


def openvino_available() -> tuple[bool, str]:
    """``(True, version)`` when the ``openvino`` package imports, else ``(False, reason)``."""
    try:
        import openvino
    except Exception as exc:  # noqa: BLE001 (ImportError, or a broken install raising anything while loading)
        return False, f"openvino is not importable ({type(exc).__name__}: {exc})"
    return True, str(getattr(openvino, "__version__", "?"))


_CORE: dict[str, Any] = {}
_CORE_LOCK = threading.Lock()


def native_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively, as OpenVINO's CPU plugin sees it.

    The plugin's default ``INFERENCE_PRECISION_HINT`` is ``bf16`` only on CPUs with bf16 hardware: AMX (Intel
    Sapphire Rapids and later, where it is several times faster than f32) and, as seen on a 2-core AMD EPYC of the
    Zen 4 kind, AVX-512 BF16 (about twice as fast); elsewhere it is ``f32`` (bf16 would be emulated, or slower).
    False when OpenVINO is not installed."""
    if not openvino_available()[0]:
        return False
    with _CORE_LOCK:
        if "native_bf16" not in _CORE:
            try:
                hint = _core_unlocked().get_property("CPU", "INFERENCE_PRECISION_HINT")
                _CORE["native_bf16"] = "bf16" in str(hint).lower() or "bfloat16" in str(hint).lower()
            except Exception as exc:  # noqa: BLE001 (a plugin that cannot answer: assume no native bf16)
                logger.info("OpenVINO could not say the CPU's native precision (%s): taking f32", exc)
                _CORE["native_bf16"] = False
        return bool(_CORE["native_bf16"])


def _core():  # noqa: ANN202 (openvino.Core)
    """One shared ``openvino.Core`` per process (it owns the CPU plugin and its thread pool)."""
    with _CORE_LOCK:
        return _core_unlocked()


def _core_unlocked():  # noqa: ANN202 (openvino.Core)
    if "core" not in _CORE:
        import openvino as ov

        _CORE["core"] = ov.Core()
    return _CORE["core"]


def _dims(partial_shape: Any, symbol: str) -> list[int | str]:  # noqa: ANN401 (openvino.PartialShape)
    """A partial shape as ONNX Runtime lists it: static dims as ints, dynamic ones as ``symbol``."""
    return [int(d.get_length()) if d.is_static else symbol for d in partial_shape]


def _onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's ``metadata_props`` (Ultralytics stores class names and image size there)."""
    if path.suffix != ".onnx":
        return {}
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (metadata is a nicety: the session works without it)
        logger.debug("no ONNX metadata from %s: %s", path, exc)
        return {}
    return {p.key: p.value for p in model.metadata_props}


class OpenVinoSession:
    """An OpenVINO compiled model with the ``onnxruntime.InferenceSession`` calls the backends use.

    ``threads`` > 0 caps the CPU inference threads (like ONNX Runtime's ``intra_op_num_threads``). The latency
    hint runs one request on all the cores, as ONNX Runtime does. A model fixed to batch 1 (the YOLO11n OpenVINO
    export, whose attention reshapes hard-code the batch) keeps that shape: ``run_batched`` feeds it image by image.
    Threads are not pinned to cores. ``precision`` is the ``INFERENCE_PRECISION_HINT``: ``f32`` (outputs match
    ONNX Runtime's within float rounding) or ``bf16`` (activations and weights in bfloat16 on CPUs that run it
    natively, :func:`native_bf16`: about 3x faster than f32 there, outputs within ~2 % of the largest value, the same
    detections as measured by ``benchmarks.runtimes``). Each thread gets its own infer request (an OpenVINO request
    must not be used from two threads at once).
    """

    def __init__(self, path: Path, threads: int = 0, precision: str = "f32") -> None:
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"unknown OpenVINO precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        self.path = Path(path)
        self.precision = precision
        core = _core()
        model = core.read_model(str(self.path))
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            # Threads are not pinned to cores: the engine shares the CPU with the ffmpeg decoders (as ONNX Runtime's
            # threads do not spin); pinned, OpenVINO ran the vehicle detector ~20 % slower on the busy 2-core host.
            "ENABLE_CPU_PINNING": False,
        }
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self._inputs = [SimpleNamespace(name=p.get_any_name() if p.get_names() else f"input_{i}",
                                        shape=_dims(p.get_partial_shape(), "batch" if i == 0 else "dim"),
                                        type="tensor(float)")
                        for i, p in enumerate(self.compiled.inputs)]
        self._outputs = [SimpleNamespace(name=p.get_any_name() if p.get_names() else f"output_{i}",
                                         shape=_dims(p.get_partial_shape(), "dim"), type="tensor(float)")
                         for i, p in enumerate(self.compiled.outputs)]
        self._meta = SimpleNamespace(custom_metadata_map=_onnx_metadata(self.path))
        self._local = threading.local()
        logger.info("loaded %s with OpenVINO %s (%s) on %s", self.path, ov.__version__, precision,
                    core.get_property("CPU", "FULL_DEVICE_NAME"))

    def _request(self):  # noqa: ANN202 (openvino.InferRequest)
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def get_inputs(self) -> list[SimpleNamespace]:
        """The model inputs (``name``, ``shape``), like ``InferenceSession.get_inputs``."""
        return list(self._inputs)

    def get_outputs(self) -> list[SimpleNamespace]:
        """The model outputs (``name``, ``shape``), like ``InferenceSession.get_outputs``."""
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        """``["OpenVINO"]``: where ONNX Runtime names its execution providers."""
        return [PROVIDER_NAME]

    def get_modelmeta(self) -> SimpleNamespace:
        """The ONNX file's metadata as ``custom_metadata_map`` (class names, image size of Ultralytics exports)."""
        return self._meta

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on ``feed`` (input name -> array); returns the outputs (all, or ``output_names``) as
        numpy arrays owned by the caller."""
        request = self._request()
        by_name = {p.name: i for i, p in enumerate(self._inputs)}
        inputs = {by_name.get(name, k): np.ascontiguousarray(value) for k, (name, value) in enumerate(feed.items())}
        request.infer(inputs)
        wanted = range(len(self._outputs)) if output_names is None else [
            next(i for i, p in enumerate(self._outputs) if p.name == name) for name in output_names]
        return [np.array(request.get_output_tensor(i).data, copy=True) for i in wanted]
