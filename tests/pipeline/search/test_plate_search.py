"""Plate search against a real Redis filled through the EventStore: both partial strategies equal brute force."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from pipeline.events import PlateEvent
from pipeline.plates.fuzzy import plate_distance
from pipeline.plates.grams import compile_query
from pipeline.search.plates import PlateFilters, PlateSearcher, normalise_query
from pipeline.store import EventStore, keys, lua

pytestmark = pytest.mark.timeout(120)

LETTERS = "กขคงจชซดตบปพมรสหอฮ"


def random_plates(rng: np.random.Generator, n: int) -> list[str]:
    out = set()
    while len(out) < n:
        a, b = LETTERS[rng.integers(4)], LETTERS[rng.integers(len(LETTERS))]  # a few common series letters
        kind = rng.integers(3)
        num = int(rng.integers(1, 10000))
        out.add(f"{rng.integers(1, 10)}{a}{b}{num}" if kind == 0 else f"{a}{b}{num}" if kind == 1
                else f"{rng.integers(10, 100)}{num:04d}")
    return sorted(out)


@pytest.fixture()
def filled(client: redis.Redis) -> list[tuple[float, str, str, str]]:
    """3000 reads of 600 plates in time order; returns (time, plate, camera, class) of each, newest first."""
    rng = np.random.default_rng(7)
    plates = random_plates(rng, 600)
    weights = rng.pareto(1.2, len(plates)) + 0.1
    weights /= weights.sum()
    events, rows = [], []
    for i in range(3000):
        plate = plates[rng.choice(len(plates), p=weights)]
        t = 1_000_000.0 + i * 7.3 + float(rng.random())
        camera, vclass = f"cam{rng.integers(6)}", ["car", "truck", "motorcycle"][rng.integers(3)]
        events.append(PlateEvent(camera_id=camera, track_id=i, started_at=t - 1, ended_at=t, frame_time=t,
                                 plate_text=plate, province="กรุงเทพมหานคร", confidence=float(rng.uniform(0.3, 1)),
                                 vehicle_class=vclass))
        rows.append((t, plate, camera, vclass))
    EventStore(client).publish_plate_events(events)
    return sorted(rows, reverse=True)


QUERIES = ["กข", "ขก", "12", "123", "1234", "ก?12*", "*12", "?กข*", "2กข*", "99", "ฮฮ", "กข?2*"]
FILTERS = [PlateFilters(), PlateFilters(cameras={"cam1", "cam2"}), PlateFilters(start=1_010_000.0, end=1_015_000.0),
           PlateFilters(vehicle_class="truck"), PlateFilters(cameras={"nope"})]


def test_walk_and_intersection_equal_brute_force(client: redis.Redis, filled: list) -> None:
    walk = PlateSearcher(client, strategy="walk", walk_budget=40, first_sightings=1)  # several steps, capped
    intersect = PlateSearcher(client, strategy="intersect", small_set=8)
    hedged = PlateSearcher(client, small_gram_set=0, sample_size=16, walk_budget=50)  # sampled choice, both ways
    early = 0
    for q in QUERIES:
        pattern = compile_query(normalise_query(q))
        matching = len({p for _, p, _, _ in filled if pattern.matches(p)})
        for f in FILTERS:
            truth = [(t, p) for t, p, cam, vc in filled if pattern.matches(p)
                     and (f.cameras is None or cam in f.cameras) and (f.vehicle_class in (None, vc))
                     and (f.start is None or t >= f.start) and (f.end is None or t <= f.end)]
            for searcher in (walk, intersect, hedged):
                for offset, limit in ((0, 10), (7, 25)):
                    r = searcher.search(q, filters=f, offset=offset, limit=limit)
                    assert [(h.frame_time, h.plate) for h in r.hits] == truth[offset:offset + limit], (q, f)
                    assert all(h.province == "กรุงเทพมหานคร" and h.camera_id.startswith("cam") for h in r.hits)
                    read = len({p for _, p in truth})  # plates with a read passing the filters
                    if r.complete:
                        assert r.total == len(truth) and r.plates_matched == read <= matching, (q, f)
                        assert r.has_more == (len(truth) > offset + limit)
                    else:
                        early += 1
                        assert r.total is None and r.has_more
                        assert r.plates_matched <= read
    assert early > 0  # broad queries really were answered without reading every match


@pytest.mark.parametrize("mode", ["exact", "partial", "auto", "fuzzy"])
def test_plates_read_only_outside_the_window_are_not_counted(client: redis.Redis, mode: str) -> None:
    """A search whose window holds no read of a matching plate says 0 plates (not the plates read at other times);
    one read in the window counts its plate once; the camera filter bounds the count the same way."""
    events = [PlateEvent(camera_id=cam, track_id=i, started_at=t - 1, ended_at=t, frame_time=t, plate_text=plate,
                         confidence=0.9)
              for i, (plate, cam, t) in enumerate([("1กข1234", "cam0", 1000.0), ("1กข1234", "cam1", 5000.0),
                                                   ("2กข1234", "cam0", 1010.0)])]
    EventStore(client).publish_plate_events(events)
    searchers = (PlateSearcher(client), PlateSearcher(client, strategy="walk", walk_budget=1, first_sightings=1),
                 PlateSearcher(client, strategy="intersect", small_set=0))
    def count_with(searcher: PlateSearcher, order: str):
        def count(**window: float | set[str]) -> tuple[int | None, int]:
            r = searcher.search("1กข1234", mode=mode, filters=PlateFilters(**window), order=order)
            assert r.complete
            return r.total, r.plates_matched
        return count

    for searcher in searchers:
        for order in ("time", "distance"):
            count = count_with(searcher, order)
            assert count(start=2000.0, end=3000.0) == (0, 0), (searcher.strategy, order)
            assert count(start=4000.0) == (1, 1)
            assert count(end=1005.0) == (1, 1)
            assert count(start=2000.0, cameras={"cam0"}) == (0, 0)
            assert count(cameras={"cam1"}) == (1, 1)
            assert count()[1] == (2 if mode == "fuzzy" else 1)  # fuzzy: 2กข1234 is one edit away


def test_server_pattern_matches_like_python(client: redis.Redis, filled: list) -> None:
    """The walk's Lua pattern (bytes, UTF-8 aware ``?``) keeps exactly the plates the Python matcher keeps."""
    walk = client.register_script(lua.PLATE_WALK)
    plates = [m.decode() for m in client.zrevrange(keys.PLATE_LAST_SEEN, 0, -1)]
    for q in ["ก?12*", "?กข*", "*12", "กข?2*", "12?", "??12*", "*กข?1?*", "91?2?", "กข12"]:
        pattern = compile_query(normalise_query(q))
        mode, server = pattern.server_match()
        reply = walk(keys=[keys.PLATE_LAST_SEEN], args=[0, 10**6, 10**6, "", mode, server])
        got = {reply[j].decode() for j in range(2, len(reply), 2)}
        assert got == {p for p in plates if pattern.matches(p)}, q
        assert int(reply[0]) == -1


