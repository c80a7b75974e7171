"""Plate search over the indexes written by :class:`pipeline.store.EventStore` (the API's reader side).

Results are newest first and paginated, so a search never needs every match. Broad partial and wildcard queries
(large gram sets, e.g. a two-letter series) walk a time-ordered set newest first (the series set ``plates:gz:*`` of
a two-letter series in the query, else all distinct plates, ``plates:last``) in a server-side
script that matches the compiled pattern and returns a bounded batch; their sightings are read with one pipelined
ZREVRANGEBYSCORE each, and the walk stops as soon as the page's oldest hit is newer than anything an unread plate
can hold (its score + :data:`pipeline.store.keys.LAST_SEEN_SLACK_S`). Selective ones intersect the gram sets and
read the few matches newest first the same way. Exact search reads one sorted set; fuzzy search takes the union of
symmetric-delete buckets and the weighted distance.
Only the page's records are read from the stream. Every step is bounded, so no query can stall Redis.

``plates_matched`` counts the distinct plates with a sighting that passes the filters (time window, cameras, camera
scope, class, province, confidence), never a plate whose text matches but which was read only outside them. When a
page is answered early, ``complete`` is False: ``total`` is None, ``plates_matched`` counts only the plates among the
hits read so far (a lower bound) and ``has_more`` says that further pages may exist.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Literal

import redis

from pipeline.events import PlateEvent
from pipeline.plates.fuzzy import deletion_variants, fold, plate_distance
from pipeline.plates.grams import PlatePattern, QueryError, compile_query
from pipeline.plates.keyboard import thai_plate_query
from pipeline.store import codec, keys, lua
from pipeline.store.plates import is_series_bigram, normalise_plate

logger = logging.getLogger(__name__)

Mode = Literal["auto", "exact", "partial", "fuzzy"]
MAX_FUZZY_DISTANCE = 1.9
"""The symmetric-delete index finds every plate within a weighted distance below 2 (one non-look-alike edit)."""


@dataclass
class PlateFilters:
    """Filters applied to sightings (all optional).

    ``scope`` is the set of cameras the caller may see (None: every camera). ``cameras`` already lies within it;
    ``scope`` also bounds what the counts tell: a search's ``plates_matched`` counts only the plates with a
    matching sighting (in the time window) on those cameras and a plate history finds only a plate read on one of
    them, so a camera-limited caller learns nothing about reads on other cameras.
    """

    cameras: set[str] | None = None
    scope: set[str] | None = None
    start: float | None = None
    end: float | None = None
    province: str | None = None
    min_confidence: float | None = None
    vehicle_class: str | None = None

    def accepts(self, camera: str, confidence: float, vehicle_class: str, province: str) -> bool:
        """Whether a sighting with these member fields passes the filters (time is filtered by Redis)."""
        if self.cameras is not None and camera not in self.cameras:
            return False
        if self.min_confidence is not None and confidence < self.min_confidence:
            return False
        if self.vehicle_class is not None and vehicle_class != self.vehicle_class:
            return False
        return self.province is None or province == self.province


@dataclass
class PlateHit:
    """One sighting matching a query."""

    stream_id: str
    plate: str
    frame_time: float
    camera_id: str
    confidence: float
    vehicle_class: str
    province: str
    distance: float = 0.0


@dataclass
class PlateSearchResult:
    """A page of hits, newest first (or by distance), with totals.

    ``total`` is the exact number of matching sightings when every match was read (``complete``), else None;
    ``plates_matched`` is exact when ``complete``, else a lower bound; ``has_more``: more hits may follow this page.
    """

    hits: list[PlateHit]
    total: int | None
    plates_matched: int
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    complete: bool = True
    has_more: bool = False


@dataclass
class _Codes:
    """The filters translated into member codes (None: no constraint; empty set: nothing can match)."""

    cameras: set[str] | None
    vehicle_class: str | None
    province: str | None
    min_confidence: float | None

    def accepts(self, camera: str, confidence: str, vehicle_class: str, province: str) -> bool:
        if self.cameras is not None and camera not in self.cameras:
            return False
        if self.min_confidence is not None and float(confidence) < self.min_confidence:
            return False
        if self.vehicle_class is not None and vehicle_class != self.vehicle_class:
            return False
        return self.province is None or province == self.province

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.cameras, self.vehicle_class, self.province, self.min_confidence))


_NO_CODE = "\x00none"
Cursor = tuple[float, str]
"""A keyset cursor: the (frame_time, stream_id) of the last hit shown (see :func:`cursor_of`)."""
MAX_CURSOR_TIES = 8 * 4 ** 4
"""Most hits at the cursor's very time a cursor page reads past (more hits sharing one frame time are not stored)."""
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


