"""In-process face index: the embeddings of ``events:faces`` as one matrix searched by brute force.

The index tails the stream incrementally with a server-side scan script that returns each batch as a few bulk
strings (ids, cameras, times and the embeddings concatenated), so loading a million faces costs seconds. A newer
version of an event overwrites its row; rows whose entries were trimmed from the stream are masked out.

By default the matrix is float16 (half the memory: 1M x 128 = 256 MB): a query is one half-precision
matrix-vector product (torch when available, else numpy in float32 blocks), then the best candidates (and every
candidate near the threshold) are re-ranked with their exact float32 embeddings read back from the stream, so the
similarities returned and the order are the float32 ones. ``dtype="float32"`` keeps the full-precision matrix.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import redis

from pipeline.store import keys, lua
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


def _load_torch():
    """torch if it can be imported (its half-precision GEMV is fast on CPU), else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the venv
        return None
    return torch


def _matvec(matrix: np.ndarray, query: np.ndarray, torch=None) -> np.ndarray:
    """``matrix @ query`` as float32, fast for a float16 matrix (torch's half GEMV, else float32 blocks)."""
    if matrix.dtype == np.float32:
        return matrix @ query
    if torch is not None:
        out = torch.mv(torch.from_numpy(matrix), torch.from_numpy(query.astype(matrix.dtype)))
        return out.numpy().astype(np.float32)
    out = np.empty(len(matrix), np.float32)
    for i in range(0, len(matrix), 65536):
        out[i:i + 65536] = matrix[i:i + 65536].astype(np.float32) @ query
    return out


