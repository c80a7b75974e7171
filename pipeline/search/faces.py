"""In-process face index: the embeddings of ``events:faces`` as one float32 matrix searched by brute force.

The index tails the stream incrementally (``XRANGE (last_id +``), so a refresh costs only the new entries. A newer
version of an event overwrites its row; rows whose entries were trimmed from the stream are masked out. A query is
one matrix-vector product (1M x 128 float32 = 512 MB, a few tens of milliseconds) followed by the filters.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import redis

from pipeline.store import keys
from pipeline.store.codec import embedding_from_fields

logger = logging.getLogger(__name__)


def _sid_pair(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class FaceHit:
    """One stored face similar to the query."""

    stream_id: str
    event_id: str
    camera_id: str
    frame_time: float
    similarity: float


class FaceIndex:
    """Brute-force cosine search over every stored face embedding; thread-safe."""

    def __init__(self, client: redis.Redis, batch: int = 5000):
        self.client = client
        self.batch = batch
        self._lock = threading.Lock()
        self._dim = 0
        self._n = 0
        self._matrix = np.zeros((0, 0), np.float32)
        self._times = np.zeros(0, np.float64)
        self._cams = np.zeros(0, np.int32)
        self._sid_ms = np.zeros(0, np.int64)
        self._sid_seq = np.zeros(0, np.int64)
        self._valid = np.zeros(0, bool)
        self._event_ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._camera_names: list[str] = []
        self._camera_code: dict[str, int] = {}
        self._last_id = "0-0"

    def __len__(self) -> int:
        return int(self._valid[: self._n].sum())

    def _grow(self, needed: int) -> None:
        capacity = len(self._times)
        if needed <= capacity:
            return
        new_cap = max(needed, capacity * 2, 1024)
        matrix = np.zeros((new_cap, self._dim), np.float32)
        matrix[: self._n] = self._matrix[: self._n]
        self._matrix = matrix
        for name in ("_times", "_cams", "_sid_ms", "_sid_seq", "_valid"):
            old = getattr(self, name)
            arr = np.zeros(new_cap, old.dtype)
            arr[: self._n] = old[: self._n]
            setattr(self, name, arr)

    def _camera(self, name: str) -> int:
        code = self._camera_code.get(name)
        if code is None:
            code = self._camera_code[name] = len(self._camera_names)
            self._camera_names.append(name)
        return code

    def _add(self, sid: str, fields: dict) -> None:
        emb = embedding_from_fields(fields)
        if self._dim == 0:
            self._dim = emb.size
            self._matrix = np.zeros((0, self._dim), np.float32)
        if emb.size != self._dim:
            logger.warning("face entry %s has embedding size %s, index has %s; skipped", sid, emb.size, self._dim)
            return
        event_id = fields[b"event_id"].decode()
        row = self._row_of.get(event_id)
        if row is None:
            row = self._n
            self._grow(row + 1)
            self._n += 1
            self._event_ids.append(event_id)
            self._row_of[event_id] = row
        self._matrix[row] = emb
        self._times[row] = float(fields[b"frame_time"])
        self._cams[row] = self._camera(fields[b"camera_id"].decode())
        self._sid_ms[row], self._sid_seq[row] = _sid_pair(sid)
        self._valid[row] = True

    def refresh(self) -> int:
        """Read the stream entries added since the last refresh; returns how many were read."""
        with self._lock:
            read = 0
            while True:
                entries = self.client.xrange(keys.FACE_STREAM, f"({self._last_id}", "+", count=self.batch)
                for sid, fields in entries:
                    self._add(sid.decode(), fields)
                read += len(entries)
                if not entries or len(entries) < self.batch:
                    break
                self._last_id = entries[-1][0].decode()
            if entries:
                self._last_id = entries[-1][0].decode()
            self._mask_trimmed()
            return read

    def _mask_trimmed(self) -> None:
        first = self.client.xrange(keys.FACE_STREAM, "-", "+", count=1)
        if not first or self._n == 0:
            if not first:
                self._valid[: self._n] = False
            return
        ms, seq = _sid_pair(first[0][0].decode())
        n = self._n
        older = (self._sid_ms[:n] < ms) | ((self._sid_ms[:n] == ms) & (self._sid_seq[:n] < seq))
        self._valid[:n] &= ~older

    def search(self, query: np.ndarray, threshold: float = 0.4, top_k: int = 50, cameras: set[str] | None = None,
               start: float | None = None, end: float | None = None) -> list[FaceHit]:
        """The most similar stored faces (cosine similarity >= threshold), best first."""
        with self._lock:
            n = self._n
            if n == 0:
                return []
            q = np.asarray(query, np.float32).ravel()
            if q.size != self._dim:
                raise ValueError(f"query embedding has size {q.size}, stored faces have {self._dim}")
            q = q / max(float(np.linalg.norm(q)), 1e-12)
            sims = self._matrix[:n] @ q
            mask = self._valid[:n] & (sims >= threshold)
            if cameras is not None:
                codes = [self._camera_code[c] for c in cameras if c in self._camera_code]
                mask &= np.isin(self._cams[:n], codes)
            if start is not None:
                mask &= self._times[:n] >= start
            if end is not None:
                mask &= self._times[:n] <= end
            rows = np.flatnonzero(mask)
            if rows.size > top_k:
                rows = rows[np.argpartition(-sims[rows], top_k - 1)[:top_k]]
            rows = rows[np.argsort(-sims[rows], kind="stable")]
            return [FaceHit(f"{self._sid_ms[r]}-{self._sid_seq[r]}", self._event_ids[r],
                            self._camera_names[self._cams[r]], float(self._times[r]), float(sims[r])) for r in rows]
