"""Watchlist alerting with paused entries and the plate alert cooldown: a vehicle whose track is lost and found
again on the same camera alerts once per cooldown window, also across an engine restart (real Redis)."""

from __future__ import annotations

import time

import pytest
import redis

from pipeline.engine.watchmatch import WatchlistMatcher
from pipeline.events import PlateEvent
from pipeline.store import EventStore, WatchlistStore

pytestmark = pytest.mark.timeout(60)


def _event(text: str = "1กข1234", camera: str = "cam-1", event_id: str | None = None, version: int = 1) -> PlateEvent:
    extra = {"event_id": event_id} if event_id else {}
    return PlateEvent(camera_id=camera, track_id=1, started_at=1.0, ended_at=2.0, frame_time=1.5, plate_text=text,
                      confidence=0.9, version=version, **extra)


def _lists(redis_url: str, **fields: object) -> tuple[WatchlistStore, dict, dict]:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    wanted = lists.create_watchlist("plate", "wanted")
    entry = lists.put_entry(wanted["id"], {"plate": "1กข1234", "severity": "high", **fields})
    assert entry is not None
    return lists, wanted, entry


def test_a_paused_entry_never_alerts_and_resuming_it_alerts_again(redis_url: str) -> None:
    lists, wanted, entry = _lists(redis_url, enabled=False)
    matcher = WatchlistMatcher(lists, refresh_interval_s=0.05)
    assert matcher.match_plate(_event(event_id="ev-1")) == []
    lists.update_entry(wanted["id"], entry["entry_id"], {"enabled": True})
    time.sleep(0.1)
    assert [a.entry_id for a in matcher.match_plate(_event(event_id="ev-2"))] == [entry["entry_id"]]
    lists.update_entry(wanted["id"], entry["entry_id"], {"enabled": False})
    time.sleep(0.1)
    assert matcher.match_plate(_event(event_id="ev-3", camera="cam-2")) == []


def test_a_track_lost_and_found_again_alerts_once_per_window_per_camera(redis_url: str) -> None:
    lists, _, entry = _lists(redis_url)
    matcher = WatchlistMatcher(lists, alert_cooldown_s=0.5)
    assert len(matcher.match_plate(_event(event_id="ev-a"))) == 1
    # the same vehicle, re-tracked on the same camera: a new event, no new alert
    assert matcher.match_plate(_event(event_id="ev-b")) == []
    assert matcher.match_plate(_event(event_id="ev-b", version=2)) == []
    # another camera alerts at once
    [elsewhere] = matcher.match_plate(_event(event_id="ev-c", camera="cam-2"))
    assert elsewhere.entry_id == entry["entry_id"] and elsewhere.camera_id == "cam-2"
    # after the window the same camera alerts again
    time.sleep(0.6)
    assert len(matcher.match_plate(_event(event_id="ev-d"))) == 1


def test_the_cooldown_survives_an_engine_restart_without_losing_the_first_alert(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    lists, _, _ = _lists(redis_url)
    store = EventStore(client)
    [first] = WatchlistMatcher(lists).match_plate(_event(event_id="ev-1"))
    # the engine crashed before publishing: the restarted engine re-reads the same event and still raises it
    [again] = WatchlistMatcher(lists).match_plate(_event(event_id="ev-1"))
    assert again.alert_id == first.alert_id and store.publish_alert(again)
    # a restarted engine does not alert for the same vehicle found again within the window
    assert WatchlistMatcher(lists).match_plate(_event(event_id="ev-2")) == []
    assert client.xlen("alerts") == 1


def test_the_cooldown_is_kept_in_memory_while_redis_is_unreachable(redis_url: str) -> None:
    lists, _, _ = _lists(redis_url)
    matcher = WatchlistMatcher(lists)
    matcher.refresh(force=True)
    matcher.store = WatchlistStore(redis.Redis(port=1, socket_connect_timeout=0.2))  # nothing listens there
    matcher._checked_at = time.monotonic() + 60  # keep the loaded lists (no refresh against the dead server)
    assert len(matcher.match_plate(_event(event_id="ev-1"))) == 1
    assert matcher.match_plate(_event(event_id="ev-2")) == []


def test_cooldown_is_bounded_and_defaults_to_five_minutes(redis_url: str) -> None:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    assert WatchlistMatcher(lists).alert_cooldown_s == 300  # five minutes by default
    for bad in (-1.0, 86_401.0, float("nan")):
        with pytest.raises(ValueError, match="alert_cooldown_s"):
            WatchlistMatcher(lists, alert_cooldown_s=bad)
    off = WatchlistMatcher(lists, alert_cooldown_s=0)
    wanted = lists.create_watchlist("plate", "w")
    lists.put_entry(wanted["id"], {"plate": "9กข9999"})
    assert len(off.match_plate(_event("9กข9999", event_id="ev-1"))) == 1
    assert len(off.match_plate(_event("9กข9999", event_id="ev-2"))) == 1


def test_a_person_walking_out_and_back_alerts_once_per_window_per_camera(redis_url: str) -> None:
    """Face entries have the plates' cooldown per (person, camera): before, every new face track of a person who
    walked out of view and back in raised another alert on the same camera."""
    import numpy as np

    from pipeline.events import FaceEvent

    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    vec = np.zeros(8, np.float32)
    vec[0] = 1.0
    person = lists.create_person("P", vec[None, :])
    faces = lists.create_watchlist("face", "vip")
    lists.put_entry(faces["id"], {"person_id": person["id"], "threshold": 0.5})
    matcher = WatchlistMatcher(lists, alert_cooldown_s=0.5)

    def face(event_id: str, camera: str = "cam-1") -> FaceEvent:
        return FaceEvent(camera_id=camera, track_id=1, started_at=0, ended_at=1, frame_time=0.5, event_id=event_id,
                         embedding=vec.tolist(), quality=0.8, det_score=0.9)

    assert [a.entry_id for a in matcher.match_face(face("f-1"))] == [person["id"]]
    assert matcher.match_face(face("f-2")) == []  # the same person back in view on the same camera
    assert len(matcher.match_face(face("f-3", camera="cam-2"))) == 1  # another camera alerts at once
    time.sleep(0.6)
    assert len(matcher.match_face(face("f-4"))) == 1  # after the window
