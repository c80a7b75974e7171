"""The frame bus: decoded frames from the capture workers to the analytics engine, through shared memory.

Contract (used by the analytics engine; keep these names):

- The supervisor creates ONE :class:`FrameBus` in the parent process, before starting children, and passes it as
  an argument to the child processes (``multiprocessing`` pickles it into a handle that re-attaches the shared
  memory). Children must be started from :data:`MP_CONTEXT` (the ``spawn`` context) because the bus holds
  ``spawn``-context locks.
- Producer (capture worker): :meth:`FrameBus.publish` ``(camera_id, frame, capture_time) -> None`` copies a
  ``uint8`` frame (H x W x 3, BGR) into a free slot of that camera. Each camera has ``queue_size`` queued frames
  at most; when its queue is full the OLDEST queued frame is dropped (counted in :meth:`FrameBus.dropped`).
- Consumer (engine): :meth:`FrameBus.get_batch` ``(max_frames, timeout_s) -> list[FrameItem]`` gathers up to
  ``max_frames`` frames round-robin across cameras (one frame per camera per round, oldest first, the starting
  camera rotating between calls) so that a busy camera cannot starve the others. It waits at most ``timeout_s``
  for the first frame and returns ``[]`` on timeout. A camera the consumer has fallen behind when it is taken from
  (its queue full, or its waiting frames spanning at least ``freshest_lag_s`` of capture time) gives its newest
  frames instead, and its older waiting frames are dropped and counted (``freshest_when_full``, default on): an
  overloaded engine then analyses each camera's latest picture, not one a queue's worth of intervals old. Each
  camera's frames still come in capture order; a camera the consumer keeps up with loses nothing.
- ``FrameItem.frame`` is a read-only numpy VIEW into the shared-memory slot (zero copy). The slot stays reserved
  until the consumer calls :meth:`FrameBus.release` ``(item)`` (or :meth:`FrameItem.release`); copy what you need
  to keep (``item.frame.copy()``) before releasing. Each camera has ``hold_slots`` slots beyond its queue for
  frames held by the consumer; if a consumer holds more than that, new frames of that camera are dropped (and
  counted) instead of overwriting held ones. ``get_batch(..., copy=True)`` returns private copies and releases
  the slots at once.
- :meth:`FrameBus.dropped` ``(camera_id) -> int`` and :meth:`FrameBus.depth` ``(camera_id) -> int`` report the drop
  count and the number of queued (not yet taken) frames. :meth:`FrameBus.published` counts accepted frames.
- Frame ids are per camera, increasing from 1, unique for the life of the bus.
- Robust to a process being SIGKILLed: no Condition or Event waits are shared (waking uses a binary semaphore,
  stop signals are polled); the lock is held only for bookkeeping, never while copying a frame.
- The creator calls :meth:`FrameBus.close` then :meth:`FrameBus.unlink` at shutdown (or uses it as a context
  manager); children only :meth:`FrameBus.close`.

Frames wider than ``max_width`` or larger than a slot (``max_width`` x ``max_height`` x 3 bytes) are refused with
``ValueError``: the capture side downscales to ``ingest.max_width`` before publishing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Self

import numpy as np

from pipeline.processes import process_start

logger = logging.getLogger(__name__)

MP_CONTEXT = multiprocessing.get_context("spawn")
"""Start children that receive a :class:`FrameBus` from this context."""

_FREE, _READY, _HELD, _WRITING = 0, 1, 2, 3
_SLOT_DTYPE = np.dtype(
    [("state", "i4"), ("h", "i4"), ("w", "i4"), ("c", "i4"), ("frame_id", "i8"), ("capture_time", "f8"),
     ("writer_pid", "i8"), ("writer_start", "i8")]  # who holds a _WRITING slot (pid, its start time in ticks)
)
_CAM_DTYPE = np.dtype([("next_id", "i8"), ("dropped", "i8"), ("published", "i8")])
_attach_lock = threading.Lock()


@dataclass
class FrameItem:
    """One frame taken from the bus; ``frame`` is a view into shared memory until released (see module doc)."""

    camera_id: str
    frame_id: int
    capture_time: float
    frame: np.ndarray
    _bus: FrameBus | None = field(default=None, repr=False, compare=False)
    _cam: int = field(default=-1, repr=False, compare=False)
    _slot: int = field(default=-1, repr=False, compare=False)

    def release(self) -> None:
        """Give the slot back to the bus (no-op for copies or when already released)."""
        if self._bus is not None:
            self._bus.release(self)


def _round_robin_quotas(order: list[int], waiting: dict[int, int], max_frames: int) -> dict[int, int]:
    """How many frames each camera gives to one batch of ``max_frames``: one per camera per round, in ``order``,
    a camera at most its ``waiting`` frames; cameras that give none are left out."""
    quota = dict.fromkeys(waiting, 0)
    left = max_frames
    while left > 0:
        progressed = False
        for cam in order:
            if left > 0 and cam in waiting and quota[cam] < waiting[cam]:
                quota[cam] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return {cam: q for cam, q in quota.items() if q}


def _writer_alive(pid: int, start: int) -> bool:
    """Whether the process that reserved a slot (``pid``, started at ``start`` ticks; 0: unknown) still runs; a
    pid reused by a newer process is not that writer."""
    if pid <= 0:
        return True  # no writer recorded: cannot tell, so never reclaimed
    now = process_start(pid)
    if now is None:
        return False
    return start == 0 or now == 0 or now == start


_own_identity: tuple[int, int] | None = None


def _writer_identity() -> tuple[int, int]:
    """This process's (pid, start ticks), recorded in each slot it writes."""
    global _own_identity
    pid = os.getpid()
    if _own_identity is None or _own_identity[0] != pid:
        _own_identity = (pid, process_start(pid) or 0)
    return _own_identity