class PlateSearcher:
    """Reads plate indexes; see the module docstring.

    Args:
        client: redis-py client of the event store.
        max_scan: most gram-set members one partial/wildcard search may walk (then ``truncated``).
        max_sightings_per_plate: most sightings read per plate when the page needs filtering in Python.
        small_set: fuzzy candidate sets up to this size are read at once.
        walk_budget: plates one server-side walk step may scan (bounds each script's run time).
        small_gram_set: partial queries whose smallest gram set is at most this size always intersect.
        strategy: partial/wildcard strategy: ``auto`` (by the gram set sizes), or always ``walk``/``intersect``.
        sample_size: ``auto``: members of the smallest gram set sampled to estimate how many plates match.
        first_sightings: sightings read per walked plate at first (all of a plate's are read if it reaches the page).
        history_chunk: sightings one Redis read of a filtered plate history returns.
        max_history_scan: most sightings a filtered plate history reads (then ``complete`` is False).
    """

    def __init__(self, client: redis.Redis, max_scan: int = 2_000_000, max_sightings_per_plate: int = 1000,
                 small_set: int = 64, walk_budget: int = 20_000, small_gram_set: int = 2000,
                 strategy: Literal["auto", "walk", "intersect"] = "auto", sample_size: int = 128,
                 first_sightings: int = 4, history_chunk: int = 5000, max_history_scan: int = 1_000_000):
        self.client = client
        self.history_chunk = history_chunk
        self.max_history_scan = max_history_scan
        self.small_set = small_set
        self.max_scan = max_scan
        self.max_candidates = max_scan
        self.max_sightings_per_plate = max_sightings_per_plate
        self.walk_budget = walk_budget
        self.small_gram_set = small_gram_set
        self.strategy = strategy
        self.sample_size = sample_size
        self.first_sightings = first_sightings
        self._sample = client.register_script(lua.PLATE_SAMPLE)
        self._walk = client.register_script(lua.PLATE_WALK)
        self._read = client.register_script(lua.PLATE_READ)
        self._names: dict[str, str] = {}

    # -- member codes -----------------------------------------------------------------------------------------
    def _camera_codes(self, cameras: set[str]) -> set[str]:
        """The member codes of ``cameras`` (cameras without a code have no sighting and are left out)."""
        fields = [("c" + c) for c in sorted(cameras)]
        codes = self.client.hmget(keys.PLATE_CODES, fields) if fields else []
        return {code.decode() for code in codes if code is not None}

    def _codes(self, filters: PlateFilters) -> _Codes:
        wanted = [("c" + c) for c in sorted(filters.cameras or ())]
        singles = [("v" + filters.vehicle_class) if filters.vehicle_class is not None else None,
                   ("p" + filters.province) if filters.province is not None else None]
        fields = wanted + [f for f in singles if f is not None]
        found = dict(zip(fields, self.client.hmget(keys.PLATE_CODES, fields), strict=True)) if fields else {}

        def one(f: str | None) -> str | None:
            if f is None:
                return None
            code = found.get(f)
            return code.decode() if code is not None else _NO_CODE

        cameras = None if filters.cameras is None else {found[f].decode() for f in wanted if found[f] is not None}
        return _Codes(cameras, one(singles[0]), one(singles[1]), filters.min_confidence)

    def _decode_names(self, hits: list[PlateHit]) -> None:
        """Replace the camera/class/province codes of ``hits`` by their text (one HMGET for unknown codes)."""
        missing = sorted({f"{kind}{code}" for h in hits for kind, code in
                          (("c", h.camera_id), ("v", h.vehicle_class), ("p", h.province)) if code} - set(self._names))
        if missing:
            for f, text in zip(missing, self.client.hmget(keys.PLATE_CODES_REVERSE, missing), strict=True):
                self._names[f] = text.decode() if text is not None else f[1:]
        for h in hits:
            h.camera_id = self._names.get("c" + h.camera_id, "") if h.camera_id else ""
            h.vehicle_class = self._names.get("v" + h.vehicle_class, "") if h.vehicle_class else ""
            h.province = self._names.get("p" + h.province, "") if h.province else ""

    # -- candidates -------------------------------------------------------------------------------------------
    def exact_candidates(self, plate: str) -> dict[str, float]:
        """{plate: 0} if the normalised plate has sightings."""
        plate = normalise_plate(_compat(plate))
        return {plate: 0.0} if plate and self.client.zscore(keys.PLATE_LAST_SEEN, plate) is not None else {}

    def fuzzy_candidates(self, query: str, max_distance: float) -> dict[str, float]:
        """Plates within ``max_distance`` (weighted, < 2) of ``query``, with their distance."""
        query = normalise_plate(_compat(query))
        if not query:
            return {}
        variants = sorted(deletion_variants(fold(query)))
        raw = self.client.sunion([keys.plate_variant(v) for v in variants])
        out = {}
        for plate in (r.decode() for r in raw):
            distance = plate_distance(query, plate)
            if distance <= max_distance:
                out[plate] = distance
        return out

    # -- sightings --------------------------------------------------------------------------------------------
    def _read_sightings(self, plates: dict[str, float], names: list[str], filters: PlateFilters, codes: _Codes,
                        newest_first: bool, per_plate: int, capped: dict[str, float] | None = None
                        ) -> list[PlateHit]:
        """Filtered sightings of ``names`` (at most ``per_plate`` each), with member codes still encoded.

        ``capped`` (if given) receives plate -> score of the last sighting read, for plates that had more.
        """
        low = "-inf" if filters.start is None else repr(float(filters.start))
        high = "+inf" if filters.end is None else repr(float(filters.end))
        hits: list[PlateHit] = []
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            reply = self._read(keys=[keys.plate_sightings(p) for p in chunk],
                               args=[high, low, per_plate, "1" if newest_first else "0"])
            j = 0
            for plate in chunk:
                n = int(reply[j])
                distance = plates[plate]
                for k in range(j + 1, j + 1 + 2 * n, 2):
                    sid, camera, conf, vclass, province = reply[k].decode().split("|", 4)
                    if codes.accepts(camera, conf, vclass, province):
                        hits.append(PlateHit(sid, plate, float(reply[k + 1]), camera, float(conf), vclass, province,
                                             distance))
                if capped is not None and n == per_plate:
                    capped[plate] = float(reply[j + 2 * n])
                j += 1 + 2 * n
        return hits

    def _count(self, names: list[str], filters: PlateFilters) -> int:
        """Sightings of ``names`` in the time filter (ZCOUNT; exact without reading them)."""
        low = "-inf" if filters.start is None else repr(float(filters.start))
        high = "+inf" if filters.end is None else repr(float(filters.end))
        pipe = self.client.pipeline(transaction=False)
        for plate in names:
            pipe.zcount(keys.plate_sightings(plate), low, high)
        return int(sum(pipe.execute()))

    def _per_plate(self, codes: _Codes, need: int) -> int:
        """Sightings to read per plate: the page size when Redis does all the filtering (time), else the bound."""
        return self.max_sightings_per_plate if codes.any else max(min(need, self.max_sightings_per_plate), 1)

    def sightings(self, plates: dict[str, float], filters: PlateFilters, newest_first: bool = True
                  ) -> list[PlateHit]:
        """Every filtered sighting of the candidate plates (bounded per plate), in time order, decoded."""
        codes = self._codes(filters)
        hits = self._read_sightings(plates, list(plates), filters, codes, newest_first, self.max_sightings_per_plate)
        hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=newest_first)
        self._decode_names(hits)
        return hits

    @staticmethod
    def _page_done(hits: list[PlateHit], need: int, bound: float) -> bool:
        """Whether the ``need`` newest hits are final: every unread plate's sightings are no newer than ``bound``."""
        return len(hits) >= need and bound < hits[need - 1].frame_time

    def newest_sightings(self, plates: dict[str, float], filters: PlateFilters, need: int
                         ) -> tuple[list[PlateHit], int | None]:
        """The ``need`` newest filtered sightings of many plates, and the total (None if not all were read).

        Plates are read in order of their coarse last-seen score (``plates:last``) in growing batches, stopping once
        the ``need``-th newest hit is newer than ``score + LAST_SEEN_SLACK_S`` of every plate not read yet.
        """
        codes = self._codes(filters)
        per_plate = self._per_plate(codes, need)
        if len(plates) <= self.small_set:
            # without member filters every sighting read is a hit, so ``need`` per plate fills any page the API
            # allows (a busy plate's deeper pages must not end at ``max_sightings_per_plate`` while total says more)
            capped: dict[str, float] = {}
            hits = self._read_sightings(plates, list(plates), filters, codes, True,
                                        per_plate if codes.any else max(need, 1), capped)
            hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=True)
            self._decode_names(hits)
            if not codes.any:
                return hits, self._count(list(plates), filters)
            return hits, None if capped else len(hits)  # a plate had more than it was read: total unknown
        names = list(plates)
        last: list[tuple[float, str]] = []
        for i in range(0, len(names), 10_000):
            chunk = names[i:i + 10_000]
            for plate, score in zip(chunk, self.client.zmscore(keys.PLATE_LAST_SEEN, chunk), strict=True):
                if score is not None and (filters.start is None or score + keys.LAST_SEEN_SLACK_S >= filters.start):
                    last.append((score, plate))
        last.sort(reverse=True)
        hits: list[PlateHit] = []
        first = per_plate if codes.any else min(per_plate, self.first_sightings)
        capped: dict[str, float] = {}
        i, batch = 0, max(need, 32)
        while i < len(last):
            chunk = [plate for _, plate in last[i:i + batch]]
            hits += self._read_sightings(plates, chunk, filters, codes, True, first,
                                         capped if first < per_plate else None)
            i += len(chunk)
            batch *= 2
            hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=True)
            if i < len(last) and self._page_done(hits, need, last[i][0] + keys.LAST_SEEN_SLACK_S):
                hits = self._complete_capped(hits, capped, need, filters, codes, per_plate)
                if self._page_done(hits, need, last[i][0] + keys.LAST_SEEN_SLACK_S):
                    self._decode_names(hits[:need])
                    return hits[:need], None
        hits = self._complete_capped(hits, capped, need, filters, codes, per_plate)
        self._decode_names(hits)
        return hits, len(hits) if codes.any else self._count([p for _, p in last], filters)

    def partial_sightings(self, query: str, filters: PlateFilters, need: int
                          ) -> tuple[list[PlateHit], int | None, int, bool]:
        """Newest ``need`` sightings of plates matching a partial/wildcard query (QueryError if refused).

        Selective queries (a small gram set) intersect the gram sets and read the matches newest first. For larger
        ones a server-side sample of the smallest gram set estimates how many plates match; the searcher then walks
        the distinct plates newest first (a broad query fills its page after need x distinct / matches plates) when
        that is cheaper than intersecting, else intersects. A walk that has not settled the page after twice the
        expected scan hands over to the intersection, so a bad estimate costs at most a constant factor.
        Returns (hits, total or None when answered early, plates matched so far, truncated).
        """
        pattern = compile_query(query)
        grams = sorted(pattern.index_grams())
        gram_keys = [keys.plate_gram(g) for g in grams]
        series = [keys.plate_series(g) for g in grams if is_series_bigram(g)]
        pipe = self.client.pipeline(transaction=False)
        for key in gram_keys:
            pipe.scard(key)
        pipe.zcard(keys.PLATE_LAST_SEEN)
        for key in series:
            pipe.zcard(key)
        replies = pipe.execute()
        sizes, distinct = replies[:len(gram_keys)], replies[len(gram_keys)]
        if not gram_keys or min(sizes) == 0:
            return [], 0, 0, False
        codes = self._codes(filters)
        if codes.cameras == set() or _NO_CODE in (codes.vehicle_class, codes.province):
            return [], 0, 0, False
        # walk the smallest time-ordered set that holds every match: a series set, else all distinct plates
        # (only a series set as complete as its gram set: a store written before series sets existed has none)
        gram_size = dict(zip(grams, sizes, strict=True))
        complete = [(n, key) for n, key, g in zip(replies[len(gram_keys) + 1:], series,
                                                  [g for g in grams if is_series_bigram(g)], strict=True)
                    if n == gram_size[g]]
        source_size, source = min(complete, default=(distinct, keys.PLATE_LAST_SEEN))
        gram_keys = [k for _, k in sorted(zip(sizes, gram_keys, strict=True))]
        smallest = min(sizes)
        limit = self.max_scan if self.strategy == "walk" else 0
        if self.strategy == "auto" and (smallest > self.small_gram_set or source != keys.PLATE_LAST_SEEN):
            mode, server_pattern = pattern.server_match()
            sampled, matched = self._sample(keys=gram_keys, args=[self.sample_size, mode, server_pattern])
            estimate = smallest * int(matched) / max(int(sampled), 1)
            if estimate > 0:
                walk_scan = 2 * need * source_size / estimate
                intersect_cost = smallest * len(gram_keys) + estimate
                if walk_scan < intersect_cost:
                    limit = int(2 * walk_scan) + 1000
        if limit:
            walked = self._walk_newest(source, pattern, filters, codes, need, limit)
            if walked is not None:
                return walked
        raw = self.client.sinter(gram_keys)
        plates = {p: 0.0 for p in sorted(r.decode() for r in raw) if pattern.matches(p)}
        hits, total = self.newest_sightings(plates, filters, need)
        return hits, total, len(plates), False

    def _walk_newest(self, source: str, pattern: PlatePattern, filters: PlateFilters, codes: _Codes, need: int,
                     limit: int) -> tuple[list[PlateHit], int | None, int, bool] | None:
        """The newest-first walk; None if ``limit`` plates were scanned without settling the page."""
        mode, server_pattern = pattern.server_match()
        per_plate = self._per_plate(codes, need)
        # read a few sightings per plate first; plates with more are re-read in full only if they reach the page
        first = per_plate if codes.any else min(per_plate, self.first_sightings)
        capped: dict[str, float] = {}
        low = "" if filters.start is None else repr(float(filters.start) - keys.LAST_SEEN_SLACK_S)
        hits: list[PlateHit] = []
        matched: set[str] = set()
        offset, want = 0, max(2 * need, 64)  # a page usually settles in one step: plates beyond it bound the page
        while True:
            reply = self._walk(keys=[source],
                               args=[offset, self.walk_budget, want, low, mode, server_pattern])
            offset = int(reply[0])
            new = {p: 0.0 for p in (reply[j].decode() for j in range(2, len(reply), 2))
                   if p not in matched and pattern.matches(p)}
            matched.update(new)
            if new:
                hits += self._read_sightings(new, list(new), filters, codes, True, first,
                                             capped if first < per_plate else None)
                hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=True)
            if offset < 0:
                hits = self._complete_capped(hits, capped, need, filters, codes, per_plate)
                self._decode_names(hits)
                total = len(hits) if codes.any else self._count(sorted(matched), filters)
                return hits, total, len(matched), False
            bound = float(reply[1]) + keys.LAST_SEEN_SLACK_S if reply[1] else float("inf")
            if self._page_done(hits, need, bound):
                hits = self._complete_capped(hits, capped, need, filters, codes, per_plate)
                if self._page_done(hits, need, bound):
                    self._decode_names(hits[:need])
                    return hits[:need], None, len(matched), False
            if offset >= limit:
                if limit < self.max_scan:
                    return None
                hits = self._complete_capped(hits, capped, need, filters, codes, per_plate)
                self._decode_names(hits[:need])
                return hits[:need], None, len(matched), True
            want = min(want * 2, 4096)

    def _complete_capped(self, hits: list[PlateHit], capped: dict[str, float], need: int, filters: PlateFilters,
                         codes: _Codes, per_plate: int) -> list[PlateHit]:
        """Re-read in full (up to ``per_plate``) the capped plates whose unread sightings could enter the page."""
        cut = hits[need - 1].frame_time if len(hits) >= need else float("-inf")
        stale = [p for p, oldest in capped.items() if oldest >= cut]
        if not stale:
            return hits
        for p in stale:
            del capped[p]
        gone = set(stale)
        hits = [h for h in hits if h.plate not in gone]
        hits += self._read_sightings(dict.fromkeys(stale, 0.0), stale, filters, codes, True, per_plate)
        hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=True)
        return hits

    def search(self, query: str, mode: Mode = "auto", filters: PlateFilters | None = None, offset: int = 0,
               limit: int = 50, max_distance: float = 1.0, order: Literal["time", "distance"] = "time",
               before: Cursor | None = None) -> PlateSearchResult:
        """Search plates; ``mode`` auto = wildcard if the query has ``?``/``*``, else partial (substring).

        ``total`` is None (and ``complete`` False) when the page could be answered without reading every match.
        ``before`` (newest-first order only) pages by keyset: only hits older than that one (the previous page's
        last hit, :func:`cursor_of`) are answered, ``offset`` counting from there; a page read this way neither
        repeats nor skips a hit when new reads arrive between pages (offsets alone shift by every new read).
        Its ``total`` and ``plates_matched`` count the hits from the cursor on.
        """
        filters = filters or PlateFilters()
        if mode in ("exact", "fuzzy") and not normalise_plate(_compat(query)):
            raise QueryError("query holds no plate character (Thai consonant, digit or Latin letter)")
        if before is not None:
            return self._search_before(query, mode, filters, offset, limit, max_distance, before)
        truncated = False
        notes: list[str] = []
        need = offset + limit
        if mode in ("auto", "partial"):
            hits, total, _, truncated = self.partial_sightings(normalise_query(query), filters, need + 1)
            if truncated:
                notes.append(f"the search stopped after {self.max_scan} candidate plates; refine the query")
            return self._page(hits, total, _matched_plates(hits), truncated, notes, offset, limit)
        if mode == "exact":
            plates = self.exact_candidates(query)
        else:
            plates = self.fuzzy_candidates(query, min(max_distance, MAX_FUZZY_DISTANCE))
            if len(plates) > self.max_scan:
                kept = sorted(plates.items(), key=lambda kv: (kv[1], kv[0]))[: self.max_scan]
                plates, truncated = dict(kept), True
                notes.append(f"more than {self.max_scan} plates match; refine the query")
        if order == "distance":
            hits = self.sightings(plates, filters)
            hits.sort(key=lambda h: h.distance)
            total: int | None = len(hits)
        else:
            hits, total = self.newest_sightings(plates, filters, need + 1)
        return self._page(hits, total, _matched_plates(hits), truncated, notes, offset, limit)

    def layout_suggestion(self, query: str, mode: Mode = "auto", filters: PlateFilters | None = None,
                          max_distance: float = 1.0) -> str | None:
        """The Thai plate query ``query`` was meant to be when it was typed with the English keyboard layout on
        (:func:`pipeline.plates.keyboard.thai_plate_query`, ``1d-1234`` for ``1กข1234``) and that query has hits
        (with the same mode and filters); else None. Call it only for a query that found nothing: a query with
        Latin letters may be a foreign plate, so it is never rewritten, only answered with this suggestion."""
        thai = thai_plate_query(query)
        if thai is None:
            return None
        try:
            found = self.search(thai, mode=mode, filters=filters, limit=1, max_distance=max_distance)
        except QueryError:
            return None
        return thai if found.hits else None

    def _search_before(self, query: str, mode: Mode, filters: PlateFilters, offset: int, limit: int,
                       max_distance: float, before: Cursor) -> PlateSearchResult:
        """:meth:`search` newest first from ``before`` on: the window ends at the cursor's time and the hits at
        that very time that are not older than the cursor (already shown) are dropped, reading more while a
        whole batch of them was dropped."""
        when, sid = before
        bounded = replace(filters, end=when if filters.end is None else min(filters.end, when))
        extra = 8
        while True:
            result = self.search(query, mode, bounded, offset=0, limit=offset + limit + extra,
                                 max_distance=max_distance)
            kept = [h for h in result.hits if (h.frame_time, h.stream_id) < (when, sid)]
            dropped = len(result.hits) - len(kept)
            if dropped < extra or not result.has_more or extra >= MAX_CURSOR_TIES:
                break
            extra *= 4
        total = None if result.total is None else result.total - dropped
        page = kept[offset:offset + limit]
        # plates seen only at the cursor's time, on hits already shown (the rare case of several hits at one time)
        shown_only = {h.plate for h in result.hits[:dropped]} - {h.plate for h in kept}
        return PlateSearchResult(hits=page, total=total, plates_matched=result.plates_matched - len(shown_only),
                                 truncated=result.truncated, notes=result.notes, complete=result.complete,
                                 has_more=len(kept) > offset + limit or result.has_more)

    @staticmethod
    def _page(hits: list[PlateHit], total: int | None, matched: int, truncated: bool, notes: list[str],
              offset: int, limit: int) -> PlateSearchResult:
        complete = total is not None
        if not complete:
            notes.append("answered from the newest matches: total is unknown and plates_matched is a lower bound")
        return PlateSearchResult(hits=hits[offset:offset + limit], total=total, plates_matched=matched,
                                 truncated=truncated, notes=notes, complete=complete,
                                 has_more=len(hits) > offset + limit or not complete)

    def history(self, plate: str, filters: PlateFilters | None = None, offset: int = 0, limit: int = 200
                ) -> PlateSearchResult:
        """Every sighting of one plate across cameras, oldest first, paged in Redis.

        Without member filters (camera, class, province, confidence) the page is one ZRANGEBYSCORE ... LIMIT and the
        total one ZCOUNT, however many sightings the plate has. With them the sightings in the time range are read
        in chunks of ``history_chunk`` and filtered here, at most ``max_history_scan`` of them (beyond that
        ``complete`` is False and ``total`` None).
        """
        filters = filters or PlateFilters()
        plates = self.exact_candidates(plate)
        if not plates:
            return PlateSearchResult(hits=[], total=0, plates_matched=0)
        name = next(iter(plates))
        key = keys.plate_sightings(name)
        low = "-inf" if filters.start is None else repr(float(filters.start))
        high = "+inf" if filters.end is None else repr(float(filters.end))
        codes = self._codes(filters)
        if not self._seen_in_scope(key, filters.scope):  # read only on other cameras: as if never read
            return PlateSearchResult(hits=[], total=0, plates_matched=0)
        if codes.cameras == set() or _NO_CODE in (codes.vehicle_class, codes.province):
            return PlateSearchResult(hits=[], total=0, plates_matched=1)
        hits: list[PlateHit] = []
        complete = True
        if not codes.any:
            pipe = self.client.pipeline(transaction=False)
            pipe.zcount(key, low, high)
            pipe.zrangebyscore(key, low, high, start=offset, num=limit, withscores=True)
            total, rows = pipe.execute()
            hits = [_member_hit(name, member, score) for member, score in rows]
            total = int(total)
        else:
            total, read = 0, 0
            while True:
                rows = self.client.zrangebyscore(key, low, high, start=read, num=self.history_chunk, withscores=True)
                read += len(rows)
                for member, score in rows:
                    sid, camera, conf, vclass, province = member.decode().split("|", 4)
                    if codes.accepts(camera, conf, vclass, province):
                        if offset <= total < offset + limit:
                            hits.append(PlateHit(sid, name, float(score), camera, float(conf), vclass, province))
                        total += 1
                if len(rows) < self.history_chunk:
                    break
                if read >= self.max_history_scan:
                    logger.info("history of %s stopped after %s sightings", name, read)
                    complete = False
                    break
        self._decode_names(hits)
        notes = [] if complete else [f"the history stopped after {self.max_history_scan} sightings of the filtered "
                                     "plate; narrow the time range"]
        return PlateSearchResult(hits=hits, total=total if complete else None, plates_matched=1, notes=notes,
                                 complete=complete, has_more=total > offset + limit or not complete)

    def _seen_in_scope(self, key: str, scope: set[str] | None) -> bool:
        """Whether the sightings ``key`` hold one on a camera of ``scope`` (always, without a scope): at most
        ``max_history_scan`` sightings are read, newest first (a plate read only beyond that counts as unseen)."""
        if scope is None:
            return True
        wanted = self._camera_codes(scope)
        read = 0
        while wanted and read < self.max_history_scan:
            rows = self.client.zrevrange(key, read, read + self.history_chunk - 1)
            read += len(rows)
            if any(member.decode().split("|", 2)[1] in wanted for member in rows):
                return True
            if len(rows) < self.history_chunk:
                break
        return False

    def events(self, hits: list[PlateHit]) -> list[PlateEvent | None]:
        """The stored records of ``hits`` (None where the stream has been trimmed past them, or a record cannot be
        decoded)."""
        pipe = self.client.pipeline(transaction=False)
        for hit in hits:
            pipe.xrange(keys.PLATE_STREAM, hit.stream_id, hit.stream_id)
        out: list[PlateEvent | None] = []
        for entries in pipe.execute():
            out.append(codec.decode_or_none(PlateEvent, entries[0][1], entries[0][0]) if entries else None)
        return out


