"""Server-side (Lua) scripts of the event store: the plate/face writers, the index pruner and the readers' walks.

The plate writer computes a plate's index keys itself (2/3-grams, folded one-deletion variants), so one script call
changes an event and every index entry atomically, without a read-then-write round trip from Python, and takes many
events per call (the engine's single publish is a batch of one). :mod:`pipeline.store.plates` has the same key
computation in Python; the tests check that both agree.
"""

from __future__ import annotations

from pipeline.plates.fuzzy import LOOKALIKE_CLASSES
from pipeline.store import keys


def _lua_str(text: str) -> str:
    """A Lua string literal of ``text`` (UTF-8 bytes as decimal escapes)."""
    return '"' + "".join(f"\\{b}" for b in text.encode()) + '"'


def _fold_table() -> str:
    pairs = [f"[{_lua_str(ch)}]={_lua_str(group[0])}" for group in LOOKALIKE_CLASSES for ch in group[1:]]
    return "{" + ",".join(pairs) + "}"


_HELPERS = r"""
local SIGHT, GRAM, VAR, SERIES = @SIGHT@, @GRAM@, @VAR@, @SERIES@
local FOLD = @FOLD@
local function chars(s)
  local out = {}
  for ch in string.gmatch(s, '[%z\1-\127\194-\244][\128-\191]*') do out[#out + 1] = ch end
  return out
end
local function grams(plate)
  local c, seen, out = chars(plate), {}, {}
  for n = 2, 3 do
    for i = 1, #c - n + 1 do
      local g = table.concat(c, '', i, i + n - 1)
      if not seen[g] then seen[g] = true; out[#out + 1] = g end
    end
  end
  if #out == 0 and plate ~= '' then out[1] = plate end
  return out
end
local function series(plate)
  local c, seen, out = chars(plate), {}, {}
  for i = 1, #c - 1 do
    if not string.find(c[i], '^%d$') and not string.find(c[i + 1], '^%d$') then
      local g = c[i] .. c[i + 1]
      if not seen[g] then seen[g] = true; out[#out + 1] = g end
    end
  end
  return out
end
local function variants(plate)
  local c = chars(plate)
  for i = 1, #c do c[i] = FOLD[c[i]] or c[i] end
  local full = table.concat(c)
  local seen, out = {[full] = true}, {full}
  for i = 1, #c do
    local v = table.concat(c, '', 1, i - 1) .. table.concat(c, '', i + 1, #c)
    if v ~= '' and not seen[v] then seen[v] = true; out[#out + 1] = v end
  end
  return out
end
local function unindex(last_key, plate)
  redis.call('ZREM', last_key, plate)
  for _, g in ipairs(series(plate)) do redis.call('ZREM', SERIES .. g, plate) end
  for _, g in ipairs(grams(plate)) do redis.call('SREM', GRAM .. g, plate) end
  for _, v in ipairs(variants(plate)) do redis.call('SREM', VAR .. v, plate) end
end
local function sid_less(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not ams or not bms then return false end  -- not a stream id (a malformed entry): never taken as older
  ams, bms = tonumber(ams), tonumber(bms)
  if ams ~= bms then return ams < bms end
  return tonumber(aseq) < tonumber(bseq)
end
"""


def _render(body: str) -> str:
    text = _HELPERS + body
    for name, value in (("@SIGHT@", _lua_str(keys.SIGHTINGS_PREFIX)), ("@GRAM@", _lua_str(keys.GRAM_PREFIX)),
                        ("@VAR@", _lua_str(keys.VARIANT_PREFIX)),
                        ("@SERIES@", _lua_str(keys.SERIES_PREFIX)), ("@FOLD@", _fold_table())):
        text = text.replace(name, value)
    return text


