"""EventStore: the single writer of plate/face events and alerts into Redis (see :mod:`pipeline.store.keys`).

Every publish is one Lua script call (:mod:`pipeline.store.lua`) that takes a batch of events, so an event and all of
its index entries change atomically and bulk loads need one round trip per batch. Publishing is idempotent per
(event_id, version): the same or an older version is a no-op returning False; a higher version replaces the stream
entry and moves the index entries (stale ones are removed in the same script). :meth:`EventStore.prune_before`
applies retention by age and :meth:`EventStore.prune_trimmed` removes index entries whose records the stream cap
trimmed; call them periodically (they scan the events hash in small atomic steps).

Replicated acknowledgement: with ``wait_replicas`` N > 0 (Redis Sentinel deployments, see
:func:`pipeline.store.connection.wait_replicas`), every write is followed on the same connection by ``WAIT N
timeout``; a publish returns only when N replicas hold it, otherwise it raises :class:`NotReplicatedError` and the
engine keeps the record in its spool and delivers it again later. An event is *acknowledged* when a publish call
returned: it is then on the primary and on N replicas, so a failover (Sentinel promotes a replica) keeps it. A
redelivery that finds the event already stored writes a small marker key and WAITs for that, which covers the
earlier write too (replication is in order).
"""

from __future__ import annotations

import json
import logging

import redis

from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store import codec, holds, keys, lua
from pipeline.store.plates import normalise_plate

logger = logging.getLogger(__name__)

_ALERT_LUA = """
-- KEYS: stream, index hash, face-alert media hash; ARGV: alert_id, maxlen, channel, json, media path ('' none)
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], sid)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], sid) end
redis.call('PUBLISH', ARGV[3], '{"id":"' .. sid .. '","alert":' .. ARGV[4] .. '}')
return 1
"""

REPLICATION_MARK = "cctv:repl:mark"
"""Key written (INCR) when a redelivery stored nothing, so that WAIT has a write of this connection to confirm."""

BATCH = 500
"""Events per writer-script call (one atomic step; a few milliseconds of Redis time)."""


def face_alert_media(alert: Alert) -> str | None:
    """The media path a face alert makes visible to every role that sees face alerts (its crop), else None."""
    return alert.crop_path if alert.kind == "face" and alert.crop_path else None


class NotReplicatedError(redis.RedisError):
    """The write reached the primary but not enough replicas confirmed it within the timeout (not acknowledged)."""