def cursor_of(hit: PlateHit) -> str:
    """The keyset cursor of ``hit`` (``<frame_time>_<stream_id>``): pass it as ``before`` for the next page."""
    return f"{hit.frame_time!r}_{hit.stream_id}"


def parse_cursor(text: str) -> Cursor:
    """The (frame_time, stream_id) of a :func:`cursor_of` text; QueryError when it is not one."""
    when, _, sid = text.partition("_")
    try:
        seconds = float(when)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or not _STREAM_ID.fullmatch(sid):
        raise QueryError("not a cursor of this search (pass the next_cursor of the previous page unchanged)")
    return seconds, sid


def split_province(query: str) -> tuple[str, str | None]:
    """(plate part, Thai province name) of a query that ends in a province name, as operators copy a plate from a
    report (``1กข 1234 กรุงเทพมหานคร``, ``1กข1234 Tak``); (query, None) when it does not.

    Only whole words after the first are tried, and only words without digits or wildcards, so a plate such as
    ``กข 12`` or ``1กข *`` is never mistaken for a province.
    """
    from pipeline.plates.provinces import match_province

    words = query.split()
    for k in range(1, len(words)):
        tail = " ".join(words[k:])
        if any(ch.isdigit() or ch in "?*？＊" for ch in tail):
            continue
        found = match_province(tail, max_ratio=0.2)
        if found is not None:
            return " ".join(words[:k]), found.thai
    return query, None


