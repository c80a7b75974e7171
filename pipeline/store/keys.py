"""Redis key layout of the event store (the single source of truth for key names).

Events (written by the engine through :class:`pipeline.store.EventStore`, read by the API)
-------------------------------------------------------------------------------------------------
``events:plates``            STREAM  one entry per *current* plate-event version; fields are the PlateEvent fields
                                     (flat, so the stream's listpack shares field names; lists as JSON). Trimmed with
                                     ``XADD MAXLEN ~ events_maxlen``. A higher version XADDs a new entry and XDELs the
                                     old one, so the stream holds each event once.
``plates:ev``                HASH    event_id -> ``"{version}\\t{plate}\\t{member}"``: the current version (idempotency
                                     per (event_id, version)) and where the event is indexed (to remove stale entries).
``plates:distinct``          SET     every distinct normalised plate that has at least one sighting.
``plates:last``              ZSET    distinct plate -> latest frame_time (an upper bound; ``ZADD GT``). Lets a search
                                     with thousands of matching plates read only the most recently seen ones.
``plate:s:{plate}``          ZSET    sightings of one plate: score = frame_time (epoch s), member =
                                     ``"{stream_id}|{camera_id}|{confidence}|{vehicle_class}|{province}"`` so the API
                                     filters (camera, confidence, class, province, time) without reading records, and
                                     reads the record with ``XRANGE events:plates {stream_id} {stream_id}``.
                                     Exact search = one ZREVRANGEBYSCORE; plate history = ZRANGEBYSCORE.
``plates:g:{gram}``          SET     distinct plates containing the 2- or 3-gram (partial and wildcard search: SINTER
                                     then verify each candidate with the compiled pattern).
``plates:d:{variant}``       SET     distinct plates whose *folded* text (look-alikes mapped to one canonical char) is
                                     ``variant`` or becomes it by deleting one character (symmetric-delete index: fuzzy
                                     candidates for any weighted distance < 2, then exact weighted distance).
``events:faces``             STREAM  one entry per current face-event version; ``embedding`` is float32 bytes.
``faces:ev``                 HASH    event_id -> ``"{version}\\t{stream_id}"``.

Alerts
------
``alerts``                   STREAM  every alert (the backlog the control room replays from a given id).
``alerts:idx``               HASH    alert_id -> stream id (idempotency, acknowledgement lookup).
``alerts:acks``              HASH    alert_id -> JSON {by, note, at}.
``alerts:live``              PUBSUB  channel; message = JSON {"id": stream_id, "alert": Alert}.

Watchlists and persons (written by the API, read by the engine through :class:`pipeline.store.WatchlistStore`)
-----------------------------------------------------------------------------------------------------------------
``wl:ids``                   SET     watchlist ids.
``wl:{id}``                  HASH    watchlist metadata: id, kind (plate|face), name, description, created_at, ...
``wl:{id}:entries``          HASH    entry_id -> JSON entry (plate entries; face entries reference a person_id).
``person:ids``               SET     person ids.
``person:{id}``              HASH    name, notes, created_at, updated_at, dim, embeddings (k x d float32 bytes).
``wl:version``               STRING  INCR on every watchlist/person change (engine caches entries per version).

API-side keys (owned by ``api/``): ``user:*``, ``users``, ``token:*``, ``apikey:*``, ``rl:*``, ``audit``,
``export:*``, ``case:*`` (documented in ``api/store.py``).
"""

from __future__ import annotations

PLATE_STREAM = "events:plates"
PLATE_EVENTS = "plates:ev"
PLATE_DISTINCT = "plates:distinct"
PLATE_LAST_SEEN = "plates:last"
FACE_STREAM = "events:faces"
FACE_EVENTS = "faces:ev"
ALERT_STREAM = "alerts"
ALERT_INDEX = "alerts:idx"
ALERT_ACKS = "alerts:acks"
ALERT_CHANNEL = "alerts:live"
WATCHLIST_IDS = "wl:ids"
WATCHLIST_VERSION = "wl:version"
PERSON_IDS = "person:ids"


def plate_sightings(plate: str) -> str:
    """Sorted set of one plate's sightings (score = frame time)."""
    return f"plate:s:{plate}"


def plate_gram(gram: str) -> str:
    """Set of distinct plates containing ``gram``."""
    return f"plates:g:{gram}"


def plate_variant(variant: str) -> str:
    """Set of distinct plates in the symmetric-delete neighbourhood bucket ``variant``."""
    return f"plates:d:{variant}"


def watchlist(watchlist_id: str) -> str:
    """Hash of a watchlist's metadata."""
    return f"wl:{watchlist_id}"


def watchlist_entries(watchlist_id: str) -> str:
    """Hash entry_id -> JSON of a watchlist's entries."""
    return f"wl:{watchlist_id}:entries"


def person(person_id: str) -> str:
    """Hash of an enrolled person."""
    return f"person:{person_id}"
