"""A frame bus whose lanes are handed to cameras while it runs (a worker host's cameras change with its leases).

:class:`LaneBus` is a :class:`~pipeline.ingest.framebus.FrameBus` with ``lanes`` queues (the host's camera slots)
named in shared memory: the supervisor :meth:`LaneBus.assign` s a lane to a camera (with its fencing token) before
starting that camera's capture process and :meth:`LaneBus.unassign` s it after the capture stopped; frames queued
and not yet taken are dropped then, so a lane's next camera never receives them. Producers publish by camera id
as on a plain bus; the consumer (engine) gets items with the camera id of the lane and remembers, per camera, the
token its last frame came with (:meth:`LaneBus.fence_token`), which the fenced publisher attaches to the camera's
events even after the lane was given up (tracks end after the camera stopped).
"""

from __future__ import annotations

from typing import Any

from pipeline.ingest.framebus import _FREE, _READY, _WRITING, MP_CONTEXT, FrameBus, FrameItem

NAME_BYTES = 128


class LaneBus(FrameBus):
    """A frame bus of ``lanes`` dynamically assigned camera lanes (see the module docstring)."""

    def __init__(self, lanes: int, queue_size: int = 4, max_width: int = 1280, max_height: int | None = None,
                 hold_slots: int = 2, freshest_when_full: bool = True,
                 freshest_lag_s: float = 1.0) -> None:  # fmt: skip
        if lanes < 1:
            raise ValueError("a lane bus needs at least one lane")
        super().__init__([f"lane-{i}" for i in range(lanes)], queue_size, max_width, max_height, hold_slots,
                         freshest_when_full=freshest_when_full, freshest_lag_s=freshest_lag_s)
        self._names = MP_CONTEXT.RawArray("c", lanes * NAME_BYTES)
        self._tokens = MP_CONTEXT.RawArray("q", lanes)
        self._lane_cache: dict[str, int] = {}
        self._seen_tokens: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_names"] = self._names
        state["_tokens"] = self._tokens
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        names, tokens = state.pop("_names"), state.pop("_tokens")
        super().__setstate__(state)
        self._names, self._tokens = names, tokens
        self._lane_cache = {}
        self._seen_tokens = {}

    # -- lanes -------------------------------------------------------------------------------------------------
    def _name(self, lane: int) -> str:
        raw = self._names[lane * NAME_BYTES:(lane + 1) * NAME_BYTES]
        return raw.split(b"\0", 1)[0].decode()

    def _set_name(self, lane: int, name: str) -> None:
        data = name.encode()[:NAME_BYTES].ljust(NAME_BYTES, b"\0")
        self._names[lane * NAME_BYTES:(lane + 1) * NAME_BYTES] = data

    def lanes(self) -> dict[str, int]:
        """Camera -> lane of every assigned lane."""
        return {name: lane for lane in range(len(self.camera_ids)) if (name := self._name(lane))}

    def assign(self, camera_id: str, token: int) -> int:
        """Give ``camera_id`` a lane (its own if it has one; the token is updated); raise RuntimeError when full."""
        with self._lock:
            current = self.lanes()
            lane = current.get(camera_id)
            if lane is None:
                free = [i for i in range(len(self.camera_ids)) if not self._name(i)]
                if not free:
                    raise RuntimeError(f"no free lane for camera {camera_id!r} ({len(self.camera_ids)} lanes)")
                lane = free[0]
                self._clear_locked(lane)
                self._set_name(lane, camera_id)
            self._tokens[lane] = int(token)
        return lane

    def unassign(self, camera_id: str) -> None:
        """Give the camera's lane up (call after its producer stopped); queued frames are dropped."""
        with self._lock:
            lane = self.lanes().get(camera_id)
            if lane is None:
                return
            self._clear_locked(lane)
            self._set_name(lane, "")
            self._tokens[lane] = 0

    def _clear_locked(self, lane: int) -> None:
        states = self._slots_meta["state"][lane]
        states[(states == _READY) | (states == _WRITING)] = _FREE  # held frames stay until the consumer releases
        self._cams_meta[lane] = (1, 0, 0)

    def _cam_index(self, camera_id: str) -> int:
        lane = self._lane_cache.get(camera_id)
        if lane is not None and self._name(lane) == camera_id:
            return lane
        for lane in range(len(self.camera_ids)):
            if self._name(lane) == camera_id:
                self._lane_cache[camera_id] = lane
                return lane
        raise KeyError(f"camera {camera_id!r} has no lane on this frame bus")

    # -- consumer ----------------------------------------------------------------------------------------------
    def _make_item(self, cam: int, slot: int) -> FrameItem:
        item = super()._make_item(cam, slot)
        item.camera_id = self._name(cam)
        if item.camera_id:
            self._seen_tokens[item.camera_id] = int(self._tokens[cam])
        return item

    def fence_token(self, camera_id: str) -> int | None:
        """The fencing token the consumer's last frame of ``camera_id`` came with (None: no frame seen)."""
        return self._seen_tokens.get(camera_id)

    def has_camera(self, camera_id: str) -> bool:
        """Whether the camera has a lane now."""
        return camera_id in self.lanes()