def _matched_plates(hits: list[PlateHit]) -> int:
    """``plates_matched`` of a search: the distinct plates among its filtered hits (every hit read, before paging),
    so a plate whose reads all lie outside the time window, the cameras or the caller's scope is not counted. Exact
    when every match was read (each plate with a passing sighting contributes at least one hit), else a lower
    bound."""
    return len({h.plate for h in hits})


def _compat(text: str) -> str:
    """``text`` in Unicode compatibility form (NFKC): full-width digits and Latin (``１ＡＢ``, typed with East Asian
    input methods), ligatures and circled digits become the ASCII the plate normaliser keeps instead of vanishing."""
    return unicodedata.normalize("NFKC", text)


def _member_hit(plate: str, member: bytes, score: float) -> PlateHit:
    """The (still encoded) hit of one ``plate:s:{plate}`` member."""
    sid, camera, conf, vclass, province = member.decode().split("|", 4)
    return PlateHit(sid, plate, float(score), camera, float(conf), vclass, province)


def normalise_query(query: str) -> str:
    """Normalise the literal runs of an operator query, keeping its ``?``/``*`` wildcards (full-width ones too)."""
    out, run = [], []
    for ch in _compat(query):
        if ch in "?*":
            out.append(normalise_plate("".join(run)) if run else "")
            out.append(ch)
            run = []
        else:
            run.append(ch)
    out.append(normalise_plate("".join(run)) if run else "")
    return "".join(out)
