"""Fencing: a worker that lost a camera's lease cannot publish for that camera any more.

Every write of a plate event, face event or alert made in a worker host carries a *fence*: the camera, the fencing
token under which the worker saw it (:mod:`pipeline.cluster.leases`) and the record's capture time. The store's
writer scripts run with a check in front (same script, so the check and the write are one atomic step): the write
goes through when the token is the camera's current one, or when it is older but the record was captured before
the next token was handed out (seen while this worker still held the camera: a record delivered late from the
engine's spool is kept, not lost). Otherwise the script refuses the write (``FENCED``), the store counts it in
:attr:`FencedEventStore.refused` and the publisher drops it from its spool: another worker holds the camera and
publishes what it sees.

Neither lost nor duplicated across a hand-over: records published by the old holder before it stopped are in Redis;
records it had spooled reach Redis whenever it comes back (accepted: captured before the hand-over); records of
frames it analysed after the new holder's token was issued (a worker cut off from Redis that did not notice) are
refused; the new holder's records carry new event ids from its own tracks. Re-delivery of the same record (a crash
between write and spool commit) is a no-op of the idempotent store (same event id and version), fenced or not.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis
from pydantic import BaseModel

from pipeline.cluster.leases import fence_key
from pipeline.engine.publisher import KINDS, SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.store.events import EventStore

logger = logging.getLogger(__name__)

FENCE_FIELD = "_fence"
"""Key of the fence inside a spooled record's payload (removed before the record is validated)."""

FENCE_CHECK = """
local fence_key_ = KEYS[#KEYS]
local fence_mine_ = tonumber(ARGV[#ARGV - 1])
local fence_time_ = tonumber(ARGV[#ARGV])
local fence_cur_ = tonumber(redis.call('HGET', fence_key_, 'current') or '0')
if fence_mine_ ~= fence_cur_ then
  local fence_next_ = redis.call('HGET', fence_key_, tostring(fence_mine_ + 1))
  if fence_mine_ > fence_cur_ or not fence_next_ or fence_time_ >= tonumber(fence_next_) then
    return redis.error_reply('FENCED token ' .. fence_mine_ .. ' is not the current ' .. fence_cur_)
  end
end
"""


def fenced_source(script_source: str) -> str:
    """A writer script with the fence check in front; it then takes one more key (the camera's fence hash) and
    two more arguments at the end (token, capture time)."""
    return FENCE_CHECK + script_source


class _FencedScript:
    """Stands in for one of the store's registered scripts: plain while no fence is set, fenced while one is."""

    def __init__(self, store: FencedEventStore, plain: Any) -> None:
        self.store = store
        self.plain = plain
        self.fenced = store.client.register_script(fenced_source(plain.script if isinstance(plain.script, str)
                                                                 else plain.script.decode()))  # fmt: skip

    def __call__(self, keys: list | None = None, args: list | None = None, client: Any = None) -> Any:
        fence = self.store.fence
        if fence is None:
            return self.plain(keys=keys, args=args, client=client)
        camera_id, token, capture_time = fence
        return self.fenced(keys=[*(keys or []), fence_key(camera_id)],
                           args=[*(args or []), int(token), repr(float(capture_time))], client=client)  # fmt: skip


class FencedEventStore(EventStore):
    """:class:`~pipeline.store.events.EventStore` whose single-record writes check :attr:`fence` atomically.

    Set ``store.fence = (camera_id, token, capture_time)`` before a ``publish_*_event`` / ``publish_alert`` call
    (:class:`FencedPublisher` does); a refused write returns False and counts in :attr:`refused`.
    """

    def __init__(self, client: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(client, *args, **kwargs)
        self.fence: tuple[str, int, float] | None = None
        self.refused = 0
        self._plate_script = _FencedScript(self, self._plate_script)
        self._face_script = _FencedScript(self, self._face_script)
        self._alert_script = _FencedScript(self, self._alert_script)

    def publish_plate_event(self, event: Any) -> bool:
        return self._guard(super().publish_plate_event, event)

    def publish_face_event(self, event: Any) -> bool:
        return self._guard(super().publish_face_event, event)

    def publish_alert(self, alert: Any) -> bool:
        return self._guard(super().publish_alert, alert)

    def _guard(self, write: Callable[[Any], bool], record: Any) -> bool:
        try:
            return write(record)
        except redis.ResponseError as exc:
            if "FENCED" not in str(exc):
                raise
            self.refused += 1
            logger.warning("refused a write for camera %s: %s (another worker holds the camera now)",
                           getattr(record, "camera_id", "?"), str(exc).split("FENCED", 1)[1].strip())  # fmt: skip
            return False


class FencedPublisher(SpooledPublisher):
    """:class:`~pipeline.engine.publisher.SpooledPublisher` that attaches a fence to every record.

    ``fence_for(camera_id)`` gives this host's fencing token of the camera (None: this host never held it, then
    token 0 is sent, which the store refuses once the camera was ever leased). The fence travels with a spooled
    record, so a late delivery is judged by the token and capture time it was seen with.
    """

    def __init__(self, store: FencedEventStore, spool: EventSpool, fence_for: Callable[[str], int | None],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(store, spool, **kwargs)
        self.fence_for = fence_for
        self._event_times: OrderedDict[str, float] = OrderedDict()

    def publish(self, kind: str, record: BaseModel) -> bool:
        fence = self._fence_of(kind, record)
        if len(self.spool) == 0 and self._deliver_fenced(kind, record, fence):
            return True
        payload = record.model_dump(mode="json")
        payload[FENCE_FIELD] = fence
        self.spool.append(kind, payload)
        self.spooled_total += 1
        self.flush()
        return False

    def _fence_of(self, kind: str, record: Any) -> dict[str, Any]:
        camera_id = record.camera_id
        if kind == "alert":
            capture_time = self._event_times.get(record.event_id, record.created_at)
        else:
            capture_time = float(record.frame_time)
            self._event_times[record.event_id] = capture_time
            self._event_times.move_to_end(record.event_id)
            while len(self._event_times) > 10_000:
                self._event_times.popitem(last=False)
        return {"camera": camera_id, "token": int(self.fence_for(camera_id) or 0), "time": capture_time}

    def _deliver_payload(self, kind: str, payload: dict[str, Any]) -> bool:
        payload = dict(payload)
        fence = payload.pop(FENCE_FIELD, None)
        model_type = KINDS.get(kind)
        if model_type is None:
            logger.error("spool holds a record of unknown kind %r; skipping it", kind)
            return True
        return self._deliver_fenced(kind, model_type.model_validate(payload), fence)

    def _deliver_fenced(self, kind: str, record: BaseModel, fence: dict[str, Any] | None) -> bool:
        store = self.store
        store.fence = None if fence is None else (str(fence["camera"]), int(fence["token"]), float(fence["time"]))
        try:
            return self._deliver_model(kind, record)
        finally:
            store.fence = None
