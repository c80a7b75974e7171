"""Plate reader interface, result type and factory.

Backends:

- ``crnn`` (default): the project's own Thai plate recogniser, shipped as ONNX in
  ``<project_model_dir>/plate_reader/`` and run with ONNX Runtime (CUDA when available, CPU otherwise);
  see :mod:`pipeline.plates.crnn_backend` and ``models/plate_reader/MODEL_CARD.md``.
- ``easyocr``: EasyOCR Thai+English, for deployments that can provide its weights
  (``craft_mlt_25k.pth`` and ``thai.pth`` in ``<model_dir>/easyocr``); see :mod:`pipeline.plates.easyocr_backend`.

The shared types (:class:`PlateRead`, :class:`PlateReader`) live in :mod:`pipeline.plates.types`, which the
backends import; this module only picks and builds a backend. The backend is chosen by the caller or, through :func:`default_backend`, by the environment variable
``CCTV_PLATE_READER_BACKEND``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.plates.types import PlateRead, PlateReader

__all__ = ["BACKENDS", "PlateRead", "PlateReader", "default_backend", "load_plate_reader"]

logger = logging.getLogger(__name__)

BACKENDS = ("crnn", "easyocr")


def default_backend() -> str:
    """Backend named by ``CCTV_PLATE_READER_BACKEND`` (default ``crnn``)."""
    return os.environ.get("CCTV_PLATE_READER_BACKEND", "crnn").strip().lower() or "crnn"


def load_plate_reader(backend: str = "crnn", model_dir: Path | None = None, device: str = "auto",
                      runtime: str = "onnxruntime") -> PlateReader:
    """Create a plate reader.

    Args:
        backend: ``"crnn"`` (project model) or ``"easyocr"``.
        model_dir: folder holding the backend's files; defaults to ``<project_model_dir>/plate_reader`` for
            ``crnn`` and ``<model_dir>/easyocr`` for ``easyocr`` (see :mod:`pipeline.settings`).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        runtime: what runs the ``crnn`` model (a resolved :data:`~pipeline.models.onnx_utils.RUNTIMES` name).

    Raises:
        FileNotFoundError: the backend's model files are missing (the message names the file).
        ValueError: unknown backend.
    """
    from pipeline.settings import get_settings

    backend = backend.strip().lower()
    if device == "auto":
        device = get_settings().device or "auto"
    if backend == "crnn":
        from pipeline.plates.crnn_backend import CrnnPlateReader

        return CrnnPlateReader(model_dir or get_settings().project_model_dir / "plate_reader", device=device,
                               runtime=runtime)
    if backend == "easyocr":
        from pipeline.plates.easyocr_backend import EasyOcrPlateReader

        return EasyOcrPlateReader(model_dir or get_settings().model_dir / "easyocr", device=device)
    raise ValueError(f"unknown plate reader backend {backend!r}; choose one of {BACKENDS}")
