"""Durable local spool of audit records that could not be written to Redis (an outage), replayed when it is back.

Police and PDPA reviews need every request in the audit trail, those made while the store was down too. An
:class:`AuditSpool` writes a record straight to the ``audit`` stream while nothing waits; when Redis refuses it (any
Redis error) the record is appended to an :class:`pipeline.engine.spool.EventSpool` (fsynced JSON lines, mode 0600
in a 0700 folder: records hold user names and search reasons, never a secret) and every later record goes behind it,
so the trail keeps its order. :meth:`AuditSpool.replay` (called after each spooled write, at most every
``retry_s``, and by the API's background task) appends the spooled records in order with their original time, each
exactly once: :func:`pipeline.store.audit.append_audit_once` skips a record id already appended, so a crash between
the append and the commit of the spool position re-delivers nothing twice.

The spool is bounded (``max_bytes``): beyond it the oldest records are dropped, logged and counted, and once Redis is
back an ``audit_records_lost`` record says how many. Each API process takes the first free ``slot-<n>`` folder under
the spool root (an exclusive ``flock``, released when the process ends), so processes on one host never share a
spool; a slot whose process is gone is replayed by whichever process finds it free.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import redis

from pipeline.engine.spool import EventSpool
from pipeline.store.audit import AUDIT_STREAM, append_audit_once, audit_record

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
SLOT_PREFIX = "slot-"
LOCK_FILE = "lock"
MAX_SLOTS = 64
KIND = "audit"


class AuditSpoolError(redis.RedisError):
    """A record could be written neither to Redis nor to the spool (disk full, no free slot): a Redis error, so
    that the API answers the request 503 (as without the spool) rather than serve it unaudited."""


class _Slot:
    """One locked spool folder: its ``flock`` and its :class:`EventSpool`."""

    def __init__(self, folder: Path, fd: int, max_bytes: int) -> None:
        self.folder = folder
        self.fd = fd
        self.spool = EventSpool(folder, max_bytes, file_mode=FILE_MODE)

    def close(self) -> None:
        """Release the lock (the files stay for the next process)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _private_dir(folder: Path) -> None:
    """Create ``folder`` (and its parents) and make it 0700."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, DIR_MODE)


def _try_lock(folder: Path, max_bytes: int) -> _Slot | None:
    """The slot in ``folder`` if no other process (or spool of this one) holds it, else None."""
    _private_dir(folder)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    try:
        return _Slot(folder, fd, max_bytes)
    except Exception:
        os.close(fd)
        raise


class AuditSpool:
    """Writes audit records to Redis, or spools them on disk while Redis is down (see the module docstring)."""

    def __init__(self, root: str | Path, max_bytes: int, retry_s: float = 1.0) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.retry_s = retry_s
        self._slot: _Slot | None = None
        self._lock = threading.Lock()
        self._next_try = 0.0
        self._reported_lost = 0
        self._closed = False

    # -- public API -------------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records of this process's slot not yet in Redis (0 before the slot is opened)."""
        return len(self._slot.spool) if self._slot is not None else 0

    @property
    def folder(self) -> Path | None:
        """This process's slot folder, once opened."""
        return self._slot.folder if self._slot is not None else None

    def write(self, client: Any, record: dict[str, str]) -> None:
        """Append ``record`` (:func:`pipeline.store.audit.audit_record`) to the audit stream, or to the spool when
        Redis refuses it or older records still wait; raises :class:`AuditSpoolError` when both fail."""
        if not self.pending:
            try:
                client.xadd(AUDIT_STREAM, record)
                return
            except Exception as exc:  # noqa: BLE001 - any Redis failure: keep the record on disk instead
                logger.warning("audit record %s (%s of %s) not written to Redis (%s): spooled on disk",
                               record.get("rid"), record.get("action"), record.get("user"), exc)
        with self._lock:
            try:
                slot = self._open_locked()
                appended = slot.spool.append(KIND, record)
            except OSError as exc:
                raise AuditSpoolError(f"audit record {record.get('rid')} could not be spooled: {exc}") from exc
            if not appended:
                raise AuditSpoolError(f"audit record {record.get('rid')} could not be spooled in {slot.folder}")
            if time.monotonic() >= self._next_try:
                try:
                    self._drain_locked(client)
                except OSError as exc:  # the record itself is safe on disk; the replay is tried again later
                    self._next_try = time.monotonic() + self.retry_s
                    logger.error("audit spool %s: replay stopped (%s)", slot.folder, exc)

    def replay(self, client: Any) -> int:
        """Append the spooled records (this process's and those of free slots left by processes that are gone) to
        the audit stream in order; return how many were appended now. Stops quietly at the first Redis error."""
        with self._lock:
            if self._closed:
                return 0
            delivered = self._drain_locked(client)
            if not self.pending:
                delivered += self._replay_orphans(client)
            return delivered

    def close(self) -> None:
        """Release this process's slot (what it holds stays on disk for the next process)."""
        with self._lock:
            self._closed = True
            if self._slot is not None:
                self._slot.close()
                self._slot = None

    # -- internals --------------------------------------------------------------------------------------------

    def _open_locked(self) -> _Slot:
        """This process's slot: the first one no other process holds (taken at the first need)."""
        if self._slot is None:
            _private_dir(self.root)
            for n in range(MAX_SLOTS):
                self._slot = _try_lock(self.root / f"{SLOT_PREFIX}{n}", self.max_bytes)
                if self._slot is not None:
                    if self._slot.spool:
                        logger.warning("audit spool %s holds %d records from before: replayed once Redis answers",
                                       self._slot.folder, len(self._slot.spool))
                    break
            else:
                raise AuditSpoolError(f"no free audit spool slot under {self.root} ({MAX_SLOTS} in use)")
        return self._slot

    def _drain_locked(self, client: Any) -> int:
        """Replay this process's slot; on failure wait ``retry_s`` before the next attempt from :meth:`write`."""
        slot = self._open_locked()
        delivered = slot.spool.drain(lambda _kind, payload: _deliver(client, payload))
        if slot.spool:
            self._next_try = time.monotonic() + self.retry_s
            logger.debug("audit spool: %d records still wait for Redis", len(slot.spool))
            return delivered
        if delivered:
            logger.info("audit spool: %d records written to the audit stream after the outage", delivered)
        self._report_lost(client, slot.spool.dropped)
        return delivered

    def _report_lost(self, client: Any, dropped: int) -> None:
        """Record in the trail how many spooled records were dropped (size cap, disk full) since the last report."""
        lost = dropped - self._reported_lost
        if lost <= 0:
            return
        record = audit_record("-", "audit_records_lost", {"count": lost, "reason": "the audit spool was over its "
                                                           "size limit or the disk was full during a store outage"})
        try:
            client.xadd(AUDIT_STREAM, record)
        except Exception as exc:  # noqa: BLE001 - told at the next replay
            logger.warning("could not record the loss of %d audit records: %s", lost, exc)
            return
        self._reported_lost = dropped

    def _replay_orphans(self, client: Any) -> int:
        """Replay the slots of processes that are gone (free slots with records), releasing each after."""
        delivered = 0
        own = self.folder
        for folder in sorted(self.root.glob(f"{SLOT_PREFIX}*")):
            if folder == own or not folder.is_dir():
                continue
            slot = _try_lock(folder, self.max_bytes)
            if slot is None:
                continue
            try:
                if slot.spool:
                    count = slot.spool.drain(lambda _kind, payload: _deliver(client, payload))
                    delivered += count
                    logger.info("audit spool %s (left by a process that is gone): %d records replayed, %d wait",
                                folder, count, len(slot.spool))
            finally:
                slot.close()
        return delivered


def _deliver(client: Any, payload: dict[str, Any]) -> bool:
    """Append one spooled record exactly once (a record already appended before a crash counts as delivered)."""
    if not isinstance(payload.get("rid"), str):
        logger.warning("audit spool: a record without an id is appended as it is: %s", payload.get("action"))
        payload = {**payload, "rid": audit_record("-", "", {})["rid"]}
    append_audit_once(client, {str(k): str(v) for k, v in payload.items()})
    return True
