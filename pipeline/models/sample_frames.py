"""Real frames of the sample clips for model checks, calibration and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def evenly_spaced_frames(video: Path, n: int, assumed_total: int = 0) -> list[np.ndarray]:
    """Up to ``n`` frames of ``video`` at the middles of ``n`` equal parts of it (frames that do not decode are
    left out). When the clip does not say how many frames it has, ``assumed_total`` stands for it (0: none read)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or assumed_total
        for k in range(n if total > 0 else 0):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int((k + 0.5) * total / n))
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
    finally:
        cap.release()
    return frames
