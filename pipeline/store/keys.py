"""Redis key layout of the event store (the single source of truth for key names).

Events (written by the engine through :class:`pipeline.store.EventStore`, read by the API)
-------------------------------------------------------------------------------------------------
``events:plates``            STREAM  one entry per *current* plate-event version; fields are the PlateEvent fields
                                     (flat, so the stream's listpack shares field names; lists as JSON). Capped with
                                     ``XADD MAXLEN ~ events_maxlen``; retention by age is :meth:`EventStore.prune_before`
                                     and :meth:`EventStore.prune_trimmed` removes index entries of trimmed records. A
                                     higher version XADDs a new entry and XDELs the old one (the stream holds each event
                                     once). The stream keeps the full record of every stored read (crop, snapshot...).
``plates:ev``                HASH    event_id -> ``"{version}\\t{plate}\\t{member}"``: the current version (idempotency
                                     per (event_id, version)) and where the event is indexed (to remove stale entries).
``plates:last``              ZSET    distinct plate -> last-seen frame_time, *coarse*: it moves only when a sighting is
                                     more than :data:`LAST_SEEN_SLACK_S` newer, so the true last-seen time of a plate is
                                     at most ``score + LAST_SEEN_SLACK_S`` (searches stop on that bound). A plate is here
                                     iff it has at least one sighting (this is also the set of distinct plates).
``plate:s:{plate}``          ZSET    sightings of one plate: score = frame_time (epoch s), member =
                                     ``"{stream_id}|{camera}|{confidence}|{class}|{province}"`` where camera, class and
                                     province are short codes of :data:`PLATE_CODES` (compact members keep small sorted
                                     sets in Redis' listpack encoding). The API filters on the member without reading
                                     records and reads the record with ``XRANGE events:plates {stream_id} {stream_id}``.
                                     Exact search = one ZREVRANGEBYSCORE; plate history = ZRANGEBYSCORE.
``plates:codes``             HASH    ``"{kind}{text}"`` -> code (kind ``c`` camera, ``v`` vehicle class, ``p`` province)
                                     and ``"#{kind}"`` -> last code given; ``plates:codes:r`` HASH ``"{kind}{code}"`` ->
                                     text. Codes are assigned by the writer script on first use and never change.
``plates:g:{gram}``          SET     distinct plates containing the 2- or 3-gram (selective partial and wildcard queries:
                                     SINTER, then the compiled pattern; broad ones walk ``plates:last`` newest first).
``plates:gz:{bigram}``       ZSET    distinct plates containing the *series* bigram (two non-digit characters, e.g. the
                                     ``กข`` of ``1กข1234``), scored like ``plates:last``: the broadest partial queries
                                     (a two-letter series matches thousands of plates) read it newest first and stop
                                     once the page is full. One or two ZADDs per read; digit bigrams have no such set.
``plates:d:{variant}``       SET     distinct plates whose *folded* text (look-alikes mapped to one canonical char) is
                                     ``variant`` or becomes it by deleting one character (symmetric-delete index: fuzzy
                                     candidates for any weighted distance < 2, then exact weighted distance).
``events:faces``             STREAM  one entry per current face-event version; ``embedding`` is float32 bytes.
``faces:ev``                 HASH    event_id -> ``"{version}\\t{stream_id}"``.

Alerts
------
``alerts``                   STREAM  every alert (the backlog the control room replays from a given id).
``alerts:idx``               HASH    alert_id -> stream id (idempotency, acknowledgement lookup); entries of alerts the
                                     stream's cap trimmed are dropped by :meth:`EventStore.prune_trimmed_alerts`.
``alerts:acks``              HASH    alert_id -> JSON {by, note, at, notes: [{by, at, note}]}: the first acknowledgement
                                     (HSETNX: never overwritten); follow-up notes appended (WATCH/MULTI).
``alerts:face_media``        HASH    media path (relative to the recordings dir) of a face alert's crop -> stream id of the
                                     newest face alert referencing it, written in the alert's own script: the API serves
                                     a face crop to a role that may not list face events only when it is here and that
                                     alert is still in the stream on a camera the caller sees. Entries whose alert the
                                     stream's cap trimmed are dropped by :meth:`EventStore.prune_trimmed_alerts`.
``alerts:face_media:backfill`` HASH  the one-time indexing of face alerts stored before ``alerts:face_media`` existed
                                     (:mod:`pipeline.store.migrations`): ``cursor`` (last stream id indexed) and
                                     ``done`` (UTC time it finished; from then on start-up skips it). A STRING
                                     ``alerts:face_media:backfill:lock`` (PX) lets one starting process do it at a time.
``alerts:live``              PUBSUB  channel; message = JSON {"id": stream_id, "alert": Alert}.

Watchlists and persons (written by the API, read by the engine through :class:`pipeline.store.WatchlistStore`)
-----------------------------------------------------------------------------------------------------------------
``wl:ids``                   SET     watchlist ids.
``wl:{id}``                  HASH    watchlist metadata: id, kind (plate|face), name, description, created_at, ...
``wl:{id}:entries``          HASH    entry_id -> JSON entry (plate entries; face entries reference a person_id).
``person:ids``               SET     person ids.
``person:{id}``              HASH    name, notes, created_at, updated_at, dim, embeddings (k x d float32 bytes).
``wl:cooldown:{sha1}``       STRING  id of the plate alert that opened a watchlist alert window for one (watchlist, entry,
                                     camera, plate); PX = ``engine.watchlist_alert_cooldown_s``.
``wl:version``               STRING  INCR on every watchlist/person change (engine caches entries per version).

API-side keys (owned by ``api/``): ``user:*``, ``users``, ``token:*``, ``apikey:*``, ``rl:*``, ``audit``,
``export:*``, ``case:*`` (documented in ``api/store.py``).
"""