def _attach(name: str) -> SharedMemory:
    """Attach to an existing block without registering it with this process's resource tracker.

    Python < 3.13 registers attached blocks too, and the tracker would unlink them when a child exits.
    """
    with _attach_lock:
        original = resource_tracker.register
        resource_tracker.register = lambda *args, **kwargs: None  # type: ignore[assignment]
        try:
            return SharedMemory(name=name)
        finally:
            resource_tracker.register = original  # type: ignore[assignment]


class FrameBus:
    """Bounded per-camera frame queues in shared memory; see the module docstring for the contract."""

    def __init__(
        self,
        camera_ids: Iterable[str],
        queue_size: int = 4,
        max_width: int = 1280,
        max_height: int | None = None,
        hold_slots: int = 2,
        ctx: Any = None,
        freshest_when_full: bool = True,
        freshest_lag_s: float = 1.0,
    ) -> None:
        """Create the shared memory for ``camera_ids`` (call in the parent process only).

        ``max_height`` defaults to ``max_width`` (square, so portrait cameras fit too). ``freshest_when_full`` and
        ``freshest_lag_s`` (0: a full queue only): see the module docstring (off: always oldest first; frames are
        then dropped only by :meth:`publish`).
        """
        self.camera_ids: list[str] = list(dict.fromkeys(camera_ids))
        if not self.camera_ids:
            raise ValueError("FrameBus needs at least one camera id")
        if queue_size < 1 or hold_slots < 0:
            raise ValueError("queue_size must be >= 1 and hold_slots >= 0")
        self.queue_size = int(queue_size)
        self.hold_slots = int(hold_slots)
        self.freshest_when_full = bool(freshest_when_full)
        self.freshest_lag_s = float(freshest_lag_s)
        self.max_width = int(max_width)
        self.max_height = int(max_height or max_width)
        self.slots = self.queue_size + self.hold_slots
        self.slot_bytes = self.max_width * self.max_height * 3
        ctx = ctx or MP_CONTEXT
        self._lock = ctx.Lock()
        # a binary "doorbell" instead of a Condition: a Condition's notify waits for every sleeper to acknowledge,
        # so a consumer killed while waiting would freeze every producer
        self._doorbell = ctx.BoundedSemaphore(1)
        n = len(self.camera_ids)
        meta_bytes = n * self.slots * _SLOT_DTYPE.itemsize + n * _CAM_DTYPE.itemsize
        self._meta_shm = SharedMemory(create=True, size=max(meta_bytes, 1))
        self._data_shm = SharedMemory(create=True, size=n * self.slots * self.slot_bytes)
        self._owner = True
        self._map_arrays()
        self._slots_meta[:] = np.zeros((), _SLOT_DTYPE)
        self._cams_meta[:] = np.zeros((), _CAM_DTYPE)
        self._cams_meta["next_id"] = 1
        logger.debug(
            "frame bus created: %d cameras x %d slots of %d bytes", n, self.slots, self.slot_bytes
        )

    # -- pickling: children re-attach by name -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_") or k in ("_lock", "_doorbell")}
        state["_meta_name"] = self._meta_shm.name
        state["_data_name"] = self._data_shm.name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        meta_name = state.pop("_meta_name")
        data_name = state.pop("_data_name")
        self.__dict__.update(state)
        self._meta_shm = _attach(meta_name)
        self._data_shm = _attach(data_name)
        self._owner = False
        self._map_arrays()

    def _map_arrays(self) -> None:
        n = len(self.camera_ids)
        self._index = {cam: i for i, cam in enumerate(self.camera_ids)}
        slot_count = n * self.slots
        self._slots_meta = np.ndarray((n, self.slots), _SLOT_DTYPE, buffer=self._meta_shm.buf)
        self._cams_meta = np.ndarray(
            (n,), _CAM_DTYPE, buffer=self._meta_shm.buf, offset=slot_count * _SLOT_DTYPE.itemsize
        )
        self._data = np.ndarray((n, self.slots, self.slot_bytes), np.uint8, buffer=self._data_shm.buf)
        self._rr = 0

    # -- producer -------------------------------------------------------------------------------------
    def publish(self, camera_id: str, frame: np.ndarray, capture_time: float) -> None:
        """Copy ``frame`` (uint8, H x W x C) into the bus; drop the camera's oldest queued frame when full."""
        cam = self._cam_index(camera_id)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f"frame must be a uint8 H x W [x C] array, got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        c = frame.shape[2] if frame.ndim == 3 else 1
        if h * w * c > self.slot_bytes or w > self.max_width:
            raise ValueError(
                f"frame {w}x{h}x{c} of camera {camera_id!r} exceeds the bus slot "
                f"({self.max_width} wide, {self.slot_bytes} bytes); downscale before publishing"
            )
        with self._lock:  # reserve a slot; the copy happens outside the lock
            meta = self._slots_meta[cam]
            ready = np.flatnonzero(meta["state"] == _READY)
            if len(ready) >= self.queue_size:
                oldest = ready[np.argmin(meta["frame_id"][ready])]
                meta["state"][oldest] = _FREE
                self._cams_meta["dropped"][cam] += 1
            free = np.flatnonzero(meta["state"] == _FREE)
            if len(free) == 0 and self._reclaim_dead_writers_locked(cam):
                free = np.flatnonzero(meta["state"] == _FREE)
            if len(free) == 0:  # every slot held by the consumer: drop the new frame
                self._cams_meta["dropped"][cam] += 1
                return
            slot = int(free[0])
            pid, start = _writer_identity()
            meta["writer_pid"][slot], meta["writer_start"][slot] = pid, start
            meta["state"][slot] = _WRITING
        try:
            self._data[cam, slot, : h * w * c] = frame.reshape(-1)
        except BaseException:
            with self._lock:
                meta["state"][slot] = _FREE
            raise
        with self._lock:
            frame_id = int(self._cams_meta["next_id"][cam])
            self._cams_meta["next_id"][cam] = frame_id + 1
            self._cams_meta["published"][cam] += 1
            self._slots_meta[cam, slot] = (_READY, h, w, c, frame_id, capture_time, 0, 0)
        try:
            self._doorbell.release()
        except ValueError:  # already rung
            pass

    # -- consumer -------------------------------------------------------------------------------------
    def get_batch(self, max_frames: int, timeout_s: float, copy: bool = False) -> list[FrameItem]:
        """Take up to ``max_frames`` frames round-robin across cameras; wait up to ``timeout_s`` for the first."""
        if max_frames < 1:
            return []
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            with self._lock:
                taken = self._take_locked(max_frames)
                items = [self._make_item(cam, slot) for cam, slot in taken]
            if items:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._doorbell.acquire(timeout=min(remaining, 0.1))
        if copy:
            for item in items:
                item.frame = item.frame.copy()
                self.release(item)
        return items

    def _take_locked(self, max_frames: int) -> list[tuple[int, int]]:
        n = len(self.camera_ids)
        states = self._slots_meta["state"]
        ids = self._slots_meta["frame_id"]
        start = self._rr
        order = [(start + k) % n for k in range(n)]
        queued = {cam: ready[np.argsort(ids[cam][ready])] for cam in order
                  if len(ready := np.flatnonzero(states[cam] == _READY))}
        chosen: dict[int, np.ndarray] = {}
        for cam, q in _round_robin_quotas(order, {cam: len(slots) for cam, slots in queued.items()},
                                          max_frames).items():
            slots = queued[cam]
            if self.freshest_when_full and len(slots) > q and self._behind_locked(cam, slots):
                states[cam, slots[:-q]] = _FREE  # fallen behind: its newest frames, the older ones dropped
                self._cams_meta["dropped"][cam] += len(slots) - q
                slots = slots[-q:]
            chosen[cam] = slots[:q]
        taken: list[tuple[int, int]] = []
        for j in range(max((len(c) for c in chosen.values()), default=0)):  # each camera's frames in capture order
            for cam in order:
                if cam in chosen and j < len(chosen[cam]):
                    slot = int(chosen[cam][j])
                    states[cam, slot] = _HELD
                    taken.append((cam, slot))
        self._rr = (start + 1) % n
        return taken

    def _behind_locked(self, cam: int, waiting: np.ndarray) -> bool:
        """Whether the consumer has fallen behind camera ``cam`` (its ``waiting`` slots, oldest first): its queue is
        full, or the waiting frames span ``freshest_lag_s`` of capture time or more."""
        if len(waiting) >= self.queue_size:
            return True
        times = self._slots_meta["capture_time"][cam]
        return self.freshest_lag_s > 0 and float(times[waiting[-1]] - times[waiting[0]]) >= self.freshest_lag_s

    def _make_item(self, cam: int, slot: int) -> FrameItem:
        rec = self._slots_meta[cam, slot]
        h, w, c = int(rec["h"]), int(rec["w"]), int(rec["c"])
        view = self._data[cam, slot, : h * w * c].reshape((h, w, c) if c > 1 else (h, w))
        view.flags.writeable = False
        return FrameItem(
            camera_id=self.camera_ids[cam],
            frame_id=int(rec["frame_id"]),
            capture_time=float(rec["capture_time"]),
            frame=view,
            _bus=self,
            _cam=cam,
            _slot=slot,
        )

    def release(self, item: FrameItem) -> None:
        """Free the shared-memory slot of ``item``; its ``frame`` view must not be used afterwards."""
        if item._bus is None:
            return
        with self._lock:
            rec = self._slots_meta[item._cam, item._slot]
            if rec["state"] == _HELD and rec["frame_id"] == item.frame_id:
                self._slots_meta["state"][item._cam, item._slot] = _FREE
        item._bus = None

    def reclaim_held(self) -> int:
        """Free every slot a consumer holds; returns how many. The bus has one consumer (the engine process): call
        this when it starts, so that the frames a previous engine held when it was killed (it never released them)
        do not keep those slots, and every frame of their cameras dropped, for the life of the bus."""
        with self._lock:
            held = self._slots_meta["state"] == _HELD
            count = int(held.sum())
            self._slots_meta["state"][held] = _FREE
        return count

    def reclaim_dead_writers(self) -> int:
        """Free every slot a producer reserved (``_WRITING``) and died before it finished copying into (a capture
        process killed mid-copy); returns how many. A slot whose writer still runs is never touched. A capture
        worker calls this when it starts; :meth:`publish` also does it for its camera when it finds no free slot."""
        with self._lock:
            return sum(self._reclaim_dead_writers_locked(cam) for cam in range(len(self.camera_ids)))

    def _reclaim_dead_writers_locked(self, cam: int) -> int:
        """Free camera ``cam``'s ``_WRITING`` slots whose writer process is gone (call with the lock held)."""
        meta = self._slots_meta[cam]
        count = 0
        for slot in np.flatnonzero(meta["state"] == _WRITING):
            pid, start = int(meta["writer_pid"][slot]), int(meta["writer_start"][slot])
            if not _writer_alive(pid, start):
                meta["state"][slot] = _FREE
                count += 1
                logger.warning("frame bus: slot %d of camera %s freed: its writer (pid %d) died mid-copy", slot,
                               self.camera_ids[cam], pid)
        return count

    # -- counters -------------------------------------------------------------------------------------
    def dropped(self, camera_id: str) -> int:
        """Frames of this camera dropped because its queue was full (or every slot was held)."""
        return int(self._cams_meta["dropped"][self._cam_index(camera_id)])

    def published(self, camera_id: str) -> int:
        """Frames of this camera accepted by :meth:`publish`."""
        return int(self._cams_meta["published"][self._cam_index(camera_id)])

    def depth(self, camera_id: str) -> int:
        """Frames of this camera queued and not yet taken by a consumer."""
        cam = self._cam_index(camera_id)
        return int(np.count_nonzero(self._slots_meta["state"][cam] == _READY))

    def _cam_index(self, camera_id: str) -> int:
        try:
            return self._index[camera_id]
        except KeyError:
            raise KeyError(f"camera {camera_id!r} is not on this frame bus") from None

    # -- lifetime -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Detach this process from the shared memory (views handed out become invalid)."""
        for name in ("_slots_meta", "_cams_meta", "_data"):
            self.__dict__.pop(name, None)
        for shm in (self._meta_shm, self._data_shm):
            try:
                shm.close()
            except BufferError:  # a view is still referenced somewhere; the OS frees it at exit
                logger.debug("frame bus block %s still referenced at close", shm.name)

    def unlink(self) -> None:
        """Remove the shared memory blocks (creator only, after every child has stopped)."""
        if not self._owner:
            return
        for shm in (self._meta_shm, self._data_shm):
            try:
                shm.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.unlink()