def test_exact_total_is_counted_without_reading_every_sighting(client: redis.Redis, filled: list) -> None:
    plate = max({p for _, p, _, _ in filled}, key=lambda p: sum(1 for r in filled if r[1] == p))
    seen = [t for t, p, _, _ in filled if p == plate]
    r = PlateSearcher(client).search(plate, mode="exact", limit=3)
    assert r.total == len(seen) > 3 and [h.frame_time for h in r.hits] == seen[:3] and r.has_more
    r = PlateSearcher(client).search(plate, mode="exact", limit=3, filters=PlateFilters(cameras={"cam1"}))
    assert r.total == sum(1 for t, p, cam, _ in filled if p == plate and cam == "cam1")


def test_fuzzy_finds_lookalike_and_history_is_oldest_first(client: redis.Redis, filled: list) -> None:
    plate = next(p for _, p, _, _ in filled if "ข" in p)
    r = PlateSearcher(client).search(plate.replace("ข", "ช"), mode="fuzzy", max_distance=0.5)
    assert plate in {h.plate for h in r.hits}
    hist = PlateSearcher(client).history(plate)
    assert [h.frame_time for h in hist.hits] == sorted(t for t, p, _, _ in filled if p == plate)


MOTO_PLATES = ["1กช4986", "อคม888", "อคม12", "งบล7970", "2กช1234"]
"""Three-line motorcycle registrations (digit or three-consonant series, up to four digits)."""
CAR_PLATES = ["กช4986", "คม1234", "1กข4986", "701234"]


