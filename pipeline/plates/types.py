"""Types shared by the plate reader factory (:mod:`pipeline.plates.reader`) and its backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class PlateRead:
    """One plate reading.

    ``text`` is the canonical registration (:func:`pipeline.plates.grammar.normalise_plate`) except that
    commercial plates keep their hyphen (``"70-1234"``); pass it through ``normalise_plate`` before storing or
    searching.
    """

    text: str
    confidence: float
    char_confidences: list[float]
    candidates: list[tuple[str, float]] = field(default_factory=list)
    province: str | None = None
    province_latin: str | None = None
    province_confidence: float = 0.0
    valid: bool = False
    layout: str = "car"  # "car" (two lines) or "motorcycle" (three lines), see pipeline.plates.layout


@runtime_checkable
class PlateReader(Protocol):
    """Anything that reads a batch of plate crops."""

    def read_batch(self, crops: list[np.ndarray], layouts: list[str] | None = None) -> list[PlateRead]:
        """Read BGR ``uint8`` plate crops of any size; one result per crop, same order.

        ``layouts`` gives each crop's plate layout (``"car"``, ``"motorcycle"`` or ``"auto"`` to let the reader
        try both); None lets the reader decide (the CRNN reader tries both layouts; EasyOCR reads car plates).
        """
        ...