PLATE_WRITE = _render(r"""
-- KEYS: stream, events hash, last-seen zset, codes hash, reverse codes hash
-- ARGV: maxlen, slack, n_events, then per event:
--   event_id, version, plate, camera, confidence, vehicle_class, province, score, n_fields, field/value pairs...
-- Returns one integer per event: 1 stored, 0 this version or a newer one was already stored.
local maxlen, slack, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cache = {}
local function code(kind, text)
  if text == '' then return '' end
  local f = kind .. text
  local c = cache[f]
  if c then return c end
  c = redis.call('HGET', KEYS[4], f)
  if not c then
    c = tostring(redis.call('HINCRBY', KEYS[4], '#' .. kind, 1))
    redis.call('HSET', KEYS[4], f, c)
    redis.call('HSET', KEYS[5], kind .. c, text)
  end
  cache[f] = c
  return c
end
local function index(plate, score)
  local last = redis.call('ZSCORE', KEYS[3], plate)
  if last and tonumber(score) <= tonumber(last) + slack then return end
  redis.call('ZADD', KEYS[3], 'GT', score, plate)
  for _, g in ipairs(series(plate)) do redis.call('ZADD', SERIES .. g, 'GT', score, plate) end
  if not last then
    for _, g in ipairs(grams(plate)) do redis.call('SADD', GRAM .. g, plate) end
    for _, v in ipairs(variants(plate)) do redis.call('SADD', VAR .. v, plate) end
  end
end
local results = {}
local i = 4
for e = 1, n do
  local eid, version, plate = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local suffix = code('c', ARGV[i + 3]) .. '|' .. ARGV[i + 4] .. '|' .. code('v', ARGV[i + 5]) .. '|' ..
                 code('p', ARGV[i + 6])
  local score = ARGV[i + 7]
  local first = i + 9
  i = first + 2 * tonumber(ARGV[i + 8])
  local cur = redis.call('HGET', KEYS[2], eid)
  local old_plate, old_member, stale = nil, nil, false
  if cur then
    -- a malformed entry (no version, or no stream id to remove) is replaced without touching the stream: an error
    -- here would fail the whole batch on every retry, and one after the XADD would keep that XADD (no rollback)
    local v = string.match(cur, '^(%d+)\t')
    local p, m = string.match(cur, '^%d+\t([^\t]*)\t(%d+%-%d+|.*)$')
    if v and tonumber(v) >= version then stale = true else old_plate, old_member = p, m end
  end
  if stale then
    results[e] = 0
  else
    local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, i - 1))
    local member = sid .. '|' .. suffix
    if old_member then
      redis.call('XDEL', KEYS[1], string.match(old_member, '^([^|]+)'))
      if old_plate ~= '' then
        local zkey = SIGHT .. old_plate
        redis.call('ZREM', zkey, old_member)
        if old_plate ~= plate and redis.call('ZCARD', zkey) == 0 then unindex(KEYS[3], old_plate) end
      end
    end
    if plate ~= '' then
      redis.call('ZADD', SIGHT .. plate, score, member)
      index(plate, score)
    end
    redis.call('HSET', KEYS[2], eid, version .. '\t' .. plate .. '\t' .. member)
    results[e] = 1
  end
end
return results
""")

FACE_WRITE = r"""
-- KEYS: stream, events hash; ARGV: maxlen, n_events, then per event: event_id, version, n_fields, field/value pairs...
local maxlen, n = ARGV[1], tonumber(ARGV[2])
local results = {}
local i = 3
for e = 1, n do
  local eid, version = ARGV[i], tonumber(ARGV[i + 1])
  local first = i + 3
  i = first + 2 * tonumber(ARGV[i + 2])
  local cur = redis.call('HGET', KEYS[2], eid)
  local old_sid
  if cur then
    -- a malformed entry is replaced (see the plate writer): never an error, before or after the XADD
    local v = string.match(cur, '^(%d+)\t')
    local s = string.match(cur, '^%d+\t(%d+%-%d+)$')
    if v and tonumber(v) >= version then results[e] = 0 else old_sid = s end
  end
  if results[e] == nil then
    local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, i - 1))
    if old_sid then redis.call('XDEL', KEYS[1], old_sid) end
    redis.call('HSET', KEYS[2], eid, version .. '\t' .. sid)
    results[e] = 1
  end
end
return results
"""

PLATE_PRUNE = _render(r"""
-- KEYS: events hash, last-seen zset, legal-hold set; ARGV: HSCAN cursor, count, cutoff stream id.
-- Removes every plate event whose stream id is older than the cutoff from the sighting sets (and its plate from
-- the gram/variant/last-seen indexes once it has no sighting left) and from the events hash, except the events
-- in the hold set (members 'plate:<event id>').
-- Returns {next cursor, events removed, plates emptied}.
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local fields, removed, emptied = scan[2], 0, 0
for j = 1, #fields, 2 do
  local v, plate, member = string.match(fields[j + 1], '^(%d+)\t([^\t]*)\t(.*)$')
  local sid = member and string.match(member, '^([^|]+)')
  if sid and sid_less(sid, ARGV[3]) and redis.call('SISMEMBER', KEYS[3], 'plate:' .. fields[j]) == 0 then
    if plate ~= '' then
      local zkey = SIGHT .. plate
      redis.call('ZREM', zkey, member)
      if redis.call('ZCARD', zkey) == 0 then unindex(KEYS[2], plate); emptied = emptied + 1 end
    end
    redis.call('HDEL', KEYS[1], fields[j])
    removed = removed + 1
  end
end
return {scan[1], removed, emptied}
""")