class EventStore:
    """Writes plate and face events (with their search indexes) and alerts to Redis.

    Args:
        client: a redis-py client (``decode_responses`` must be False: embeddings are bytes).
        events_maxlen: approximate number of entries kept per event stream (``XADD MAXLEN ~``).
        wait_replicas: replicas that must confirm each write (``WAIT``) before a publish returns (0: none).
        wait_timeout_ms: how long a write waits for them before :class:`NotReplicatedError`.
    """

    def __init__(self, client: redis.Redis, events_maxlen: int = 1_000_000, alerts_maxlen: int = 1_000_000,
                 wait_replicas: int = 0, wait_timeout_ms: int = 1000):
        self.client = client
        self.wait_replicas = int(wait_replicas)
        self.wait_timeout_ms = int(wait_timeout_ms)
        self.events_maxlen = int(events_maxlen)
        self.alerts_maxlen = int(alerts_maxlen)
        self._plate_script = client.register_script(lua.PLATE_WRITE)
        self._face_script = client.register_script(lua.FACE_WRITE)
        self._plate_prune = client.register_script(lua.PLATE_PRUNE)
        self._face_prune = client.register_script(lua.FACE_PRUNE)
        self._alert_prune = client.register_script(lua.ALERT_PRUNE)
        self._alert_media_prune = client.register_script(lua.ALERT_MEDIA_PRUNE)
        self._age_trim = client.register_script(lua.STREAM_AGE_TRIM)
        self._series_rebuild = client.register_script(lua.SERIES_REBUILD)
        self._alert_script = client.register_script(_ALERT_LUA)

    # -- plates -----------------------------------------------------------------------------------------------
    @staticmethod
    def plate_event_args(event: PlateEvent) -> list:
        """The writer script's arguments for one plate event (the plate text is stored normalised)."""
        plate = normalise_plate(event.plate_text)
        if plate != event.plate_text:
            event = event.model_copy(update={"plate_text": plate})
        fields = codec.encode(event)
        args: list = [event.event_id, event.version, plate, event.camera_id, f"{event.confidence:.3f}",
                      event.vehicle_class or "", event.province or "", repr(float(event.frame_time)), len(fields)]
        for name, value in fields.items():
            args += [name, value]
        return args

    def plate_script_call(self, event_args: list[list]) -> tuple[list[str], list]:
        """KEYS and ARGV of one writer-script call storing several events (each from :meth:`plate_event_args`)."""
        argv: list = [self.events_maxlen, repr(keys.LAST_SEEN_SLACK_S), len(event_args)]
        for args in event_args:
            argv += args
        return [keys.PLATE_STREAM, keys.PLATE_EVENTS, keys.PLATE_LAST_SEEN, keys.PLATE_CODES,
                keys.PLATE_CODES_REVERSE], argv

    def publish_plate_events(self, events: list[PlateEvent]) -> list[bool]:
        """Store and index plate events, :data:`BATCH` per atomic script call; per event False if this
        (event_id, version) or a newer one was already stored."""
        out: list[bool] = []
        for i in range(0, len(events), BATCH):
            script_keys, argv = self.plate_script_call([self.plate_event_args(e) for e in events[i:i + BATCH]])
            out += [int(r) == 1 for r in self._write(self._plate_script, script_keys, argv)]
        return out

    def publish_plate_event(self, event: PlateEvent) -> bool:
        """Store a plate event and index it; False if this (event_id, version) or a newer one is stored."""
        return self.publish_plate_events([event])[0]

    # -- faces ------------------------------------------------------------------------------------------------
    @staticmethod
    def face_event_args(event: FaceEvent) -> list:
        """The face writer script's arguments for one face event."""
        fields = codec.encode(event)
        args: list = [event.event_id, event.version, len(fields)]
        for name, value in fields.items():
            args += [name, value]
        return args

    def face_script_call(self, event_args: list[list]) -> tuple[list[str], list]:
        """KEYS and ARGV of one face-writer call storing several events (each from :meth:`face_event_args`)."""
        argv: list = [self.events_maxlen, len(event_args)]
        for args in event_args:
            argv += args
        return [keys.FACE_STREAM, keys.FACE_EVENTS], argv

    def publish_face_events(self, events: list[FaceEvent]) -> list[bool]:
        """Store face events (embedding as float32 bytes), :data:`BATCH` per script call."""
        out: list[bool] = []
        for i in range(0, len(events), BATCH):
            script_keys, argv = self.face_script_call([self.face_event_args(e) for e in events[i:i + BATCH]])
            out += [int(r) == 1 for r in self._write(self._face_script, script_keys, argv)]
        return out

    def publish_face_event(self, event: FaceEvent) -> bool:
        """Store a face event (embedding as float32 bytes); False if this version or a newer one is stored."""
        return self.publish_face_events([event])[0]

    # -- retention --------------------------------------------------------------------------------------------
    def prune_before(self, timestamp: float, count: int = 1000) -> dict[str, int]:
        """Delete every plate and face event stored before ``timestamp`` (UTC epoch s, by stream id = storage
        time) from the streams and every index; plates left without a sighting leave the indexes too. Events under
        legal hold (:mod:`pipeline.store.holds`: attached to an open case) are kept, record and index entries."""
        cutoff = f"{int(timestamp * 1000)}-0"
        return self._prune(cutoff, cutoff, count, hold_key=holds.EVENTS)

    def prune_trimmed(self, count: int = 1000) -> dict[str, int]:
        """Remove the index entries of events whose records the streams' ``MAXLEN`` cap has already trimmed."""
        return self._prune(self._first_id(keys.PLATE_STREAM), self._first_id(keys.FACE_STREAM), count)

    def prune_trimmed_alerts(self, count: int = 1000) -> int:
        """Remove the de-duplication index (``alerts:idx``), acknowledgement and face-alert media
        (``alerts:face_media``) entries of alerts whose records the alert stream's ``MAXLEN`` cap has trimmed (they
        grew without bound); returns how many alerts left the de-duplication index."""
        cutoff, cursor, removed = self._first_id(keys.ALERT_STREAM), "0", 0
        while True:
            cursor, gone = self._alert_prune(keys=[keys.ALERT_INDEX, keys.ALERT_ACKS], args=[cursor, count, cutoff])
            removed += int(gone)
            if int(cursor) == 0:
                break
        media = self._prune_alert_media(cutoff, count)
        if media:
            logger.info("%s face-alert media entries left the index with their trimmed alerts", media)
        return removed

    def _prune_alert_media(self, cutoff: str, count: int) -> int:
        """Drop the ``alerts:face_media`` entries whose newest alert is older than ``cutoff``; returns how many."""
        cursor, removed = "0", 0
        while True:
            cursor, gone = self._alert_media_prune(keys=[keys.FACE_ALERT_MEDIA], args=[cursor, count, cutoff])
            removed += int(gone)
            if int(cursor) == 0:
                return removed

    def rebuild_series_index(self, count: int = 2000) -> None:
        """(Re)build the ``plates:gz:*`` series sets from ``plates:last`` in small atomic steps (a store written
        before they existed; the writer keeps them current from then on)."""
        offset = 0
        while offset >= 0:
            offset = int(self._series_rebuild(keys=[keys.PLATE_LAST_SEEN], args=[offset, count]))

    def _first_id(self, stream: str) -> str:
        """The oldest id still in ``stream`` (or one past the last id ever given when the stream is empty)."""
        first = self.client.xrange(stream, "-", "+", count=1)
        if first:
            return first[0][0].decode()
        try:
            last = self.client.xinfo_stream(stream)["last-generated-id"]
        except redis.ResponseError:  # no such stream: nothing was ever stored
            return "0-0"
        ms, _, seq = (last.decode() if isinstance(last, bytes) else str(last)).partition("-")
        return f"{ms}-{int(seq) + 1}"

    def _prune(self, plate_cutoff: str, face_cutoff: str, count: int,
               hold_key: str = "hold:none") -> dict[str, int]:
        """Index entries older than the cutoffs go (except held events when ``hold_key`` names the hold set);
        with a hold set the streams lose the unheld entries one by one, else they are trimmed at the cutoff."""
        stats = {"plate_events": 0, "plates_emptied": 0, "face_events": 0}
        cursor = "0"
        while True:
            cursor, removed, emptied = self._plate_prune(keys=[keys.PLATE_EVENTS, keys.PLATE_LAST_SEEN, hold_key],
                                                         args=[cursor, count, plate_cutoff])
            stats["plate_events"] += int(removed)
            stats["plates_emptied"] += int(emptied)
            if int(cursor) == 0:
                break
        cursor = "0"
        while True:
            cursor, removed = self._face_prune(keys=[keys.FACE_EVENTS, hold_key], args=[cursor, count, face_cutoff])
            stats["face_events"] += int(removed)
            if int(cursor) == 0:
                break
        if hold_key == "hold:none" or not self.client.exists(hold_key):
            self.client.xtrim(keys.PLATE_STREAM, minid=plate_cutoff, approximate=False)
            self.client.xtrim(keys.FACE_STREAM, minid=face_cutoff, approximate=False)
        else:
            self._trim_unheld(keys.PLATE_STREAM, "plate", plate_cutoff, hold_key, count)
            self._trim_unheld(keys.FACE_STREAM, "face", face_cutoff, hold_key, count)
        logger.info("pruned %s plate events (%s plates emptied) and %s face events", stats["plate_events"],
                    stats["plates_emptied"], stats["face_events"])
        return stats

    def _trim_unheld(self, stream: str, kind: str, cutoff: str, hold_key: str, count: int) -> int:
        """Delete the stream entries older than ``cutoff`` that are not held, ``count`` per atomic step."""
        start, deleted = "-", 0
        while True:
            last, n = self._age_trim(keys=[stream, hold_key], args=[start, cutoff, count, kind])
            deleted += int(n)
            last = last.decode() if isinstance(last, bytes) else str(last)
            if not last:
                return deleted
            start = f"({last}"

    # -- alerts -----------------------------------------------------------------------------------------------
    def publish_alert(self, alert: Alert) -> bool:
        """Append an alert to the ``alerts`` stream (the replay backlog) and PUBLISH it on ``alerts:live``; a face
        alert's crop enters ``alerts:face_media`` in the same step (what lets the API show it to the roles that may
        see face alerts but not face events).

        Returns False (and publishes nothing) if an alert with this alert_id was already stored.
        """
        payload = json.dumps(alert.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)
        result = self._write(self._alert_script, [keys.ALERT_STREAM, keys.ALERT_INDEX, keys.FACE_ALERT_MEDIA],
                             [alert.alert_id, self.alerts_maxlen, keys.ALERT_CHANNEL, payload,
                              face_alert_media(alert) or ""])
        return int(result) == 1

    # -- replicated writes ------------------------------------------------------------------------------------
    def _write(self, script, script_keys: list, argv: list):
        """Run a writer script; with ``wait_replicas`` also WAIT (same connection) and raise
        :class:`NotReplicatedError` unless enough replicas confirmed it."""
        try:
            if not self.wait_replicas:
                return script(keys=script_keys, args=argv)
            pipe = self.client.pipeline(transaction=False)
            script(keys=script_keys, args=argv, client=pipe)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            result, acked = pipe.execute()
        except redis.ResponseError as exc:  # min-replicas-to-write: the primary has too few replicas to take it
            if "NOREPLICAS" in str(exc):
                raise NotReplicatedError(f"the primary refused the write: {exc}") from None
            raise
        stored = any(int(r) == 1 for r in (result if isinstance(result, list) else [result]))
        if not stored:  # nothing written by this call: confirm the earlier write (maybe another connection's)
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(REPLICATION_MARK)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            _, acked = pipe.execute()
        if int(acked) < self.wait_replicas:
            raise NotReplicatedError(f"{int(acked)} of {self.wait_replicas} replica(s) confirmed the write within "
                                     f"{self.wait_timeout_ms} ms")
        return result
