"""Face services of the API: the face model (same as the engine's) and the in-process face index."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException

from api.settings import ApiSettings
from pipeline.search.faces import FaceIndex

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundFace:
    """One usable face of a photo: its embedding, detector score and box (photo pixels)."""

    embedding: np.ndarray
    score: float
    box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        """The box's area in square pixels."""
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)


class FaceService:
    """Detects and embeds faces in uploaded photos and searches stored face events."""

    def __init__(self, index: FaceIndex, settings: ApiSettings):
        self.index = index
        self.settings = settings
        self._analyzer = None
        self._lock = threading.Lock()

    def analyzer(self):
        """The engine's face analyzer (:func:`pipeline.models.registry.load_face_analyzer`), loaded once."""
        with self._lock:
            if self._analyzer is None:
                from pipeline.models.registry import load_face_analyzer

                self._analyzer = load_face_analyzer()
            return self._analyzer

    def found_faces(self, image: np.ndarray) -> list[FoundFace]:
        """Every usable face of the image (score and size above the settings' minimums), largest first."""
        dets = self.analyzer().detect_batch([image])[0]
        faces = []
        for i in range(len(dets)):
            x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
            if float(dets.confidence[i]) < self.settings.face_min_det_score:
                continue
            if min(x2 - x1, y2 - y1) < self.settings.face_min_size:
                continue
            faces.append(FoundFace(np.asarray(dets.data["embedding"][i], np.float32), float(dets.confidence[i]),
                                   (x1, y1, x2, y2)))
        faces.sort(key=lambda f: -f.area)
        return faces

    def usable_faces(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(embedding, detector score) of every usable face in the image, largest first."""
        return [(f.embedding, f.score) for f in self.found_faces(image)]

    def pick_face(self, image: np.ndarray, field: str, index: int, index_field: str) -> tuple[FoundFace, int]:
        """The ``index``-th usable face (largest first) and how many there are.

        422 naming ``field`` if the photo has no usable face, or ``index_field`` if ``index`` is past the last one.
        """
        faces = self.found_faces(image)
        if not faces:
            raise HTTPException(422, f"{field}: no usable face found in the photo")
        if index >= len(faces):
            raise HTTPException(422, f"{index_field}: the photo has {len(faces)} usable face(s); "
                                     f"{index_field} must be 0..{len(faces) - 1}, not {index}")
        logger.debug("face %s of %s picked from the photo", index + 1, len(faces))
        return faces[index], len(faces)

    def one_face(self, image: np.ndarray, field: str, exactly_one: bool) -> np.ndarray:
        """The embedding of the face in a photo; 422 naming ``field`` if there is none (or several)."""
        faces = self.usable_faces(image)
        if not faces:
            raise HTTPException(422, f"{field}: no usable face found in the photo")
        if exactly_one and len(faces) > 1:
            raise HTTPException(422,
                                f"{field}: {len(faces)} faces found; an enrolment photo must show exactly one")
        return faces[0][0]
