"""Keyset paging of plate search (new reads between pages), plate queries that end in a province, empty queries."""

from __future__ import annotations

import pytest
import redis

from pipeline.events import PlateEvent
from pipeline.plates.grams import QueryError
from pipeline.search.plates import PlateFilters, PlateSearcher, cursor_of, parse_cursor, split_province
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


def _publish(client: redis.Redis, plates_times: list[tuple[str, float]], camera: str = "cam0") -> None:
    EventStore(client).publish_plate_events([
        PlateEvent(camera_id=camera, track_id=i, started_at=t - 1, ended_at=t, frame_time=t, plate_text=plate,
                   province="กรุงเทพมหานคร", confidence=0.9) for i, (plate, t) in enumerate(plates_times)])


def _pages(searcher: PlateSearcher, query: str, limit: int, mode: str = "auto",
           before: tuple[float, str] | None = None, **kw: object) -> list[list]:
    """Every page of ``query`` read through the cursor (from ``before`` on)."""
    pages = []
    while True:
        r = searcher.search(query, mode=mode, limit=limit, before=before, **kw)
        pages.append(r.hits)
        if not r.has_more or not r.hits:
            return pages
        before = parse_cursor(cursor_of(r.hits[-1]))


@pytest.mark.parametrize("mode", ["auto", "exact"])
def test_cursor_pages_neither_repeat_nor_skip_while_reads_arrive(client: redis.Redis, mode: str) -> None:
    query = "1กข1234" if mode == "exact" else "กข"
    plate = (lambda i: "1กข1234") if mode == "exact" else (lambda i: f"1กข{1000 + i}")
    _publish(client, [(plate(i), 10_000.0 + 10 * i) for i in range(30)])
    searcher = PlateSearcher(client)
    first = searcher.search(query, mode=mode, limit=10)
    assert [h.frame_time for h in first.hits] == [10_000.0 + 10 * i for i in range(29, 19, -1)] and first.has_more
    # reads arrive between pages: newer ones and one late read older than the first page
    _publish(client, [(plate(100 + i), 20_000.0 + i) for i in range(5)] + [(plate(200), 10_105.0)], camera="cam1")
    before = parse_cursor(cursor_of(first.hits[-1]))
    second = searcher.search(query, mode=mode, limit=10, before=before)
    assert [h.frame_time for h in second.hits] == [10_190.0, 10_180.0, 10_170.0, 10_160.0, 10_150.0, 10_140.0,
                                                   10_130.0, 10_120.0, 10_110.0, 10_105.0]
    assert second.total == 21  # 20 older than the cursor, and the late read
    assert second.plates_matched == (1 if mode == "exact" else 21)
    seen = [h.stream_id for page in [first.hits, *_pages(searcher, query, 10, mode, before=before)] for h in page]
    assert len(seen) == len(set(seen)) == 31


def test_cursor_keeps_hits_that_share_the_cursor_time(client: redis.Redis) -> None:
    _publish(client, [(f"1กข{1000 + i}", 5_000.0) for i in range(25)] + [("1กข9999", 4_000.0)])
    searcher = PlateSearcher(client)
    pages = _pages(searcher, "1กข", 3)
    ids = [h.stream_id for page in pages for h in page]
    assert len(ids) == len(set(ids)) == 26
    assert pages[-1][-1].plate == "1กข9999"


def test_cursor_within_a_time_window_and_camera_filter(client: redis.Redis) -> None:
    _publish(client, [(f"1กข{1000 + i}", 1_000.0 + i) for i in range(40)])
    _publish(client, [(f"1กข{2000 + i}", 1_000.5 + i) for i in range(40)], camera="cam1")
    searcher = PlateSearcher(client)
    filters = PlateFilters(cameras={"cam1"}, start=1_010.0, end=1_030.0)
    pages = _pages(searcher, "1กข", 7, filters=filters)
    times = [h.frame_time for page in pages for h in page]
    assert times == [1_000.5 + i for i in range(29, 9, -1)]


def test_bad_cursors_are_refused() -> None:
    for text in ("", "abc", "1.5", "1.5_", "nan_1-1", "inf_1-1", "1.5_1-x", "1.5_1-1|c"):
        with pytest.raises(QueryError):
            parse_cursor(text)
    assert parse_cursor("1733050000.25_1733050000123-7") == (1733050000.25, "1733050000123-7")


@pytest.mark.parametrize(("query", "expected"), [
    ("1กข 1234 กรุงเทพมหานคร", ("1กข 1234", "กรุงเทพมหานคร")),
    ("1กข1234 ตาก", ("1กข1234", "ตาก")),
    ("1กข1234 Tak", ("1กข1234", "ตาก")),
    ("1กข1234 Chiang Mai", ("1กข1234", "เชียงใหม่")),
    ("กข 12", ("กข 12", None)),
    ("1กข 1234", ("1กข 1234", None)),
    ("1กข *", ("1กข *", None)),
    ("1กข1234", ("1กข1234", None)),
])
def test_a_province_after_the_plate_is_split_off(query: str, expected: tuple[str, str | None]) -> None:
    assert split_province(query) == expected


@pytest.mark.parametrize("mode", ["exact", "fuzzy"])
@pytest.mark.parametrize("query", ["...", "\u200b\u200b", "ะา", "--"])
def test_a_query_without_plate_characters_is_refused(client: redis.Redis, mode: str, query: str) -> None:
    with pytest.raises(QueryError, match="no plate character"):
        PlateSearcher(client).search(query, mode=mode)
