"""The interface every detector backend implements, and device/provider selection."""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.detections import Detections

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


@runtime_checkable
class BatchDetector(Protocol):
    """A model that detects objects in a batch of BGR images (``H x W x 3`` uint8, any sizes)."""

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Return one :class:`Detections` per input frame, boxes in that frame's pixel coordinates."""
        ...


def onnxruntime_has_cuda() -> bool:
    """Whether this onnxruntime build offers the CUDA execution provider (``onnxruntime-gpu``)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def select_providers(device: str = "auto") -> list[str]:
    """Return the ONNX Runtime execution providers for ``device`` (``auto``, ``cpu`` or ``cuda``).

    ``auto`` takes CUDA when this onnxruntime build offers it, else the CPU; the same code path runs either way,
    only this list differs. ``cuda`` without a CUDA-capable onnxruntime raises ``RuntimeError``.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    has_cuda = onnxruntime_has_cuda()
    if device == "cuda" and not has_cuda:
        raise RuntimeError(
            f"device 'cuda' requested but onnxruntime offers only {ort.get_available_providers()}; install onnxruntime-gpu, or run the "
            "models on PyTorch's CUDA (pip install .[gpu]: onnx2torch, with a CUDA build of torch), or use 'cpu'"
        )
    if device in ("auto", "cuda") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def check_frames(frames: list[np.ndarray], what: str) -> None:
    """Raise ``ValueError`` naming the offending index when a frame is not an ``H x W x 3`` uint8 image."""
    for i, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
            shape = getattr(frame, "shape", type(frame).__name__)
            raise ValueError(f"{what}: frame {i} must be a non-empty HxWx3 BGR array, got {shape}")