FACE_PRUNE = _render(r"""
-- KEYS: events hash, legal-hold set; ARGV: HSCAN cursor, count, cutoff stream id. Held events (members
-- 'face:<event id>') stay. Returns {next cursor, events removed}.
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local fields, removed = scan[2], 0
for j = 1, #fields, 2 do
  local sid = string.match(fields[j + 1], '^%d+\t(.*)$')
  if sid and sid_less(sid, ARGV[3]) and redis.call('SISMEMBER', KEYS[2], 'face:' .. fields[j]) == 0 then redis.call('HDEL', KEYS[1], fields[j]); removed = removed + 1 end
end
return {scan[1], removed}
""")

ALERT_PRUNE = _render(r"""
-- KEYS: alert index hash, acknowledgement hash; ARGV: HSCAN cursor, count, cutoff stream id. Alerts whose stream
-- entry is older than the cutoff (trimmed by the stream's cap) leave the index and the acknowledgements.
-- Returns {next cursor, alerts removed}.
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local fields, removed = scan[2], 0
for j = 1, #fields, 2 do
  if sid_less(fields[j + 1], ARGV[3]) then
    redis.call('HDEL', KEYS[1], fields[j]); redis.call('HDEL', KEYS[2], fields[j]); removed = removed + 1
  end
end
return {scan[1], removed}
""")

ALERT_MEDIA_PRUNE = _render(r"""
-- KEYS: face-alert media hash; ARGV: HSCAN cursor, count, cutoff stream id. Media whose newest alert is older than
-- the cutoff (trimmed by the stream's cap) leave the hash. Returns {next cursor, entries removed}.
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local fields, removed = scan[2], 0
for j = 1, #fields, 2 do
  if sid_less(fields[j + 1], ARGV[3]) then redis.call('HDEL', KEYS[1], fields[j]); removed = removed + 1 end
end
return {scan[1], removed}
""")

ALERT_MEDIA_BACKFILL = _render(r"""
-- KEYS: face-alert media hash; ARGV: media path, stream id pairs (from the alert stream, oldest first). Each path
-- takes the stream id unless the hash already names a newer alert for it (one the publisher wrote meanwhile), so
-- runs that overlap, and the publisher, leave the newest alert of every crop. Returns the entries written.
local written = 0
for j = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[j])
  if not cur or not string.match(cur, '^%d+-%d+$') or sid_less(cur, ARGV[j + 1]) then
    redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]); written = written + 1
  end
end
return written
""")

STREAM_AGE_TRIM = r"""
-- KEYS: event stream, legal-hold set; ARGV: start id ('-' or '(' exclusive), cutoff id (exclusive), count, kind.
-- Deletes up to `count` entries older than the cutoff whose event ('<kind>:<event_id>') is not held.
-- Returns {last id looked at ('' when none was left), entries deleted}.
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '(' .. ARGV[2], 'COUNT', ARGV[3])
local deleted, last = 0, ''
for _, e in ipairs(entries) do
  last = e[1]
  local eid = ''
  local f = e[2]
  for j = 1, #f, 2 do if f[j] == 'event_id' then eid = f[j + 1]; break end end
  if redis.call('SISMEMBER', KEYS[2], ARGV[4] .. ':' .. eid) == 0 then
    redis.call('XDEL', KEYS[1], e[1]); deleted = deleted + 1
  end
end
return {last, deleted}
"""

FACE_SCAN = r"""
-- KEYS: face stream; ARGV: start id (inclusive, or '(' exclusive), count.
-- Returns {count, stream ids, event ids, cameras, frame times (each NUL-joined), embedding byte lengths
-- (comma-joined), embeddings concatenated}: a few bulk strings instead of thousands of nested replies.
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local sids, eids, cams, times, lens, embs = {}, {}, {}, {}, {}, {}
for k, e in ipairs(entries) do
  local f = e[2]
  local eid, cam, t, emb = '', '', '0', ''
  for j = 1, #f, 2 do
    local name = f[j]
    if name == 'event_id' then eid = f[j + 1]
    elseif name == 'camera_id' then cam = f[j + 1]
    elseif name == 'frame_time' then t = f[j + 1]
    elseif name == 'embedding' then emb = f[j + 1] end
  end
  sids[k], eids[k], cams[k], times[k], lens[k], embs[k] = e[1], eid, cam, t, tostring(#emb), emb
end
return {#entries, table.concat(sids, '\0'), table.concat(eids, '\0'), table.concat(cams, '\0'),
        table.concat(times, '\0'), table.concat(lens, ','), table.concat(embs)}
"""

