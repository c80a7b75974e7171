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
refused. Re-delivery of the same record (a crash between write and spool commit) is a no-op of the idempotent store
(same event id and version), fenced or not.

A vehicle still in view when the new holder takes over is seen again by the new holder's own tracker, which knows
nothing of the old holder's track: without more, the same vehicle would be published twice, under two event ids.
:class:`HandoverMerger` recognises it (see there): the new holder's event of that vehicle is published as the next
versions of the old holder's event (same event id, the earlier start, the more confident read), and its watchlist
alerts get the old holder's alert ids, so an alert already raised is not raised again.
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
from pipeline.engine.watchmatch import alert_id_for
from pipeline.events import Alert, PlateEvent
from pipeline.store import keys
from pipeline.store.codec import decode
from pipeline.store.events import EventStore
from pipeline.store.plates import normalise_plate

logger = logging.getLogger(__name__)

MERGE_WINDOW_S = 15.0
"""A hand-over merge considers a new holder's track that started at most this long after its token was issued (a
vehicle in view at the hand-over is seen in the first seconds of the new capture)."""
MERGE_GAP_S = 20.0
"""... and joins it to an old holder's event of the same plate that ended at most this long before the track began
(the kill, the lease TTL running out, the new capture's start, and the old event's last update before the kill)."""
MERGE_PLATE_DISTANCE = 1.0
"""Largest plate distance (:func:`pipeline.search.fuzzy.plate_distance`, look-alikes cheaper) between the old and
the new holder's reads of one vehicle: one character read differently (two close plates of different vehicles on one
camera within the window would be joined: one character is the risk taken)."""
MERGE_LOOKBACK_S = 900.0
"""How far back (frame time of the best read) an old holder's event of the same plate is looked for."""
_READ_FIELDS = ("plate_text", "province", "province_latin", "confidence", "candidates", "agreeing_frames",
                "frame_time", "plate_box", "vehicle_box", "snapshot_path", "crop_path")

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


