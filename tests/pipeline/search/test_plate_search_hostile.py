"""Plate search against hostile or careless input: deep pages of one busy plate, compatibility Unicode forms."""

from __future__ import annotations

import pytest
import redis

from pipeline.events import PlateEvent
from pipeline.search.plates import PlateFilters, PlateSearcher, normalise_query
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)

BUSY = "1กข1234"
N_BUSY = 1030
"""More sightings than :class:`PlateSearcher`'s default ``max_sightings_per_plate`` (1000)."""


@pytest.fixture()
def busy(client: redis.Redis) -> list[float]:
    """``N_BUSY`` sightings of one plate (cameras cam0/cam1 alternating) and one of another; the busy times."""
    events = [PlateEvent(camera_id=f"cam{i % 2}", track_id=i, started_at=t - 1, ended_at=t, frame_time=t,
                         plate_text=BUSY, province="กรุงเทพมหานคร", confidence=0.9)
              for i, t in enumerate(3_000_000.0 + 10 * i for i in range(N_BUSY))]
    events.append(PlateEvent(camera_id="cam0", track_id=9999, started_at=1.0, ended_at=2.0, frame_time=2.0,
                             plate_text="AB1234", province="", confidence=0.9))
    EventStore(client).publish_plate_events(events)
    return [e.frame_time for e in events[:N_BUSY]]


def test_history_pages_past_the_per_plate_read_bound(client: redis.Redis, busy: list[float]) -> None:
    searcher = PlateSearcher(client)
    first = searcher.history(BUSY, offset=0, limit=200)
    assert first.total == N_BUSY and first.has_more
    assert [h.frame_time for h in first.hits] == busy[:200]
    last = searcher.history(BUSY, offset=1000, limit=200)
    assert last.total == N_BUSY and not last.has_more
    assert [h.frame_time for h in last.hits] == busy[1000:]  # the newest sightings are not dropped
    cam1 = [t for i, t in enumerate(busy) if i % 2 == 1]
    filtered = searcher.history(BUSY, PlateFilters(cameras={"cam1"}), offset=500, limit=100)
    assert filtered.total == len(cam1) and [h.frame_time for h in filtered.hits] == cam1[500:600]
    timed = searcher.history(BUSY, PlateFilters(start=busy[1010], end=busy[1020]), offset=5, limit=100)
    assert timed.total == 11 and [h.frame_time for h in timed.hits] == busy[1015:1021]
    assert searcher.history(BUSY, PlateFilters(cameras={"nope"})).total == 0
    assert searcher.history("9กก9999").plates_matched == 0


def test_exact_search_pages_past_the_per_plate_read_bound(client: redis.Redis, busy: list[float]) -> None:
    newest = busy[::-1]
    r = PlateSearcher(client).search(BUSY, mode="exact", offset=1000, limit=50)
    assert r.total == N_BUSY and [h.frame_time for h in r.hits] == newest[1000:]
    assert not r.has_more
    r = PlateSearcher(client).search(BUSY, mode="exact", offset=950, limit=50)
    assert [h.frame_time for h in r.hits] == newest[950:1000] and r.has_more


@pytest.mark.parametrize(("query", "plate"), [
    ("１กข１２３４", BUSY),  # full-width digits (East Asian input methods)
    ("๑กข๑๒๓๔", BUSY),  # Thai digits
    ("1กข\u200b12\u200d34", BUSY),  # zero-width space / joiner
    ("ＡＢ１２３４", "AB1234"),  # full-width Latin
    ("ab 1234", "AB1234"),
])
def test_compatibility_forms_find_the_plate(client: redis.Redis, busy: list[float], query: str, plate: str) -> None:
    searcher = PlateSearcher(client)
    for mode in ("exact", "fuzzy", "partial"):
        r = searcher.search(query, mode=mode, limit=5)
        assert r.hits and {h.plate for h in r.hits} == {plate}, (mode, query)
    assert searcher.history(query, limit=1).plates_matched == 1


def test_full_width_wildcards_are_wildcards() -> None:
    assert normalise_query("ＡＢ＊３４") == "AB*34"
    assert normalise_query("１กข？２３４") == "1กข?234"


def test_filtered_history_scan_is_bounded_and_says_so(client: redis.Redis, busy: list[float]) -> None:
    searcher = PlateSearcher(client, history_chunk=100, max_history_scan=300)
    r = searcher.history(BUSY, PlateFilters(cameras={"cam0"}), offset=0, limit=10)
    assert not r.complete and r.total is None and r.has_more and r.notes
    assert [h.frame_time for h in r.hits] == busy[0:20:2]
    assert searcher.history(BUSY, offset=1020, limit=10).complete  # unfiltered: paged in Redis, never capped