PLATE_WALK = r"""
-- KEYS: a zset scored by last-seen (plates:last or a series set). ARGV: rank offset, scan budget, matches wanted, lowest useful score ('' for none),
-- match mode ('find' plain substring, 'match' Lua pattern), pattern.
-- Walks the distinct plates newest first and keeps those matching the pattern (broad partial/wildcard queries,
-- where a few hundred plates newest first fill a page long before the gram sets could be intersected).
-- Returns {next offset (-1 when nothing is left), score of the last plate scanned ('' if none), plate, score, ...}.
local off, budget, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local low = ARGV[4] ~= '' and tonumber(ARGV[4]) or nil
local plain, pat = ARGV[5] == 'find', ARGV[6]
local out, scanned, found, last = {}, 0, 0, ''
local chunk = math.min(256, budget)
while scanned < budget and found < want do
  local page = redis.call('ZREVRANGE', KEYS[1], off, off + chunk - 1, 'WITHSCORES')
  if #page == 0 then off = -1; break end
  local whole = true
  for j = 1, #page, 2 do
    local plate, score = page[j], page[j + 1]
    if low and tonumber(score) < low then off = -1; break end
    off = off + 1; scanned = scanned + 1; last = score
    if string.find(plate, pat, 1, plain) then out[#out + 1] = plate; out[#out + 1] = score; found = found + 1 end
    if found >= want then whole = j + 1 >= #page; break end
  end
  if off < 0 then break end
  if whole and #page < 2 * chunk then off = -1; break end
  chunk = math.min(chunk * 2, 4096)
end
local res = {tostring(off), last}
for j = 1, #out do res[#res + 1] = out[j] end
return res
"""

PLATE_SAMPLE = r"""
-- KEYS: gram sets, smallest first. ARGV: sample size, match mode ('find' | 'match'), pattern.
-- Returns {members sampled, of which in every gram set and matching the pattern}: estimates how many plates a
-- partial query matches, so the searcher can choose between walking newest first and intersecting.
local sample = redis.call('SRANDMEMBER', KEYS[1], tonumber(ARGV[1]))
local plain, pat, hits = ARGV[2] == 'find', ARGV[3], 0
for _, plate in ipairs(sample) do
  local ok = true
  for k = 2, #KEYS do
    if redis.call('SISMEMBER', KEYS[k], plate) == 0 then ok = false; break end
  end
  if ok and string.find(plate, pat, 1, plain) then hits = hits + 1 end
end
return {#sample, hits}
"""

SERIES_REBUILD = _render(r"""
-- KEYS: last-seen zset; ARGV: rank offset, count. (Re)builds the series-bigram sorted sets of a batch of distinct
-- plates from their last-seen scores (for stores written before those sets existed). Returns the next offset or -1.
local page = redis.call('ZRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1, 'WITHSCORES')
for j = 1, #page, 2 do
  for _, g in ipairs(series(page[j])) do redis.call('ZADD', SERIES .. g, 'GT', page[j + 1], page[j]) end
end
if #page < 2 * tonumber(ARGV[2]) then return -1 end
return tonumber(ARGV[1]) + tonumber(ARGV[2])
""")

PLATE_READ = r"""
-- KEYS: sighting zsets. ARGV: high, low, per-key limit, '1' newest first else oldest first.
-- Returns, per key, the number of sightings read followed by member, score pairs (one flat array of strings:
-- much cheaper for the client than one reply per plate).
local out = {}
for _, key in ipairs(KEYS) do
  local rows
  if ARGV[4] == '1' then
    rows = redis.call('ZREVRANGEBYSCORE', key, ARGV[1], ARGV[2], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
  else
    rows = redis.call('ZRANGEBYSCORE', key, ARGV[2], ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
  end
  out[#out + 1] = #rows / 2
  for j = 1, #rows do out[#out + 1] = rows[j] end
end
return out
"""