@pytest.fixture()
def motorcycles(client: redis.Redis) -> list[tuple[float, str]]:
    """Two reads of each motorcycle and car plate, published through the EventStore; (time, plate), newest first."""
    events, rows = [], []
    for i, plate in enumerate(MOTO_PLATES + CAR_PLATES + MOTO_PLATES + CAR_PLATES):
        t = 2_000_000.0 + 10 * i
        vclass = "motorcycle" if plate in MOTO_PLATES else "car"
        events.append(PlateEvent(camera_id="cam0", track_id=i, started_at=t - 1, ended_at=t, frame_time=t,
                                 plate_text=plate, province="สระแก้ว", confidence=0.9, vehicle_class=vclass))
        rows.append((t, plate))
    EventStore(client).publish_plate_events(events)
    return sorted(rows, reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("กช4986", {"1กช4986", "กช4986"}),
        ("อคม*", {"อคม888", "อคม12"}),
        ("อคม", {"อคม888", "อคม12"}),
        ("คม", {"อคม888", "อคม12", "คม1234"}),  # a series bigram inside a three-consonant series
        ("งบล", {"งบล7970"}),
        ("บล79", {"งบล7970"}),
        ("*7970", {"งบล7970"}),
        ("???7970", {"งบล7970"}),
        ("?กช*", {"1กช4986", "2กช1234"}),
        ("1กช 4986", {"1กช4986"}),
        ("อคม 888", {"อคม888"}),
    ],
)
def test_motorcycle_registrations_are_found_by_partial_and_wildcard_search(
        client: redis.Redis, motorcycles: list, query: str, expected: set[str]) -> None:
    """Every strategy (series-set walk, all-plates walk, gram intersection) finds the motorcycle plates."""
    truth = [(t, p) for t, p in motorcycles if p in expected]
    searchers = (PlateSearcher(client, strategy="walk", walk_budget=3, first_sightings=1),
                 PlateSearcher(client, strategy="intersect", small_set=2),
                 PlateSearcher(client, small_gram_set=0, sample_size=4, walk_budget=3))
    for searcher in searchers:
        r = searcher.search(query, limit=50)
        assert [(h.frame_time, h.plate) for h in r.hits] == truth, (query, searcher.strategy)
        assert r.complete and r.total == len(truth) and r.plates_matched == len(expected)
    motorcycles_only = PlateSearcher(client).search(query, filters=PlateFilters(vehicle_class="motorcycle"))
    assert {h.plate for h in motorcycles_only.hits} == expected & set(MOTO_PLATES)


def test_motorcycle_series_bigrams_are_indexed(client: redis.Redis, motorcycles: list) -> None:
    """``อคม888`` is in the time-ordered series sets of both its bigrams; ``1กช4986`` in that of ``กช``."""
    for bigram, plates in (("อค", {"อคม888", "อคม12"}), ("คม", {"อคม888", "อคม12", "คม1234"}),
                           ("งบ", {"งบล7970"}), ("บล", {"งบล7970"}), ("กช", {"1กช4986", "2กช1234", "กช4986"})):
        members = {m.decode() for m in client.zrange(keys.plate_series(bigram), 0, -1)}
        assert members == plates, bigram
        for plate in plates:
            assert client.zscore(keys.plate_series(bigram), plate) == client.zscore(keys.PLATE_LAST_SEEN, plate)


@pytest.mark.parametrize("plate", MOTO_PLATES)
def test_motorcycle_exact_fuzzy_and_history(client: redis.Redis, motorcycles: list, plate: str) -> None:
    seen = [t for t, p in motorcycles if p == plate]
    shown = plate[:3] + " " + plate[3:]
    searcher = PlateSearcher(client)
    for query in (plate, shown):
        r = searcher.search(query, mode="exact")
        assert [h.frame_time for h in r.hits] == seen and {h.plate for h in r.hits} == {plate}, query
        assert all(h.vehicle_class == "motorcycle" and h.province == "สระแก้ว" for h in r.hits)
    assert [h.frame_time for h in searcher.history(shown).hits] == sorted(seen)
    lookalike = plate.replace("บ", "ป").replace("ช", "ข").replace("ค", "ด")  # one look-alike in each series
    assert plate_distance(lookalike, plate) == pytest.approx(0.4)
    r = searcher.search(lookalike, mode="fuzzy", max_distance=0.5)
    assert plate in {h.plate for h in r.hits}


def test_one_malformed_record_does_not_fail_the_others(client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """A record this version cannot decode (truncated JSON in one field) comes back as None, with a warning, and
    the good records beside it are still returned."""
    from pipeline.search.plates import PlateHit
    from pipeline.store import codec

    good = PlateEvent(camera_id="c1", track_id=1, started_at=1, ended_at=2, frame_time=1.5, plate_text="1กข1234",
                      confidence=0.9)
    EventStore(client).publish_plate_event(good)
    good_sid = client.xrange(keys.PLATE_STREAM)[0][0].decode()
    fields = codec.encode(good.model_copy(update={"event_id": "bad"}))
    fields["vehicle_box"] = "[1,2"
    bad_sid = client.xadd(keys.PLATE_STREAM, fields).decode()
    hits = [PlateHit(sid, "1กข1234", 1.5, "c1", 0.9, "car", "") for sid in (good_sid, bad_sid, good_sid)]
    events = PlateSearcher(client).events(hits)
    assert [e.plate_text if e else None for e in events] == ["1กข1234", None, "1กข1234"]
    assert f"unreadable PlateEvent record {bad_sid}" in caplog.text
