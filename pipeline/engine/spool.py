"""Bounded on-disk spool of events waiting for Redis.

Records are appended as JSON lines to segment files ``spool-<seq>.jsonl`` in a folder (``var/spool/`` by
default). The delivery position (segment and byte offset) is committed to ``offset.json`` only *after* a record
was stored in Redis, so a crash re-delivers at most the record in flight, which the idempotent store ignores:
nothing is lost and nothing is stored twice. When the spool exceeds ``max_bytes`` the oldest segments are dropped
and their undelivered records are counted in :attr:`EventSpool.dropped` (so are records that could not be written:
disk full). Segments are never larger than half the cap, so the cap holds with a single live segment too.

Damage never blocks replay: a line that is not a complete record (torn by a crash or a full disk, bit rot, a line
that is JSON but not ``{"kind": str, "payload": dict}``) is skipped with a warning and counted in
:attr:`EventSpool.corrupt`. A record torn at the end of a segment is closed with a newline before the next append,
so it cannot swallow the record written after it. An unreadable ``offset.json`` (kept aside as
``offset.json.corrupt-<time>``) replays every spooled record from the oldest segment: the store ignores repeats.

``file_mode`` (e.g. ``0o600``: the API's audit spool holds user names and reasons) creates the segments and the
offset file with that mode, whatever the umask, and sets it on segments left by an earlier run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
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

    def __init__(self, folder: str | Path, max_bytes: int, segment_bytes: int | None = None,
                 file_mode: int | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive (got {max_bytes})")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.file_mode = file_mode
        wanted = segment_bytes or max(4096, min(max_bytes // 8, 8 * 1024 * 1024))
        self.segment_bytes = max(1, min(wanted, max_bytes // 2))  # two segments fit: dropping the oldest is enough
        self.dropped = 0
        self.corrupt = 0
        self._warned_corrupt: set[tuple[int, int]] = set()
        self._segment, self._offset = self._load_offset()
        self._pending = self._count_pending()

    # -- public API -------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of records not yet delivered."""
        return self._pending

    def append(self, kind: str, payload: dict[str, Any]) -> bool:
        """Append a record at the end (fsynced); drops (and counts) the oldest segments if the size cap is exceeded.

        Returns False, with the record counted in :attr:`dropped`, when it could not be written (disk full, I/O
        error): the file is cut back to where it was, so no partial line is left behind.
        """
        line = (json.dumps({"kind": kind, "payload": payload}, ensure_ascii=False, separators=(",", ":")) + "\n")
        data = line.encode("utf-8")
        segments = self._segments()
        seq = segments[-1] if segments else max(self._segment, 1)
        path = self._path(seq)
        if path.exists() and path.stat().st_size + len(data) > self.segment_bytes:
            seq += 1
            path = self._path(seq)
        if not self._write_record(path, data):
            self.dropped += 1
            return False
        self._pending += 1
        self._enforce_cap()
        return True

    def _write_record(self, path: Path, data: bytes) -> bool:
        """Append ``data`` to ``path`` and fsync; on failure cut the file back and return False."""
        size = 0
        try:
            with self._open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, "ab+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size and _last_byte(fh, size) != b"\n":  # a record torn by a crash: close it, skip it later
                    logger.warning("spool %s: closing a torn record at byte %d", path, size)
                    data = b"\n" + data
                try:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError:
                    fh.truncate(size)
                    raise
        except OSError as exc:
            logger.error("spool %s: cannot write a record (%s); it is lost (%d lost in total)", path, exc,
                         self.dropped + 1)
            return False
        if size == 0:
            _fsync_dir(self.folder)  # a new segment: its directory entry must survive a power cut too
        return True

    def records(self) -> Iterator[SpoolRecord]:
        """Undelivered records in append order, starting at the committed position; damaged lines are skipped."""
        for seq in self._segments():
            if seq < self._segment:
                continue
            start = self._offset if seq == self._segment else 0
            try:
                fh = self._path(seq).open("rb")
            except FileNotFoundError:  # dropped by the cap meanwhile
                continue
            with fh:
                fh.seek(start)
                while True:
                    line = fh.readline()
                    if not line or not line.endswith(b"\n"):
                        break  # end, or a torn last line (closed by the next append, then skipped)
                    offset = fh.tell()
                    record = self._parse(line, seq, offset)
                    if record is not None:
                        yield record

    def _parse(self, line: bytes, seq: int, offset: int) -> SpoolRecord | None:
        """The record of one complete line, or None (warned once, counted) when the line is damaged."""
        if not line.strip():
            return None  # an empty line: the newline that closed a torn record
        try:
            obj = json.loads(line)
            kind, payload = obj["kind"], obj["payload"]
            if not isinstance(kind, str) or not isinstance(payload, dict):
                raise TypeError("kind must be text and payload an object")
        except (ValueError, KeyError, TypeError) as exc:  # JSON, UTF-8 (ValueError) or shape errors
            where = (seq, offset - len(line))
            if where not in self._warned_corrupt:
                self._warned_corrupt.add(where)
                self.corrupt += 1
                logger.warning("spool %s: skipping a damaged record at byte %d (%s: %s)", self._path(seq), where[1],
                               type(exc).__name__, exc)
            return None
        return SpoolRecord(kind, payload, seq, offset)

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

    def _open(self, path: Path, flags: int, mode: str) -> Any:
        """Open ``path`` in binary ``mode`` (``flags`` are its ``os.open`` flags), with :attr:`file_mode` if set."""
        if self.file_mode is None:
            return path.open(mode)
        fd = os.open(path, flags, self.file_mode)
        try:
            os.fchmod(fd, self.file_mode)  # the umask may have taken bits away; a file from an earlier run too
        except OSError:
            os.close(fd)
            raise
        return os.fdopen(fd, mode)

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
        """The delivery position; from the oldest segment when there is none or it is unreadable (a power cut
        during its replacement, a disk error): every spooled record is then delivered again, which the idempotent
        store ignores for those already stored, so nothing is lost and the engine still starts."""
        path = self.folder / OFFSET_FILE
        if path.exists():
            try:
                obj = json.loads(path.read_bytes())
                return int(obj["segment"]), int(obj["offset"])
            except (ValueError, KeyError, TypeError, RecursionError, OSError) as exc:
                kept = path.with_name(f"{OFFSET_FILE}.corrupt-{int(time.time())}")
                with contextlib.suppress(OSError):
                    path.replace(kept)
                logger.error("spool offset file %s is unreadable (%s; kept as %s): replaying every spooled record "
                             "from the oldest (the store ignores those already stored)", path, exc, kept.name)
        segments = self._segments()
        return (segments[0] if segments else 1), 0

    def _count_pending(self) -> int:
        return sum(1 for _ in self.records())

    def _enforce_cap(self) -> None:
        while True:
            live = [s for s in self._segments() if s >= self._segment]
            if len(live) <= 1 or self.size_bytes() <= self.max_bytes:
                return
            oldest = live[0]
            lost = self._records_in(oldest)
            self._path(oldest).unlink(missing_ok=True)
            self.dropped += lost
            self._pending = max(0, self._pending - lost)
            self._segment, self._offset = live[1], 0
            self._write_offset()
            logger.warning("spool over %d bytes: dropped %d oldest undelivered records (%d in total)",
                           self.max_bytes, lost, self.dropped)

    def _records_in(self, seq: int) -> int:
        """Undelivered records in segment ``seq`` (the oldest live one); reads no further than that segment."""
        count = 0
        for record in self.records():
            if record.segment != seq:
                break
            count += 1
        return count

    def _write_offset(self) -> None:
        """Write the delivery position atomically and durably (a power cut leaves the old or the new one)."""
        tmp = self.folder / (OFFSET_FILE + ".tmp")
        with self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "wb") as fh:
            fh.write(json.dumps({"segment": self._segment, "offset": self._offset}).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / OFFSET_FILE)

    def _reset_if_empty(self) -> None:
        """Everything delivered: start a fresh segment so old files do not linger."""
        for seq in self._segments():
            if seq < self._segment or (seq == self._segment and self._path(seq).stat().st_size <= self._offset):
                self._path(seq).unlink(missing_ok=True)
                next_seq = seq + 1
                self._segment, self._offset = next_seq, 0
        self._write_offset()


def _last_byte(fh: Any, size: int) -> bytes:
    """The last byte of the open file ``fh`` of ``size`` bytes (the position is left at the end)."""
    fh.seek(size - 1)
    last = fh.read(1)
    fh.seek(0, os.SEEK_END)
    return bytes(last)


def _fsync_dir(folder: Path) -> None:
    """fsync a directory so that a file created in it survives a power cut (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        logger.debug("fsync of %s: %s", folder, exc)
    finally:
        os.close(fd)
