"""File-driven mode: frames decoded with OpenCV from video files, fed straight to :meth:`Engine.process_batch`.

Used by tests and benchmarks. A frame's ``capture_time`` is ``start_epoch`` plus its timestamp in the video, so
tracks, publication delays and snapshot dates behave as with a live camera that started at ``start_epoch``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class FileFrame:
    """A decoded video frame in the shape of the frame bus's ``FrameItem``."""

    camera_id: str
    frame_id: int
    capture_time: float
    frame: np.ndarray

    def release(self) -> None:
        """Nothing to give back (private memory)."""


def iter_video_frames(
    path: str | Path,
    camera_id: str,
    start_epoch: float,
    sample_fps: float = 4.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_width: int | None = 960,
) -> Iterator[FileFrame]:
    """Decode ``path`` from ``start_s`` to ``end_s`` seconds, sampling about ``sample_fps`` frames per second.

    Frames wider than ``max_width`` are downscaled (keeping the aspect ratio). Raises ``FileNotFoundError`` or
    ``ValueError`` naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot decode video file: {path}")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        if start_s > 0:
            capture.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000.0)
        step = 1.0 / sample_fps
        next_t = start_s
        index = int(round(capture.get(cv2.CAP_PROP_POS_FRAMES))) if start_s > 0 else 0
        frame_id = 0
        while True:
            if not capture.grab():
                break
            t = index / fps
            index += 1
            if end_s is not None and t > end_s:
                break
            if t + 1e-6 < next_t:
                continue
            ok, frame = capture.retrieve()
            if not ok:
                break
            next_t += step
            while next_t <= t:
                next_t += step
            frame_id += 1
            yield FileFrame(camera_id, frame_id, start_epoch + t, _downscale(frame, max_width))
    finally:
        capture.release()


def _downscale(frame: np.ndarray, max_width: int | None) -> np.ndarray:
    height, width = frame.shape[:2]
    if max_width is None or width <= max_width:
        return frame
    new_h = int(round(height * max_width / width))
    return cv2.resize(frame, (max_width, new_h), interpolation=cv2.INTER_AREA)


def interleave(sources: Sequence[Iterator[FileFrame]], batch_size: int) -> Iterator[list[FileFrame]]:
    """Round-robin frames of several sources into batches of up to ``batch_size`` (each camera stays in order)."""
    iterators = list(sources)
    batch: list[FileFrame] = []
    while iterators:
        alive = []
        for it in iterators:
            item = next(it, None)
            if item is None:
                continue
            alive.append(it)
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        iterators = alive
    if batch:
        yield batch


def run_files(engine: object, sources: Sequence[Iterator[FileFrame]], batch_size: int = 8) -> int:
    """Feed every frame of ``sources`` to ``engine.process_batch`` in batches, then ``engine.finish()``.

    Returns the number of frames processed.
    """
    frames = 0
    for batch in interleave(sources, batch_size):
        engine.process_batch(batch)  # type: ignore[attr-defined]
        frames += len(batch)
    engine.finish()  # type: ignore[attr-defined]
    return frames