class StopFlag:
    """A stop signal shared with child processes: ``set()``, ``is_set()``, ``wait(timeout)`` like an Event.

    Unlike ``multiprocessing.Event`` it is a plain shared byte that is polled, so a child killed while waiting on it
    cannot block ``set()`` in the others. Create it in the parent (from :data:`MP_CONTEXT`) and pass it to DIRECT
    children: a child also sees it set when the creating process has died (killed supervisor), so nothing lingers.
    """

    def __init__(self, ctx: Any = None, poll_s: float = 0.1) -> None:
        self._value = (ctx or MP_CONTEXT).RawValue("b", 0)
        self.poll_s = poll_s
        self._owner_pid = os.getpid()

    def set(self) -> None:
        """Ask everyone to stop."""
        self._value.value = 1

    def is_set(self) -> bool:
        """Whether stop was requested, or (in a direct child) the process that created the flag has died."""
        if self._value.value:
            return True
        if os.getpid() != self._owner_pid and os.getppid() != self._owner_pid:  # orphaned: parent was killed
            self._value.value = 1
            return True
        return False

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or ``timeout`` seconds passed; return :meth:`is_set`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = self.poll_s if deadline is None else min(self.poll_s, deadline - time.monotonic())
            if remaining <= 0:
                break
            time.sleep(remaining)
        return self.is_set()


