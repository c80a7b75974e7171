"""A bounded export queue: a fixed pool of worker threads (one ffmpeg each) and a fixed number of waiting jobs.

When every worker is busy and the waiting line is full, :meth:`ExportQueue.submit` refuses the job; the route answers
429 with ``Retry-After``. A waiting job's place in line is visible through :meth:`ExportQueue.position` (the export
status shows it as ``queue_position``, answered by the API process that queued it).

Several API replicas may share one Redis: each queue has an :attr:`ExportQueue.instance` id written into its jobs
(``owner``) and keeps a liveness key (:func:`alive_key`, TTL :data:`ALIVE_TTL_S`) while it runs
(:meth:`ExportQueue.keep_alive`); the interrupted-job sweep fails only jobs whose owner is gone.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

ALIVE_TTL_S = 30.0
SWEEP_S = 10.0


def alive_key(instance: str) -> str:
    """Redis key that exists while the API process ``instance`` runs."""
    return f"cctv:api:alive:{instance}"


class ExportQueue:
    """At most ``workers`` jobs run at once and at most ``queue`` wait; everything else is refused."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export")
        self._lock = threading.Lock()
        self._waiting: list[str] = []
        self._running: set[str] = set()
        self.instance = uuid.uuid4().hex[:16]
        self._stop = threading.Event()

    def submit(self, job_id: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` as job ``job_id``; False (nothing queued) when the queue is full."""
        with self._lock:
            if len(self._waiting) + len(self._running) >= self.capacity:
                return False
            self._waiting.append(job_id)
        self._pool.submit(self._run, job_id, fn, args)
        return True

    def _run(self, job_id: str, fn: Callable[..., Any], args: tuple) -> None:
        with self._lock:
            self._waiting.remove(job_id)
            self._running.add(job_id)
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - the job reports its own failure; a worker must survive anything
            logger.exception("export job %s raised", job_id)
        finally:
            with self._lock:
                self._running.discard(job_id)

    def position(self, job_id: str) -> int | None:
        """1-based place of a waiting job in line, or None when it is not waiting (running, finished, unknown)."""
        with self._lock:
            return self._waiting.index(job_id) + 1 if job_id in self._waiting else None

    def load(self) -> tuple[int, int]:
        """(running, waiting) jobs now."""
        with self._lock:
            return len(self._running), len(self._waiting)

    def keep_alive(self, client: Any, sweep: Callable[[], Any]) -> threading.Thread:
        """Refresh this process's liveness key every :data:`SWEEP_S` (until :meth:`shutdown`) and run ``sweep``
        (the interrupted-job sweep) each time; Redis errors are logged and retried."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    client.set(alive_key(self.instance), "1", px=int(ALIVE_TTL_S * 1000))
                    sweep()
                except Exception as exc:  # noqa: BLE001 - a Redis hiccup must not end the liveness loop
                    logger.warning("export queue liveness/sweep failed: %s", exc)
                self._stop.wait(SWEEP_S)

        thread = threading.Thread(target=loop, name="export-alive", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> list[str]:
        """Stop taking jobs; running ones finish in their threads, waiting ones are dropped (their ids returned)."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            return list(self._waiting)