class FaceIndex:
    """Brute-force cosine search over every stored face embedding; thread-safe.

    Args:
        client: redis-py client of the event store.
        batch: stream entries per load step.
        dtype: ``float16`` (default; exact float32 re-rank of the candidates) or ``float32``.
        rerank: float16 only: how many more candidates than ``top_k`` are re-ranked in float32.
    """

    def __init__(self, client: redis.Redis, batch: int = 10_000, dtype: str = "float16", rerank: int = 32):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype: float16 or float32, not {dtype!r}")
        self.client = client
        self.batch = batch
        self.dtype = np.dtype(dtype)
        self.rerank = rerank
        self._torch = _load_torch() if self.dtype == np.float16 else None  # imported now, not in the first query
        self._scan = client.register_script(lua.FACE_SCAN)
        self._lock = threading.Lock()
        self._dim = 0
        self._n = 0
        self._matrix = np.zeros((0, 0), self.dtype)
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

    @property
    def nbytes(self) -> int:
        """Bytes of the stored rows of the embedding matrix (the buffer keeps up to 50% spare rows to grow)."""
        return int(self._matrix[: self._n].nbytes)

    def _grow(self, needed: int) -> None:
        capacity = len(self._times)
        if needed <= capacity:
            return
        new_cap = max(needed, int(capacity * 1.5), 1024)
        matrix = np.zeros((new_cap, self._dim), self.dtype)
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

    def _add_batch(self, reply: list) -> str | None:
        """Add one scan-script batch; returns the last stream id read (None if the batch was empty)."""
        count = int(reply[0])
        if count == 0:
            return None
        sids = reply[1].decode().split("\0")
        eids = reply[2].decode().split("\0")
        cams = reply[3].decode().split("\0")
        times = np.array(reply[4].split(b"\0"), dtype=np.float64)
        lens = np.array(reply[5].split(b","), dtype=np.int64)
        blob = reply[6]
        if self._dim == 0:  # the most common whole-float32 length: one malformed first record must not set it
            usable = lens[(lens > 0) & (lens % 4 == 0)]
            if not len(usable):
                logger.warning("face entries up to %s hold no usable embedding; not indexed", sids[-1])
                return sids[-1]
            self._dim = int(np.bincount(usable // 4).argmax())
            self._matrix = np.zeros((0, self._dim), self.dtype)
        if np.all(lens == self._dim * 4):
            embs = np.frombuffer(blob, "<f4").reshape(count, self._dim)
            keep = np.ones(count, bool)
        else:
            ends = np.cumsum(lens)
            embs = np.zeros((count, self._dim), np.float32)
            keep = lens == self._dim * 4
            for j in np.flatnonzero(keep):
                embs[j] = np.frombuffer(blob[ends[j] - lens[j]:ends[j]], "<f4")
            for j in np.flatnonzero(~keep):
                logger.warning("face entry %s has %s embedding bytes, index has dim %s; skipped", sids[j], lens[j],
                               self._dim)
        rows = np.empty(count, np.int64)
        for j in range(count):
            row = self._row_of.get(eids[j])
            if row is None:
                row = self._row_of[eids[j]] = len(self._event_ids)
                self._event_ids.append(eids[j])
            rows[j] = row
        self._grow(len(self._event_ids))
        self._n = len(self._event_ids)
        rows, embs, times = rows[keep], embs[keep], times[keep]
        self._matrix[rows] = embs.astype(self.dtype)
        self._times[rows] = times
        self._cams[rows] = [self._camera(cams[j]) for j in np.flatnonzero(keep)]
        ms_seq = [sids[j].split("-") for j in np.flatnonzero(keep)]
        self._sid_ms[rows] = [int(m) for m, _ in ms_seq]
        self._sid_seq[rows] = [int(q) for _, q in ms_seq]
        self._valid[rows] = True
        return sids[-1]

    def refresh(self) -> int:
        """Read the stream entries added since the last refresh; returns how many were read."""
        with self._lock:
            read = 0
            while True:
                reply = self._scan(keys=[keys.FACE_STREAM], args=[f"({self._last_id}", self.batch])
                last = self._add_batch(reply)
                if last is None:
                    break
                read += int(reply[0])
                self._last_id = last
                if int(reply[0]) < self.batch:
                    break
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

    def _exact(self, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Float32 similarities of ``rows`` from their stored embeddings (-inf where the record is gone)."""
        pipe = self.client.pipeline(transaction=False)
        for r in rows:
            sid = f"{self._sid_ms[r]}-{self._sid_seq[r]}"
            pipe.xrange(keys.FACE_STREAM, sid, sid)
        out = np.full(len(rows), -np.inf, np.float32)
        for j, entries in enumerate(pipe.execute()):
            if entries:
                emb = embedding_from_fields(entries[0][1])
                if emb.size == q.size:
                    out[j] = float(emb @ q)
        return out

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
            sims = _matvec(self._matrix[:n], q, self._torch)
            approx = self.dtype != np.float32
            margin = 0.01 if approx else 0.0  # float16 rounding moves a unit-vector dot product by < 0.002
            mask = self._valid[:n] & (sims >= threshold - margin)
            if cameras is not None:
                codes = [self._camera_code[c] for c in cameras if c in self._camera_code]
                mask &= np.isin(self._cams[:n], codes)
            if start is not None:
                mask &= self._times[:n] >= start
            if end is not None:
                mask &= self._times[:n] <= end
            rows = np.flatnonzero(mask)
            keep = top_k + (self.rerank if approx else 0)
            if rows.size > keep:
                rows = rows[np.argpartition(-sims[rows], keep - 1)[:keep]]
            if approx and rows.size:
                exact = self._exact(rows, q)
                ok = exact >= threshold
                rows, row_sims = rows[ok], exact[ok]
            else:
                row_sims = sims[rows]
            order = np.argsort(-row_sims, kind="stable")[:top_k]
            return [FaceHit(f"{self._sid_ms[r]}-{self._sid_seq[r]}", self._event_ids[r],
                            self._camera_names[self._cams[r]], float(self._times[r]), float(s))
                    for r, s in zip(rows[order], row_sims[order], strict=True)]

    def search_page(self, query: np.ndarray, threshold: float = 0.4, offset: int = 0, limit: int = 50,
                    cameras: set[str] | None = None, start: float | None = None,
                    end: float | None = None) -> tuple[list[FaceHit], bool]:
        """One page of :meth:`search`: the hits ranked ``offset`` to ``offset + limit - 1`` and whether any
        matching face ranks after them (found by asking for one hit more than the page)."""
        if offset < 0 or limit < 1:
            raise ValueError(f"offset must be >= 0 and limit >= 1 (got {offset}, {limit})")
        hits = self.search(query, threshold=threshold, top_k=offset + limit + 1, cameras=cameras, start=start,
                           end=end)
        return hits[offset:offset + limit], len(hits) > offset + limit
