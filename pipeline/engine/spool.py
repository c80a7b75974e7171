"""Bounded on-disk spool of events waiting for Redis.

Records are appended as JSON lines to segment files ``spool-<seq>.jsonl`` in a folder (``var/spool/`` by
default). The delivery position (segment and byte offset) is committed to ``offset.json`` only *after* a record
was stored in Redis, so a crash re-delivers at most the record in flight, which the idempotent store ignores:
nothing is lost and nothing is stored twice. When the spool exceeds ``max_bytes`` the oldest segments are dropped
and their undelivered records are counted in :attr:`EventSpool.dropped`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SEGMENT_PREFIX = "spool-"
SEGMENT_SUFFIX = ".jsonl"
OFFSET_FILE = "offset.json"


@dataclass(frozen=True)
class SpoolRecord:
    """One spooled record and where the next one starts."""

    kind: str
    payload: dict[str, Any]
    segment: int
    next_offset: int


class EventSpool:
    """Append-only, size-capped, ordered spool of JSON records."""

    def __init__(self, folder: str | Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive (got {max_bytes})")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(4096, min(max_bytes // 8, 8 * 1024 * 1024))
        self.dropped = 0
        self._segment, self._offset = self._load_offset()
        self._pending = self._count_pending()

    # -- public API -------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of records not yet delivered."""
        return self._pending

    def append(self, kind: str, payload: dict[str, Any]) -> None:
        """Append a record at the end; drops (and counts) the oldest segments if the size cap is exceeded."""
        line = (json.dumps({"kind": kind, "payload": payload}, ensure_ascii=False, separators=(",", ":")) + "\n")
        data = line.encode("utf-8")
        segments = self._segments()
        seq = segments[-1] if segments else max(self._segment, 1)
        path = self._path(seq)
        if path.exists() and path.stat().st_size + len(data) > self.segment_bytes:
            seq += 1
            path = self._path(seq)
        with path.open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._pending += 1
        self._enforce_cap()

    def records(self) -> Iterator[SpoolRecord]:
        """Undelivered records in append order, starting at the committed position."""
        for seq in self._segments():
            if seq < self._segment:
                continue
            start = self._offset if seq == self._segment else 0
            with self._path(seq).open("rb") as fh:
                fh.seek(start)
                while True:
                    line = fh.readline()
                    if not line or not line.endswith(b"\n"):
                        break  # end, or a torn last line still being written
                    offset = fh.tell()
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        logger.error("spool %s: skipping corrupt line at byte %d", self._path(seq), offset - len(line))
                        continue
                    yield SpoolRecord(obj["kind"], obj["payload"], seq, offset)

    def commit(self, record: SpoolRecord) -> None:
        """Mark ``record`` (and all before it) delivered; removes fully delivered segments."""
        self._segment, self._offset = record.segment, record.next_offset
        self._pending = max(0, self._pending - 1)
        self._write_offset()
        for seq in self._segments():
            if seq < self._segment:
                self._path(seq).unlink(missing_ok=True)

    def drain(self, deliver: Callable[[str, dict[str, Any]], bool]) -> int:
        """Deliver records in order until ``deliver`` returns False or raises; return how many were delivered."""
        delivered = 0
        for record in self.records():
            try:
                ok = deliver(record.kind, record.payload)
            except Exception as exc:  # noqa: BLE001 - any delivery failure stops the drain, the record stays
                logger.debug("spool delivery failed: %s", exc)
                ok = False
            if not ok:
                break
            self.commit(record)
            delivered += 1
        if delivered and not self._pending:
            self._reset_if_empty()
        return delivered

    def size_bytes(self) -> int:
        """Bytes on disk in undelivered segments."""
        return sum(self._path(s).stat().st_size for s in self._segments() if s >= self._segment)

    # -- internals --------------------------------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self.folder / f"{SEGMENT_PREFIX}{seq:010d}{SEGMENT_SUFFIX}"

    def _segments(self) -> list[int]:
        seqs = []
        for path in self.folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            try:
                seqs.append(int(path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]))
            except ValueError:
                logger.warning("spool: ignoring unexpected file %s", path)
        return sorted(seqs)

    def _load_offset(self) -> tuple[int, int]:
        path = self.folder / OFFSET_FILE
        if not path.exists():
            segments = self._segments()
            return (segments[0] if segments else 1), 0
        try:
            obj = json.loads(path.read_text())
            return int(obj["segment"]), int(obj["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"spool offset file {path} is corrupt: {exc}; fix or delete it") from None

    def _count_pending(self) -> int:
        return sum(1 for _ in self.records())

    def _enforce_cap(self) -> None:
        while True:
            live = [s for s in self._segments() if s >= self._segment]
            if len(live) <= 1 or self.size_bytes() <= self.max_bytes:
                return
            oldest = live[0]
            lost = sum(1 for r in self.records() if r.segment == oldest)
            self._path(oldest).unlink(missing_ok=True)
            self.dropped += lost
            self._pending = max(0, self._pending - lost)
            self._segment, self._offset = live[1], 0
            self._write_offset()
            logger.warning("spool over %d bytes: dropped %d oldest undelivered records (%d in total)",
                           self.max_bytes, lost, self.dropped)

    def _write_offset(self) -> None:
        tmp = self.folder / (OFFSET_FILE + ".tmp")
        tmp.write_text(json.dumps({"segment": self._segment, "offset": self._offset}))
        os.replace(tmp, self.folder / OFFSET_FILE)

    def _reset_if_empty(self) -> None:
        """Everything delivered: start a fresh segment so old files do not linger."""
        for seq in self._segments():
            if seq < self._segment or (seq == self._segment and self._path(seq).stat().st_size <= self._offset):
                self._path(seq).unlink(missing_ok=True)
                next_seq = seq + 1
                self._segment, self._offset = next_seq, 0
        self._write_offset()
