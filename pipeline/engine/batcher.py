"""Dynamic batching across cameras.

A batch closes when it holds ``max_batch_size`` frames or when ``max_wait_s`` has passed since its first frame,
whichever comes first. The source is any callable ``fetch(max_items, timeout_s) -> list`` (the frame bus's
``get_batch`` has exactly this shape), so the batcher is testable with an in-memory queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Fetch = Callable[[int, float], list[T]]


class DynamicBatcher(Generic[T]):
    """Gather items from ``fetch`` into batches bounded by size and by waiting time."""

    def __init__(
        self,
        fetch: Fetch,
        max_batch_size: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1 (got {max_batch_size})")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0 (got {max_wait_s})")
        self._fetch = fetch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._clock = clock

    def next_batch(self, idle_timeout_s: float = 0.5) -> list[T]:
        """Return the next batch; empty if nothing arrived within ``idle_timeout_s``.

        Blocks up to ``idle_timeout_s`` for the first item, then at most ``max_wait_s`` more to fill the batch.
        """
        batch: list[T] = list(self._fetch(self.max_batch_size, idle_timeout_s))
        if not batch:
            return batch
        deadline = self._clock() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            batch.extend(self._fetch(self.max_batch_size - len(batch), remaining))
        return batch
