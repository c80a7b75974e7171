"""Watchlist alerting as a control-room operator relies on it: plate spellings, province, expiry while running,
one alert per vehicle and a later matching read, camera restrictions (real Redis)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from pipeline.engine.watchmatch import WatchlistMatcher
from pipeline.events import FaceEvent, PlateEvent
from pipeline.store import EventStore, WatchlistStore

pytestmark = pytest.mark.timeout(60)


def _plate_event(text: str, camera: str = "cam-1", event_id: str | None = None, version: int = 1,
                 province: str | None = None) -> PlateEvent:
    extra = {"event_id": event_id} if event_id else {}
    return PlateEvent(camera_id=camera, track_id=1, started_at=1.0, ended_at=2.0, frame_time=1.5, plate_text=text,
                      confidence=0.9, version=version, province=province, **extra)


def _lists(redis_url: str) -> tuple[WatchlistStore, dict]:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    return lists, lists.create_watchlist("plate", "wanted")


def _entry(plate: str, **fields: object) -> dict:
    """A plate entry with every field the API writes."""
    return {"plate": plate, "fuzzy": False, "max_distance": 1.0, "reason": "", "severity": "high",
            "cameras": None, "expires_at": None, **fields}


@pytest.mark.parametrize("typed", ["1กข 1234", "1กข-1234", "๑กข๑๒๓๔", "１กข１２３４", " 1 กข 1234\t", "1กข1234\u200b"])
def test_plate_entry_matches_however_it_is_typed(redis_url: str, typed: str) -> None:
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], _entry(typed))
    assert len(WatchlistMatcher(lists).match_plate(_plate_event("1กข1234"))) == 1


@pytest.mark.parametrize(("typed", "read"), [
    ("1กข 1234 กรุงเทพมหานคร", "1กข1234"),
    ("กข 1234 ตาก", "กข1234"),
    ("1กข1234 Bangkok", "1กข1234"),
    ("1กช ภูเก็ต 4986", "1กช4986"),   # motorcycle plate typed in its line order: series / province / number
    ("1กช 4986 ภูเก็ต", "1กช4986"),
    ("อคม 888 เชียงใหม่", "อคม888"),
    ("70-1234 ชลบุรี", "70-1234"),
])
def test_plate_entry_typed_with_its_province_matches_the_registration(redis_url: str, typed: str, read: str) -> None:
    lists, wanted = _lists(redis_url)
    entry = lists.put_entry(wanted["id"], _entry(typed))
    assert entry is not None and entry["province"]
    assert len(WatchlistMatcher(lists).match_plate(_plate_event(read))) == 1


def test_exact_entry_does_not_alert_on_a_lookalike_near_miss(redis_url: str) -> None:
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], _entry("1กข1234", fuzzy=False, max_distance=1.0))
    matcher = WatchlistMatcher(lists)
    for near in ("1กช1234", "1คข1234", "1กข1284", "1กข12345", "1กข123"):
        assert matcher.match_plate(_plate_event(near)) == [], near


def test_an_entry_expiring_while_the_engine_runs_stops_alerting_without_a_list_change(redis_url: str) -> None:
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], _entry("1กข1234", expires_at=time.time() + 0.3))
    rng = np.random.default_rng(0)
    vec = rng.normal(size=64)
    person = lists.create_person("P", vec[None, :])
    faces = lists.create_watchlist("face", "vip")
    lists.put_entry(faces["id"], {"person_id": person["id"], "threshold": 0.5, "expires_at": time.time() + 0.3})
    matcher = WatchlistMatcher(lists, refresh_interval_s=0.05)
    assert len(matcher.match_plate(_plate_event("1กข1234"))) == 1
    time.sleep(0.4)
    assert matcher.match_plate(_plate_event("1กข1234")) == []
    face = FaceEvent(camera_id="cam-1", track_id=1, started_at=0, ended_at=1, frame_time=0.5,
                     embedding=(vec / np.linalg.norm(vec)).tolist(), quality=0.8, det_score=0.9)
    assert matcher.match_face(face) == []


def test_deleted_watchlist_and_entry_stop_alerting_within_the_refresh_interval(redis_url: str) -> None:
    lists, wanted = _lists(redis_url)
    entry = lists.put_entry(wanted["id"], _entry("1กข1234"))
    other = lists.create_watchlist("plate", "other")
    lists.put_entry(other["id"], _entry("กข99"))
    matcher = WatchlistMatcher(lists, refresh_interval_s=0.05)
    assert len(matcher.match_plate(_plate_event("1กข1234"))) == 1
    lists.delete_entry(wanted["id"], entry["entry_id"])
    time.sleep(0.1)
    assert matcher.match_plate(_plate_event("1กข1234")) == []
    assert len(matcher.match_plate(_plate_event("กข99"))) == 1
    lists.delete_watchlist(other["id"])
    time.sleep(0.1)
    assert matcher.match_plate(_plate_event("กข99")) == []


def test_one_vehicle_alerts_once_and_a_later_better_read_that_matches_alerts(redis_url: str) -> None:
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], _entry("1กข1234"))
    matcher = WatchlistMatcher(lists)
    first = matcher.match_plate(_plate_event("1กข1234", event_id="ev-a"))
    assert len(first) == 1
    assert matcher.match_plate(_plate_event("1กข1234", event_id="ev-a", version=2)) == []
    # another track on another camera (the same camera is in its alert cooldown, see test_engine_watch_cooldown):
    # first read wrong, a later version of the same event reads it right
    assert matcher.match_plate(_plate_event("1กช1234", camera="cam-2", event_id="ev-b")) == []
    later = matcher.match_plate(_plate_event("1กข1234", camera="cam-2", event_id="ev-b", version=2))
    assert len(later) == 1 and later[0].event_id == "ev-b"
    assert matcher.match_plate(_plate_event("1กข1234", camera="cam-2", event_id="ev-b", version=3)) == []


def test_alerts_are_not_duplicated_by_an_engine_restart(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], _entry("1กข1234"))
    store = EventStore(client)
    [alert] = WatchlistMatcher(lists).match_plate(_plate_event("1กข1234", event_id="ev-r"))
    assert store.publish_alert(alert)
    # a restarted engine (fresh matcher) re-delivering the same event version raises the same alert id
    [again] = WatchlistMatcher(lists).match_plate(_plate_event("1กข1234", event_id="ev-r"))
    assert again.alert_id == alert.alert_id and not store.publish_alert(again)
    assert client.xlen("alerts") == 1


def test_camera_restricted_entry_alerts_only_on_its_cameras(redis_url: str) -> None:
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], _entry("1กข1234", cameras=["gate-1"]))
    matcher = WatchlistMatcher(lists)
    assert matcher.match_plate(_plate_event("1กข1234", camera="gate-2")) == []
    assert len(matcher.match_plate(_plate_event("1กข1234", camera="gate-1"))) == 1


def test_an_entry_stored_without_its_optional_fields_still_matches(redis_url: str) -> None:
    """An entry written before a field existed (or by a script) takes the defaults instead of being skipped."""
    lists, wanted = _lists(redis_url)
    lists.put_entry(wanted["id"], {"plate": "1กข1234"})
    assert len(WatchlistMatcher(lists).match_plate(_plate_event("1กข1234"))) == 1