from __future__ import annotations

PLATE_STREAM = "events:plates"
PLATE_EVENTS = "plates:ev"
PLATE_LAST_SEEN = "plates:last"
PLATE_CODES = "plates:codes"
PLATE_CODES_REVERSE = "plates:codes:r"
SIGHTINGS_PREFIX = "plate:s:"
GRAM_PREFIX = "plates:g:"
VARIANT_PREFIX = "plates:d:"
SERIES_PREFIX = "plates:gz:"
LAST_SEEN_SLACK_S = 60.0
"""How far (seconds) a plate's true last-seen time may be ahead of its ``plates:last``/gram score."""
FACE_STREAM = "events:faces"
FACE_EVENTS = "faces:ev"
ALERT_STREAM = "alerts"
ALERT_INDEX = "alerts:idx"
ALERT_ACKS = "alerts:acks"
FACE_ALERT_MEDIA = "alerts:face_media"
FACE_ALERT_MEDIA_BACKFILL = "alerts:face_media:backfill"
FACE_ALERT_MEDIA_BACKFILL_LOCK = "alerts:face_media:backfill:lock"
ALERT_CHANNEL = "alerts:live"
WATCHLIST_IDS = "wl:ids"
WATCHLIST_VERSION = "wl:version"
PERSON_IDS = "person:ids"
RESTORE_MARKER = "restore:unfinished"
"""STRING (JSON) set while ``python -m pipeline restore`` writes: its journal, backup id and host
(:mod:`pipeline.store.backup`); present after a restore was killed, until ``restore --rollback``."""


def plate_sightings(plate: str) -> str:
    """Sorted set of one plate's sightings (score = frame time)."""
    return SIGHTINGS_PREFIX + plate


def plate_gram(gram: str) -> str:
    """Set of distinct plates containing ``gram``."""
    return GRAM_PREFIX + gram


def plate_series(bigram: str) -> str:
    """Sorted set of distinct plates containing the two-letter ``bigram`` (scored by coarse last-seen time)."""
    return SERIES_PREFIX + bigram


def plate_variant(variant: str) -> str:
    """Set of distinct plates in the symmetric-delete neighbourhood bucket ``variant``."""
    return VARIANT_PREFIX + variant


def watchlist(watchlist_id: str) -> str:
    """Hash of a watchlist's metadata."""
    return f"wl:{watchlist_id}"


def watchlist_entries(watchlist_id: str) -> str:
    """Hash entry_id -> JSON of a watchlist's entries."""
    return f"wl:{watchlist_id}:entries"


def person(person_id: str) -> str:
    """Hash of an enrolled person."""
    return f"person:{person_id}"
