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
alerts get the old holder's alert ids, so an alert already raised is not raised again. A track that may still turn
out to be such a vehicle (its read not settled yet) is held back briefly rather than published as an event of its
own that a later merge would leave behind.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from pydantic import BaseModel

from pipeline.cluster.leases import fence_key
from pipeline.engine.publisher import KINDS, SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.engine.watchmatch import alert_id_for
from pipeline.events import Alert, PlateEvent
from pipeline.store import keys
from pipeline.store.codec import decode_or_none
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
"""Largest plate distance (:func:`pipeline.plates.fuzzy.plate_distance`, look-alikes cheaper) between the old and
the new holder's reads of one vehicle: one character read differently (two close plates of different vehicles on one
camera within the window would be joined: one character is the risk taken)."""
MERGE_LOOKBACK_S = 900.0
"""How far back (frame time of the best read) an old holder's event of the same plate is looked for."""
MERGE_HOLD_S = 8.0
"""A track that may still be merged (see :class:`HandoverMerger`) but matched no earlier holder's event yet is held
back at most this long (wall clock from its first version's arrival) before it is published as an event of its
own: the first versions often carry no read or a different one, and the read one character off comes seconds later.
The latency cost: only tracks that begin within :data:`MERGE_WINDOW_S` of a take-over, and only when they are not
merged (a merged track is published at once)."""
MERGE_CANDIDATES = 3
"""Reads of a track looked up for a merge: the voted plate and the best alternative reads (``candidates``), at most
this many in all."""
SETTLED_READS, SETTLED_CONFIDENCE = 3, 0.75
"""A held track whose voted read has at least this many agreeing frames at this confidence (the engine's default
``plate_settle_reads`` / ``plate_settle_confidence``) and still matched nothing is released at once: its read is
not going to change into the old holder's."""
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


Outgoing = tuple[str, BaseModel, dict[str, Any]]
"""A record to deliver: kind, record, fence (see :meth:`FencedPublisher._fence_of`)."""


@dataclass
class _Held:
    """A track held back by :class:`HandoverMerger`: its latest version and its alerts, each with its fence."""

    until: float
    event: PlateEvent | None = None
    fence: dict[str, Any] = field(default_factory=dict)
    alerts: list[tuple[Alert, dict[str, Any]]] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)  # reads already looked up (each costs Redis round trips)