class LeaseFlag(StopFlag):
    """The stop flag of a capture on a camera lease (worker hosts): also set by itself once the lease's deadline
    has passed without a renewal, so that the capture fences itself even when its supervisor is frozen.

    The supervisor (its lease keeper) calls :meth:`renew` with the lease's fencing token and its local deadline
    (``time.monotonic()``: CLOCK_MONOTONIC, one clock for every process of the host) after every good renewal; both
    are plain shared values the capture child reads. A deadline of 0 means no lease (never expires by itself).
    """

    def __init__(self, ctx: Any = None, poll_s: float = 0.1) -> None:
        super().__init__(ctx, poll_s)
        self._token = (ctx or MP_CONTEXT).RawValue("q", 0)
        self._deadline = (ctx or MP_CONTEXT).RawValue("d", 0.0)

    def renew(self, token: int, deadline: float) -> None:
        """The lease (``token``) is held until ``deadline`` (local monotonic time)."""
        self._token.value = int(token)
        self._deadline.value = float(deadline)

    @property
    def token(self) -> int:
        """The fencing token of the lease (0: none given yet)."""
        return int(self._token.value)

    @property
    def deadline(self) -> float:
        """The lease's local monotonic deadline (0: none)."""
        return float(self._deadline.value)

    def expired(self) -> bool:
        """Whether the lease's deadline passed without a renewal."""
        deadline = self._deadline.value
        return bool(deadline) and time.monotonic() >= deadline

    def is_set(self) -> bool:
        """Whether stop was requested, the creating process died, or the lease's deadline passed (latched)."""
        if super().is_set():
            return True
        if self.expired():
            if not self._value.value:
                logger.warning("process %d: lease (token %d) deadline passed without a renewal; stopping",
                               os.getpid(), self.token)  # fmt: skip
            self._value.value = 1
            return True
        return False