class HandoverMerger:
    """Publishes a vehicle that the previous holder of a camera already published as that same event.

    The first version of a plate event from this host is *taken over* when (one Redis look-up, only then):

    - this host's token of the camera is not its first (another worker held it) and the track started at most
      :data:`MERGE_WINDOW_S` after the token was issued (the vehicle was in view around the hand-over);
    - the store holds an event of the same camera and the same plate (normalised; or within
      :data:`MERGE_PLATE_DISTANCE`, found through the store's fuzzy index, the exact plate first) whose best read was
      captured before this host's token was issued (so by an earlier holder) and that ended at most
      :data:`MERGE_GAP_S` before this track started.

    That event (the most recent such) is then the *target*: this and every later version of the track are
    published as the target's next versions (one counter per target, so two tracks of one vehicle on the new holder
    update it in turn), with the earlier ``started_at`` and, when the target's read was more confident, the
    target's read fields (text, province, candidates, crop, snapshot...); alerts of the track get the target's
    event id and so the target's alert ids (:func:`~pipeline.engine.watchmatch.alert_id_for`): the store keeps an
    alert once. Without Redis (records going to the spool) nothing is looked up and the track stays an event of
    its own. Face events are not merged (nothing to recognise a person by across two trackers but the embedding).
    """

    def __init__(self, client: Any, window_s: float = MERGE_WINDOW_S, gap_s: float = MERGE_GAP_S) -> None:
        self.client = client
        self.window_s = window_s
        self.gap_s = gap_s
        self.merged = 0  # tracks published as an earlier holder's event
        self._issued: dict[tuple[str, int], float | None] = {}
        self._targets: dict[str, PlateEvent] = {}  # this host's event id -> target (as last published)
        self._next_version: dict[str, int] = {}  # target event id -> last version used

    def rewrite(self, kind: str, record: BaseModel, token: int) -> BaseModel:
        """``record`` as it must be published (itself, or rewritten onto its target)."""
        if kind == "alert":
            return self._alert(record)  # type: ignore[arg-type]
        if kind != "plate":
            return record
        event: PlateEvent = record  # type: ignore[assignment]
        target = self._targets.get(event.event_id)
        if target is None and event.version == 1 and token > 1:
            target = self._find_target(event, token)
            if target is not None:
                self._targets[event.event_id] = target
                self.merged += 1
                logger.info("camera %s: plate %s still in view at the hand-over: published as event %s of the "
                            "previous holder (not as a second event)", event.camera_id, target.plate_text,
                            target.event_id)  # fmt: skip
        if target is None:
            return event
        version = max(self._next_version.get(target.event_id, target.version), target.version) + 1
        self._next_version[target.event_id] = version
        update: dict[str, Any] = {"event_id": target.event_id, "version": version,
                                  "started_at": min(target.started_at, event.started_at)}
        if target.confidence > event.confidence:
            update |= {name: getattr(target, name) for name in _READ_FIELDS}
        merged = event.model_copy(update=update)
        self._targets[event.event_id] = merged
        return merged

    def _alert(self, alert: Alert) -> Alert:
        target = self._targets.get(alert.event_id)
        if target is None:
            return alert
        return alert.model_copy(update={"event_id": target.event_id,
                                        "alert_id": alert_id_for(target.event_id, alert.watchlist_id, alert.entry_id)})

    def _token_issued(self, camera_id: str, token: int) -> float | None:
        key = (camera_id, token)
        if key not in self._issued:
            raw = self.client.hget(fence_key(camera_id), str(token))
            self._issued[key] = float(raw) if raw is not None else None
            while len(self._issued) > 4096:
                self._issued.pop(next(iter(self._issued)))
        return self._issued[key]

    def _find_target(self, event: PlateEvent, token: int) -> PlateEvent | None:
        plate = normalise_plate(event.plate_text or "")
        if not plate:
            return None
        try:
            issued = self._token_issued(event.camera_id, token)
            if issued is None or event.started_at > issued + self.window_s:
                return None
            code = self.client.hget(keys.PLATE_CODES, "c" + event.camera_id)
            if code is None:
                return None
            code = code.decode() if isinstance(code, bytes) else str(code)
            for candidate in self._plates_near(plate):
                found = self._old_event(candidate, code, event, issued)
                if found is not None:
                    return found
        except (redis.RedisError, OSError, ValueError) as exc:
            logger.debug("camera %s: no hand-over merge look-up (%s)", event.camera_id, exc)
        return None

    def _plates_near(self, plate: str) -> list[str]:
        """``plate`` and the stored plates within :data:`MERGE_PLATE_DISTANCE` of it, nearest first (at most 8)."""
        from pipeline.search.fuzzy import deletion_variants, fold, plate_distance

        raw = self.client.sunion([keys.plate_variant(v) for v in sorted(deletion_variants(fold(plate)))])
        near = {(r.decode() if isinstance(r, bytes) else str(r)) for r in raw} - {plate}
        scored = sorted((plate_distance(plate, p), p) for p in near)
        return [plate] + [p for d, p in scored if d <= MERGE_PLATE_DISTANCE][:7]

    def _old_event(self, plate: str, code: str, event: PlateEvent, issued: float) -> PlateEvent | None:
        """The newest event of ``plate`` on the event's camera seen before ``issued`` and ended within the gap."""
        members = self.client.zrevrangebyscore(keys.plate_sightings(plate), issued, issued - MERGE_LOOKBACK_S,
                                               start=0, num=32)  # fmt: skip
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            sid, _, rest = text.partition("|")
            if rest.split("|", 1)[0] != code:
                continue
            found = self.client.xrange(keys.PLATE_STREAM, sid, sid)
            if not found:
                continue
            old = decode(PlateEvent, found[0][1])
            if old.camera_id == event.camera_id and old.ended_at >= event.started_at - self.gap_s:
                return old
        return None


class FencedPublisher(SpooledPublisher):
    """:class:`~pipeline.engine.publisher.SpooledPublisher` that attaches a fence to every record.

    ``fence_for(camera_id)`` gives this host's fencing token of the camera (None: this host never held it, then
    token 0 is sent, which the store refuses once the camera was ever leased). The fence travels with a spooled
    record, so a late delivery is judged by the token and capture time it was seen with.
    """

    def __init__(self, store: FencedEventStore, spool: EventSpool, fence_for: Callable[[str], int | None],
                 merger: HandoverMerger | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(store, spool, **kwargs)
        self.fence_for = fence_for
        self.merger = merger
        self._event_times: OrderedDict[str, float] = OrderedDict()

    def publish(self, kind: str, record: BaseModel) -> bool:
        fence = self._fence_of(kind, record)
        if self.merger is not None and self.redis_ok:
            record = self.merger.rewrite(kind, record, int(fence["token"]))
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