class HandoverMerger:
    """Publishes a vehicle that the previous holder of a camera already published as that same event.

    A plate track of this host is *considered* when its first version arrives and (one Redis look-up, cached):
    this host's token of the camera is not its first (another worker held it) and the track started at most
    :data:`MERGE_WINDOW_S` after the token was issued (the vehicle may have been in view around the hand-over).
    While considered, each version is matched against the store, with its voted plate and its best alternative
    reads (:data:`MERGE_CANDIDATES`): an event of the same camera and a plate equal (normalised) or within
    :data:`MERGE_PLATE_DISTANCE` (found through the store's fuzzy index, the exact plate first) whose best read was
    captured before this host's token was issued (so by an earlier holder) and that ended at most
    :data:`MERGE_GAP_S` before this track started.

    That event (the most recent such) is then the *target*: this and every later version of the track are
    published as the target's next versions (one counter per target, so two tracks of one vehicle on the new holder
    update it in turn), with the earlier ``started_at`` and, when the target's read was more confident, the
    target's read fields (text, province, candidates, crop, snapshot...); alerts of the track get the target's
    event id and so the target's alert ids (:func:`~pipeline.engine.watchmatch.alert_id_for`): the store keeps an
    alert once.

    Until a considered track matches, it is *held*: nothing of it is published (its latest version and its alerts
    wait here), so a track whose first versions had no read, or a different one, does not leave an event of its
    own behind when a later version merges. It is released as an event of its own (latest version, then its
    alerts) when its read settled without a match (:data:`SETTLED_READS`) or :data:`MERGE_HOLD_S` after its first
    version arrived (:meth:`release`, called by the publisher's :meth:`FencedPublisher.flush`), whichever comes
    first; from then on it is never merged. Without Redis (records going to the spool) a new track is not
    considered, and a held one is not matched (it is released as its own when its time is up). Face events are
    not merged (nothing to recognise a person by across two trackers but the embedding).
    """

    def __init__(self, client: Any, window_s: float = MERGE_WINDOW_S, gap_s: float = MERGE_GAP_S,
                 hold_s: float = MERGE_HOLD_S, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.client = client
        self.window_s = window_s
        self.gap_s = gap_s
        self.hold_s = hold_s
        self.clock = clock
        self.merged = 0  # tracks published as an earlier holder's event
        self.released = 0  # held tracks published as events of their own
        self._issued: OrderedDict[tuple[str, int], float | None] = OrderedDict()
        # this host's event id -> target (as last published); target event id -> last version used. Both are
        # bounded (MERGED_KEPT, oldest out): a merged track lives seconds to minutes, merges happen at hand-overs
        self._targets: OrderedDict[str, PlateEvent] = OrderedDict()
        self._next_version: OrderedDict[str, int] = OrderedDict()
        self._held: dict[str, _Held] = {}  # this host's event id -> held track
        self._own: OrderedDict[str, None] = OrderedDict()  # event ids decided: published as themselves

    @property
    def holding(self) -> int:
        """Tracks held back now."""
        return len(self._held)

    def admit(self, kind: str, record: BaseModel, token: int, fence: dict[str, Any],
              lookup: bool = True) -> list[Outgoing]:  # fmt: skip
        """What to deliver now for ``record`` (fenced with ``fence``): itself, rewritten onto its target, the
        target's version and the track's held alerts, or nothing (held). ``lookup``: Redis is reachable."""
        if kind == "alert":
            alert: Alert = record  # type: ignore[assignment]
            held = self._held.get(alert.event_id)
            if held is not None:
                held.alerts.append((alert, fence))
                return []
            return [(kind, self._alert(alert), fence)]
        if kind != "plate":
            return [(kind, record, fence)]
        event: PlateEvent = record  # type: ignore[assignment]
        target = self._targets.get(event.event_id)
        if target is not None:
            return [(kind, self._onto(event, target), fence)]
        held = self._held.get(event.event_id)
        if held is None and (event.event_id in self._own or not lookup or not self._considered(event, token)):
            self._decided(event.event_id)
            return [(kind, event, fence)]
        if held is None:
            held = self._held[event.event_id] = _Held(until=self.clock() + self.hold_s)
        target = self._find_target(event, token, held.tried) if lookup else None
        if target is None:
            held.event, held.fence = event, fence
            if _settled(event):
                return self._release(event.event_id)
            return []
        _remember(self._targets, event.event_id, target)
        self.merged += 1
        logger.info("camera %s: plate %s still in view at the hand-over: published as event %s of the previous "
                    "holder (not as a second event; matched at version %d of track %s, read %r)", event.camera_id,
                    target.plate_text, target.event_id, event.version, event.track_id, event.plate_text)
        out: list[Outgoing] = [(kind, self._onto(event, target), fence)]
        del self._held[event.event_id]
        return out + [("alert", self._alert(alert), alert_fence) for alert, alert_fence in held.alerts]

    def release(self, force: bool = False) -> list[Outgoing]:
        """The held tracks whose time is up (all with ``force``), as events of their own, each followed by its
        alerts."""
        now = self.clock()
        out: list[Outgoing] = []
        for event_id in [e for e, held in self._held.items() if force or now >= held.until]:
            out += self._release(event_id)
        return out

    def _release(self, event_id: str) -> list[Outgoing]:
        held = self._held.pop(event_id)
        self._decided(event_id)
        self.released += 1
        if held.event is not None:
            logger.info("camera %s: track %s (read %r, version %d) matched no earlier holder's event: published as "
                        "an event of its own after %.1f s held", held.event.camera_id, held.event.track_id,
                        held.event.plate_text, held.event.version, self.clock() - (held.until - self.hold_s))
        out: list[Outgoing] = [("plate", held.event, held.fence)] if held.event is not None else []
        return out + [("alert", alert, fence) for alert, fence in held.alerts]

    def _decided(self, event_id: str) -> None:
        _remember(self._own, event_id, None, cap=10_000)

    def _onto(self, event: PlateEvent, target: PlateEvent) -> PlateEvent:
        """``event`` as the target's next version (the target as last published moves on to it)."""
        version = max(self._next_version.get(target.event_id, target.version), target.version) + 1
        _remember(self._next_version, target.event_id, version)
        update: dict[str, Any] = {"event_id": target.event_id, "version": version,
                                  "started_at": min(target.started_at, event.started_at)}
        if target.confidence > event.confidence:
            update |= {name: getattr(target, name) for name in _READ_FIELDS}
        merged = event.model_copy(update=update)
        _remember(self._targets, event.event_id, merged)
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
            _remember(self._issued, key, float(raw) if raw is not None else None)
        return self._issued[key]

    def _considered(self, event: PlateEvent, token: int) -> bool:
        """Whether a new track may be a vehicle of an earlier holder: a first version, on a camera taken over (token
        above 1), begun within the window after the token was issued."""
        if event.version != 1 or token <= 1:
            return False
        try:
            issued = self._token_issued(event.camera_id, token)
        except (redis.RedisError, OSError, ValueError) as exc:
            logger.debug("camera %s: no hand-over merge look-up (%s)", event.camera_id, exc)
            return False
        return issued is not None and event.started_at <= issued + self.window_s

    def _find_target(self, event: PlateEvent, token: int, tried: set[str]) -> PlateEvent | None:
        """The earlier holder's event this track is (None: none yet). The voted read matches a stored plate within
        :data:`MERGE_PLATE_DISTANCE`, an alternative read only exactly (a weak alternative one character off would
        let a different vehicle disappear into an old event); reads in ``tried`` are not looked up again, and the
        look-up is best effort: any failure leaves the track unmatched for now."""
        reads = [(plate, k == 0) for k, plate in enumerate(_reads(event)) if plate not in tried]
        if not reads:
            return None
        try:
            issued = self._token_issued(event.camera_id, token)
            if issued is None or event.started_at > issued + self.window_s:
                return None
            code = self.client.hget(keys.PLATE_CODES, "c" + event.camera_id)
            if code is None:
                return None
            code = code.decode() if isinstance(code, bytes) else str(code)
            for plate, voted in reads:
                for candidate in self._plates_near(plate) if voted and event.plate_text else [plate]:
                    found = self._old_event(candidate, code, event, issued)
                    if found is not None:
                        return found
                tried.add(plate)
        except (redis.RedisError, OSError, ValueError) as exc:
            logger.debug("camera %s: no hand-over merge look-up (%s)", event.camera_id, exc)
        except Exception:  # a stored record that does not decode, a bug: the merge is best effort, never a loss
            logger.exception("camera %s: hand-over merge look-up failed; the track stays unmatched for now",
                             event.camera_id)
        return None

    def _plates_near(self, plate: str) -> list[str]:
        """``plate`` and the stored plates within :data:`MERGE_PLATE_DISTANCE` of it, nearest first (at most 8)."""
        from pipeline.plates.fuzzy import deletion_variants, fold, plate_distance

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
            old = decode_or_none(PlateEvent, found[0][1], sid)
            if old is not None and old.camera_id == event.camera_id and old.ended_at >= event.started_at - self.gap_s:
                return old
        return None


def _reads(event: PlateEvent) -> list[str]:
    """The event's voted plate and best alternative reads, normalised, distinct, at most :data:`MERGE_CANDIDATES`."""
    out: list[str] = []
    for text in [event.plate_text or "", *(c.text for c in event.candidates)]:
        plate = normalise_plate(text)
        if plate and plate not in out:
            out.append(plate)
    return out[:MERGE_CANDIDATES]


def _settled(event: PlateEvent) -> bool:
    """Whether the event's read will not change any more (see :data:`SETTLED_READS`)."""
    return bool(event.plate_text) and event.agreeing_frames >= SETTLED_READS and event.confidence >= SETTLED_CONFIDENCE


class FencedPublisher(SpooledPublisher):
    """:class:`~pipeline.engine.publisher.SpooledPublisher` that attaches a fence to every record.

    ``fence_for(camera_id)`` gives this host's fencing token of the camera (None: this host never held it, then
    token 0 is sent, which the store refuses once the camera was ever leased). The fence travels with a spooled
    record, so a late delivery is judged by the token and capture time it was seen with. With a ``merger``
    (:class:`HandoverMerger`) a record may be rewritten onto an earlier holder's event or held back for a few
    seconds; :meth:`flush` (the engine loop calls it all the time) delivers the held tracks whose time is up.
    """

    def __init__(self, store: FencedEventStore, spool: EventSpool, fence_for: Callable[[str], int | None],
                 merger: HandoverMerger | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(store, spool, **kwargs)
        self.fence_for = fence_for
        self.merger = merger
        self._event_times: OrderedDict[str, float] = OrderedDict()

    def publish(self, kind: str, record: BaseModel) -> bool:
        """Deliver ``record`` (or what the merger makes of it) now if possible (True); False when it went to the
        spool or the merger holds it back."""
        fence = self._fence_of(kind, record)
        if self.merger is None:
            return self._send(kind, record, fence)
        out = self.merger.admit(kind, record, int(fence["token"]), fence, lookup=self.redis_ok)
        delivered = [self._send(*item) for item in out]
        return bool(delivered) and all(delivered)

    def flush(self, force: bool = False) -> int:
        """Deliver the merger's held tracks whose time is up (all of them with ``force``), then drain the spool."""
        if self.merger is not None:
            for item in self.merger.release(force):
                self._send(*item)
        return super().flush(force)

    def _send(self, kind: str, record: BaseModel, fence: dict[str, Any]) -> bool:
        if len(self.spool) == 0 and self._deliver_fenced(kind, record, fence):
            return True
        payload = record.model_dump(mode="json")
        payload[FENCE_FIELD] = fence
        self.spool.append(kind, payload)
        self.spooled_total += 1
        SpooledPublisher.flush(self)
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


MERGED_KEPT = 4096
"""Merged tracks (and their targets' version counters, and tokens' issue times) the merger remembers, most recent
first."""


def _remember(table: OrderedDict[Any, Any], key: Any, value: Any, cap: int | None = None) -> None:
    """``table[key] = value`` as the most recent entry, the oldest dropped beyond ``cap`` (:data:`MERGED_KEPT`)."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > (MERGED_KEPT if cap is None else cap):
        table.popitem(last=False)
