"""EventStore: the single writer of plate/face events and alerts into Redis (see :mod:`pipeline.store.keys`).

Every publish is one Lua script, so an event and all of its index entries change atomically. Publishing is
idempotent per (event_id, version): the same or an older version is a no-op returning False; a higher version
replaces the stream entry and moves the index entries (stale ones are removed in the same script).
"""

from __future__ import annotations

import json
import logging

import redis

from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store import codec, keys
from pipeline.store.plates import clean_token, index_keys, normalise_plate

logger = logging.getLogger(__name__)

_PLATE_LUA = """
-- KEYS: stream, events hash, distinct set, last-seen zset; ARGV: event_id, version, expected_current, plate, suffix, score,
-- maxlen, n_new_idx, n_old_idx, n_fields, new index keys..., old index keys..., field/value pairs...
local eid, version, expected = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local plate, suffix, score, maxlen = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n_new, n_old, n_fields = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local cur = redis.call('HGET', KEYS[2], eid)
if (cur or '') ~= expected then return -1 end
local old_plate, old_member
if cur then
  local v, p, m = string.match(cur, '^(%d+)\\t([^\\t]*)\\t(.*)$')
  if tonumber(v) >= version then return 0 end
  old_plate, old_member = p, m
end
local fields = {}
local base = 10 + n_new + n_old
for i = 1, n_fields * 2 do fields[i] = ARGV[base + i] end
local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
local member = sid .. '|' .. suffix
if old_member then
  local old_sid = string.match(old_member, '^([^|]+)')
  redis.call('XDEL', KEYS[1], old_sid)
  if old_plate ~= '' then
    local zkey = 'plate:s:' .. old_plate
    redis.call('ZREM', zkey, old_member)
    if old_plate ~= plate and redis.call('ZCARD', zkey) == 0 then
      redis.call('SREM', KEYS[3], old_plate)
      redis.call('ZREM', KEYS[4], old_plate)
      for i = 1, n_old do redis.call('SREM', ARGV[10 + n_new + i], old_plate) end
    end
  end
end
if plate ~= '' then
  redis.call('ZADD', 'plate:s:' .. plate, score, member)
  redis.call('ZADD', KEYS[4], 'GT', score, plate)
  if redis.call('SADD', KEYS[3], plate) == 1 then
    for i = 1, n_new do redis.call('SADD', ARGV[10 + i], plate) end
  end
end
redis.call('HSET', KEYS[2], eid, ARGV[2] .. '\\t' .. plate .. '\\t' .. member)
return 1
"""

_FACE_LUA = """
-- KEYS: stream, events hash; ARGV: event_id, version, maxlen, field/value pairs...
local cur = redis.call('HGET', KEYS[2], ARGV[1])
local old_sid
if cur then
  local v, s = string.match(cur, '^(%d+)\\t(.*)$')
  if tonumber(v) >= tonumber(ARGV[2]) then return 0 end
  old_sid = s
end
local fields = {}
for i = 4, #ARGV do fields[i - 3] = ARGV[i] end
local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
if old_sid then redis.call('XDEL', KEYS[1], old_sid) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '\\t' .. sid)
return 1
"""

_ALERT_LUA = """
-- KEYS: stream, index hash; ARGV: alert_id, maxlen, channel, json
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], sid)
redis.call('PUBLISH', ARGV[3], '{"id":"' .. sid .. '","alert":' .. ARGV[4] .. '}')
return 1
"""

MAX_RETRIES = 8


class EventStore:
    """Writes plate and face events (with their search indexes) and alerts to Redis.

    Args:
        client: a redis-py client (``decode_responses`` must be False: embeddings are bytes).
        events_maxlen: approximate number of entries kept per event stream (``XADD MAXLEN ~``).
    """

    def __init__(self, client: redis.Redis, events_maxlen: int = 1_000_000, alerts_maxlen: int = 1_000_000):
        self.client = client
        self.events_maxlen = int(events_maxlen)
        self.alerts_maxlen = int(alerts_maxlen)
        self._plate_script = client.register_script(_PLATE_LUA)
        self._face_script = client.register_script(_FACE_LUA)
        self._alert_script = client.register_script(_ALERT_LUA)

    # -- plates -----------------------------------------------------------------------------------------------
    @staticmethod
    def plate_args(event: PlateEvent, expected: str, events_maxlen: int) -> tuple[list[str], list]:
        """KEYS and ARGV of the plate script for ``event`` given the current ``plates:ev`` value ``expected``."""
        plate = normalise_plate(event.plate_text)
        if plate != event.plate_text:
            event = event.model_copy(update={"plate_text": plate})
        old_plate = expected.split("\t")[1] if expected else ""
        new_idx = index_keys(plate) if plate else []
        old_idx = index_keys(old_plate) if old_plate and old_plate != plate else []
        suffix = "|".join([
            clean_token(event.camera_id), f"{event.confidence:.3f}", clean_token(event.vehicle_class),
            clean_token(event.province),
        ])
        fields = codec.encode(event)
        flat: list = []
        for name, value in fields.items():
            flat += [name, value]
        argv = [event.event_id, event.version, expected, plate, suffix, repr(float(event.frame_time)),
                events_maxlen, len(new_idx), len(old_idx), len(fields), *new_idx, *old_idx, *flat]
        return [keys.PLATE_STREAM, keys.PLATE_EVENTS, keys.PLATE_DISTINCT, keys.PLATE_LAST_SEEN], argv

    def publish_plate_event(self, event: PlateEvent) -> bool:
        """Store a plate event and index it; False if this (event_id, version) or a newer one is stored."""
        for _ in range(MAX_RETRIES):
            current = self.client.hget(keys.PLATE_EVENTS, event.event_id)
            expected = current.decode() if current else ""
            if expected and int(expected.split("\t", 1)[0]) >= event.version:
                return False
            script_keys, argv = self.plate_args(event, expected, self.events_maxlen)
            result = int(self._plate_script(keys=script_keys, args=argv))
            if result >= 0:
                return result == 1
            logger.debug("plate event %s changed concurrently; retrying", event.event_id)
        raise RuntimeError(f"plate event {event.event_id} kept changing during publish")

    # -- faces ------------------------------------------------------------------------------------------------
    @staticmethod
    def face_args(event: FaceEvent, events_maxlen: int) -> tuple[list[str], list]:
        """KEYS and ARGV of the face script for ``event``."""
        flat: list = []
        for name, value in codec.encode(event).items():
            flat += [name, value]
        return [keys.FACE_STREAM, keys.FACE_EVENTS], [event.event_id, event.version, events_maxlen, *flat]

    def publish_face_event(self, event: FaceEvent) -> bool:
        """Store a face event (embedding as float32 bytes); False if this version or a newer one is stored."""
        script_keys, argv = self.face_args(event, self.events_maxlen)
        return int(self._face_script(keys=script_keys, args=argv)) == 1

    # -- alerts -----------------------------------------------------------------------------------------------
    def publish_alert(self, alert: Alert) -> bool:
        """Append an alert to the ``alerts`` stream (the replay backlog) and PUBLISH it on ``alerts:live``.

        Returns False (and publishes nothing) if an alert with this alert_id was already stored.
        """
        payload = json.dumps(alert.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)
        result = self._alert_script(
            keys=[keys.ALERT_STREAM, keys.ALERT_INDEX],
            args=[alert.alert_id, self.alerts_maxlen, keys.ALERT_CHANNEL, payload],
        )
        return int(result) == 1
