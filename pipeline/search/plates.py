"""Plate search over the indexes written by :class:`pipeline.store.EventStore` (the API's reader side).

Candidate distinct plates come from the index that fits the query (exact: the plate's own sorted set; partial and
wildcard: SINTER of n-gram sets, then the compiled pattern; fuzzy: union of symmetric-delete buckets, then the
weighted distance). Their sightings are read with one pipelined ZREVRANGEBYSCORE each, filtered on the fields
encoded in the sorted-set member, merged newest first and paginated; only the page's records are read from the
stream. Every step is bounded (candidates, sightings per plate, page size), so no query can stall Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import redis

from pipeline.events import PlateEvent
from pipeline.search.fuzzy import deletion_variants, fold, plate_distance
from pipeline.search.grams import compile_query
from pipeline.store import codec, keys
from pipeline.store.plates import normalise_plate

logger = logging.getLogger(__name__)

Mode = Literal["auto", "exact", "partial", "fuzzy"]
MAX_FUZZY_DISTANCE = 1.9
"""The symmetric-delete index finds every plate within a weighted distance below 2 (one non-look-alike edit)."""


@dataclass
class PlateFilters:
    """Filters applied to sightings (all optional)."""

    cameras: set[str] | None = None
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
    """A page of hits, newest first (or by distance), with totals."""

    hits: list[PlateHit]
    total: int | None
    plates_matched: int
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


class PlateSearcher:
    """Reads plate indexes; see the module docstring."""

    def __init__(self, client: redis.Redis, max_candidates: int = 50_000, max_sightings_per_plate: int = 1000,
                 small_set: int = 64):
        self.client = client
        self.small_set = small_set
        self.max_candidates = max_candidates
        self.max_sightings_per_plate = max_sightings_per_plate

    # -- candidates -------------------------------------------------------------------------------------------
    def exact_candidates(self, plate: str) -> dict[str, float]:
        """{plate: 0} if the normalised plate has sightings."""
        plate = normalise_plate(plate)
        return {plate: 0.0} if plate and self.client.sismember(keys.PLATE_DISTINCT, plate) else {}

    def partial_candidates(self, query: str) -> tuple[dict[str, float], bool]:
        """Plates matching a partial or wildcard query (raises QueryError for a refused query)."""
        pattern = compile_query(query)
        grams = sorted(pattern.index_grams())
        raw = self.client.sinter([keys.plate_gram(g) for g in grams])
        plates = sorted(p for p in (r.decode() for r in raw) if pattern.matches(p))
        truncated = len(plates) > self.max_candidates
        return {p: 0.0 for p in plates[: self.max_candidates]}, truncated

    def fuzzy_candidates(self, query: str, max_distance: float) -> dict[str, float]:
        """Plates within ``max_distance`` (weighted, < 2) of ``query``, with their distance."""
        query = normalise_plate(query)
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
    def _read_sightings(self, plates: dict[str, float], names: list[str], filters: PlateFilters,
                        newest_first: bool) -> list[PlateHit]:
        low = "-inf" if filters.start is None else repr(float(filters.start))
        high = "+inf" if filters.end is None else repr(float(filters.end))
        pipe = self.client.pipeline(transaction=False)
        for plate in names:
            key = keys.plate_sightings(plate)
            if newest_first:
                pipe.zrevrangebyscore(key, high, low, start=0, num=self.max_sightings_per_plate, withscores=True)
            else:
                pipe.zrangebyscore(key, low, high, start=0, num=self.max_sightings_per_plate, withscores=True)
        hits: list[PlateHit] = []
        for plate, members in zip(names, pipe.execute(), strict=True):
            for member, score in members:
                sid, camera, conf, vclass, province = member.decode().split("|", 4)
                confidence = float(conf)
                if filters.accepts(camera, confidence, vclass, province):
                    hits.append(PlateHit(sid, plate, score, camera, confidence, vclass, province, plates[plate]))
        return hits

    def sightings(self, plates: dict[str, float], filters: PlateFilters, newest_first: bool = True
                  ) -> list[PlateHit]:
        """Every filtered sighting of the candidate plates (bounded per plate), in time order."""
        hits = self._read_sightings(plates, list(plates), filters, newest_first)
        hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=newest_first)
        return hits

    def newest_sightings(self, plates: dict[str, float], filters: PlateFilters, need: int
                         ) -> tuple[list[PlateHit], int | None]:
        """The ``need`` newest filtered sightings of many plates, and the total (None if not all were read).

        Plates are read in order of their last-seen time (``plates:last``) in growing batches, stopping once the
        ``need``-th newest hit is newer than every plate not read yet: a plate can only contribute sightings no
        newer than its last-seen time, so the page is exact without reading every plate.
        """
        if len(plates) <= self.small_set:
            hits = self.sightings(plates, filters)
            return hits, len(hits)
        names = list(plates)
        last: list[tuple[float, str]] = []
        for i in range(0, len(names), 10_000):
            chunk = names[i:i + 10_000]
            for plate, score in zip(chunk, self.client.zmscore(keys.PLATE_LAST_SEEN, chunk), strict=True):
                if score is not None and (filters.start is None or score >= filters.start):
                    last.append((score, plate))
        last.sort(reverse=True)
        hits: list[PlateHit] = []
        i, batch = 0, max(need, 32)
        while i < len(last):
            chunk = [plate for _, plate in last[i:i + batch]]
            hits += self._read_sightings(plates, chunk, filters, newest_first=True)
            i += len(chunk)
            batch *= 2
            hits.sort(key=lambda h: (h.frame_time, h.stream_id), reverse=True)
            if len(hits) >= need and i < len(last) and last[i][0] < hits[need - 1].frame_time:
                return hits[:need], None
        return hits, len(hits)

    def search(self, query: str, mode: Mode = "auto", filters: PlateFilters | None = None, offset: int = 0,
               limit: int = 50, max_distance: float = 1.0, order: Literal["time", "distance"] = "time"
               ) -> PlateSearchResult:
        """Search plates; ``mode`` auto = wildcard if the query has ``?``/``*``, else partial (substring).

        ``total`` is None when the page could be answered without reading every matching sighting.
        """
        filters = filters or PlateFilters()
        truncated = False
        notes: list[str] = []
        if mode == "exact":
            plates = self.exact_candidates(query)
        elif mode == "fuzzy":
            plates = self.fuzzy_candidates(query, min(max_distance, MAX_FUZZY_DISTANCE))
            if len(plates) > self.max_candidates:
                kept = sorted(plates.items(), key=lambda kv: (kv[1], kv[0]))[: self.max_candidates]
                plates, truncated = dict(kept), True
        else:
            plates, truncated = self.partial_candidates(normalise_query(query))
        if truncated:
            notes.append(f"more than {self.max_candidates} plates match; refine the query")
        total: int | None
        if order == "distance":
            hits = self.sightings(plates, filters)
            hits.sort(key=lambda h: h.distance)
            total = len(hits)
        else:
            hits, total = self.newest_sightings(plates, filters, offset + limit)
        return PlateSearchResult(hits=hits[offset:offset + limit], total=total, plates_matched=len(plates),
                                 truncated=truncated, notes=notes)

    def history(self, plate: str, filters: PlateFilters | None = None, offset: int = 0, limit: int = 200
                ) -> PlateSearchResult:
        """Every sighting of one plate across cameras, oldest first."""
        plates = self.exact_candidates(plate)
        hits = self.sightings(plates, filters or PlateFilters(), newest_first=False)
        return PlateSearchResult(hits=hits[offset:offset + limit], total=len(hits), plates_matched=len(plates))

    def events(self, hits: list[PlateHit]) -> list[PlateEvent | None]:
        """The stored records of ``hits`` (None where the stream has been trimmed past them)."""
        pipe = self.client.pipeline(transaction=False)
        for hit in hits:
            pipe.xrange(keys.PLATE_STREAM, hit.stream_id, hit.stream_id)
        out: list[PlateEvent | None] = []
        for entries in pipe.execute():
            out.append(codec.decode(PlateEvent, entries[0][1]) if entries else None)
        return out


def normalise_query(query: str) -> str:
    """Normalise the literal runs of an operator query, keeping its ``?``/``*`` wildcards."""
    out, run = [], []
    for ch in query:
        if ch in "?*":
            out.append(normalise_plate("".join(run)) if run else "")
            out.append(ch)
            run = []
        else:
            run.append(ch)
    out.append(normalise_plate("".join(run)) if run else "")
    return "".join(out)
