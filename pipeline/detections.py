"""The one detections container that flows through the whole pipeline.

Modelled on supervision's ``Detections``: parallel numpy arrays (boxes, scores, class ids, track ids) plus a
dict of per-detection extras (plate text, embeddings, landmarks...). Model outputs are converted once, at the
edge, by a ``from_<backend>()`` constructor living next to the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


@dataclass
class Detections:
    """Detections of one frame.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixel coordinates of the frame they came from.
        confidence: ``(N,)`` float32 scores.
        class_id: ``(N,)`` int32 class ids (COCO ids for the object detector, 0 for single-class models).
        tracker_id: ``(N,)`` int64 track ids, ``-1`` where not tracked yet.
        data: per-detection extras; every value is an array or list of length ``N``.
    """

    xyxy: np.ndarray = field(default_factory=_empty_boxes)
    confidence: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.float32))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int32))
    tracker_id: np.ndarray | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(n)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(n)
        if self.tracker_id is None:
            self.tracker_id = np.full((n,), -1, dtype=np.int64)
        else:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(n)
        for key, value in self.data.items():
            if len(value) != n:
                raise ValueError(f"Detections.data[{key!r}] has length {len(value)}, expected {n}")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[Detections]:
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Detections:
        """Select detections by integer, slice, index list or boolean mask; always returns ``Detections``."""
        if isinstance(index, int):
            index = [index]
        idx = np.arange(len(self))[index]
        return Detections(
            xyxy=self.xyxy[idx],
            confidence=self.confidence[idx],
            class_id=self.class_id[idx],
            tracker_id=self.tracker_id[idx],
            data={k: _take(v, idx) for k, v in self.data.items()},
        )

    @classmethod
    def empty(cls) -> Detections:
        """Return a container with no detections."""
        return cls()

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        """Concatenate several containers; extras present in only some parts are padded with ``None``."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        keys = {k for p in parts for k in p.data}
        data: dict[str, Any] = {}
        for key in keys:
            values: list[Any] = []
            for p in parts:
                values.extend(list(p.data[key]) if key in p.data else [None] * len(p))
            data[key] = values
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=np.concatenate([p.tracker_id for p in parts]),
            data=data,
        )

    @property
    def area(self) -> np.ndarray:
        """Box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def with_offset(self, dx: float, dy: float) -> Detections:
        """Return a copy with boxes shifted by ``(dx, dy)`` (crop coordinates back to frame coordinates)."""
        shifted = self.xyxy + np.array([dx, dy, dx, dy], dtype=np.float32)
        return Detections(shifted, self.confidence, self.class_id, self.tracker_id, dict(self.data))


def _take(value: Any, idx: np.ndarray) -> Any:
    if isinstance(value, np.ndarray):
        return value[idx]
    return [value[i] for i in idx]
