"""Plate entries tied to a province match only reads of that province (or reads without one), and one watchlist
raises at most one alert per event even when duplicate entries were stored before the API refused them."""

from __future__ import annotations

import json
import time

import pytest
import redis

from pipeline.engine.watchmatch import WatchlistMatcher
from pipeline.events import PlateEvent
from pipeline.store import WatchlistStore, keys

pytestmark = pytest.mark.timeout(60)


def _read(text: str, province: str | None = None, event_id: str | None = None) -> PlateEvent:
    extra = {"event_id": event_id} if event_id else {}
    return PlateEvent(camera_id="cam-1", track_id=1, started_at=1.0, ended_at=2.0, frame_time=1.5, plate_text=text,
                      confidence=0.9, province=province, **extra)


def _store_raw(client: redis.Redis, watchlist_id: str, entry_id: str, plate: str, province: str | None) -> None:
    """An entry written as an older API stored it (no duplicate check)."""
    entry = {"entry_id": entry_id, "plate": plate, "province": province, "fuzzy": False, "max_distance": 1.0,
             "reason": "stolen", "severity": "high", "cameras": None, "expires_at": None, "created_at": time.time()}
    client.hset(keys.watchlist_entries(watchlist_id), entry_id, json.dumps(entry, ensure_ascii=False))
    client.incr(keys.WATCHLIST_VERSION)


def test_an_entry_tied_to_a_province_alerts_only_on_that_province_or_an_unread_one(redis_url: str) -> None:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    wanted = lists.create_watchlist("plate", "wanted")
    entry = lists.put_entry(wanted["id"], {"plate": "1กข1234", "province": "กรุงเทพมหานคร", "severity": "high"})
    matcher = WatchlistMatcher(lists, alert_cooldown_s=0)  # every read below is another vehicle
    assert matcher.match_plate(_read("1กข1234", "เชียงใหม่")) == []  # same registration, another province
    assert [a.entry_id for a in matcher.match_plate(_read("1กข1234", "กรุงเทพมหานคร"))] == [entry["entry_id"]]
    assert len(matcher.match_plate(_read("1กข1234", "Bangkok"))) == 1  # a Latin province name is the same one
    # a cut plate (province not read) still alerts: unconfirmed, but a wanted vehicle is not missed
    assert len(matcher.match_plate(_read("1กข1234", None))) == 1
    assert len(matcher.match_plate(_read("1กข1234", ""))) == 1


def test_an_entry_without_a_province_alerts_on_every_province(redis_url: str) -> None:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    wanted = lists.create_watchlist("plate", "wanted")
    lists.put_entry(wanted["id"], {"plate": "1กข1234"})
    matcher = WatchlistMatcher(lists, alert_cooldown_s=0)
    assert len(matcher.match_plate(_read("1กข1234", "เชียงใหม่"))) == 1
    assert len(matcher.match_plate(_read("1กข1234", "ภูเก็ต"))) == 1


def test_old_duplicate_entries_raise_one_alert_per_event_and_watchlist(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    lists = WatchlistStore(client)
    wanted = lists.create_watchlist("plate", "wanted")
    other = lists.create_watchlist("plate", "other")
    _store_raw(client, wanted["id"], "dup-b", "1กช4986", None)
    _store_raw(client, wanted["id"], "dup-a", "1กช4986", None)
    _store_raw(client, other["id"], "other-1", "1กช4986", None)
    matcher = WatchlistMatcher(lists)
    alerts = matcher.match_plate(_read("1กช4986", event_id="ev-1"))
    assert sorted((a.watchlist_id, a.entry_id) for a in alerts) == sorted([(wanted["id"], "dup-a"),
                                                                           (other["id"], "other-1")])
    # the same vehicle found again within the cooldown: the other duplicate does not slip through
    assert matcher.match_plate(_read("1กช4986", event_id="ev-2")) == []


def test_a_confirmed_province_entry_is_preferred_among_matches_of_one_watchlist(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    lists = WatchlistStore(client)
    wanted = lists.create_watchlist("plate", "wanted")
    _store_raw(client, wanted["id"], "any", "1กข1234", None)
    _store_raw(client, wanted["id"], "bkk", "1กข1234", "กรุงเทพมหานคร")
    alerts = WatchlistMatcher(lists, alert_cooldown_s=0).match_plate(_read("1กข1234", "กรุงเทพมหานคร"))
    assert [a.entry_id for a in alerts] == ["bkk"]


def test_an_alert_on_a_read_without_province_says_the_province_is_unconfirmed(redis_url: str) -> None:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    wanted = lists.create_watchlist("plate", "wanted")
    lists.put_entry(wanted["id"], {"plate": "1กข1234", "province": "Bangkok"})
    anywhere = lists.create_watchlist("plate", "anywhere")
    lists.put_entry(anywhere["id"], {"plate": "2กข5678"})
    matcher = WatchlistMatcher(lists, alert_cooldown_s=0)
    [cut] = matcher.match_plate(_read("1กข1234", None))
    assert (cut.province_unconfirmed, cut.entry_province, cut.province) == (True, "กรุงเทพมหานคร", None)
    [read] = matcher.match_plate(_read("1กข1234", "Bangkok"))
    assert (read.province_unconfirmed, read.entry_province, read.province) == (False, "กรุงเทพมหานคร",
                                                                             "กรุงเทพมหานคร")
    [free] = matcher.match_plate(_read("2กข5678", None))  # an entry for any province has nothing to confirm
    assert (free.province_unconfirmed, free.entry_province) == (False, None)
