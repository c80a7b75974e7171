"""Watchlist matching against lists stored in a real Redis, and alert publication through the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis

from pipeline.engine.publisher import SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.engine.watchmatch import WatchlistMatcher
from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store import EventStore, WatchlistStore, keys

pytestmark = pytest.mark.timeout(60)


def _plate_event(text: str, camera: str = "bkk-night-01") -> PlateEvent:
    return PlateEvent(camera_id=camera, track_id=1, started_at=1.0, ended_at=2.0, frame_time=1.5, plate_text=text,
                      confidence=0.9, crop_path="snapshots/x/plate.jpg")


def test_plate_watchlist_entry_raises_an_alert_for_a_matching_plate_event(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    lists = WatchlistStore(client)
    wanted = lists.create_watchlist("plate", "wanted")
    elsewhere = lists.create_watchlist("plate", "elsewhere")
    exact = lists.put_entry(wanted["id"], {"plate": "1กอ 5180", "fuzzy": False, "max_distance": 0,
                                           "reason": "stolen", "severity": "critical"})
    fuzzy = lists.put_entry(wanted["id"], {"plate": "1กอ5188", "fuzzy": True, "max_distance": 1.0,
                                           "reason": "similar", "severity": "low"})
    lists.put_entry(elsewhere["id"], {"plate": "1กอ5180", "fuzzy": False, "max_distance": 0, "reason": "elsewhere",
                                      "severity": "medium", "cameras": ["other-cam"]})
    matcher = WatchlistMatcher(lists)
    publisher = SpooledPublisher(EventStore(client), EventSpool(tmp_path / "spool", 1_000_000))

    event = _plate_event("1กอ5180")
    publisher.publish("plate", event)
    alerts = matcher.match_plate(event)
    for alert in alerts:
        publisher.publish("alert", alert)
    # the exact and the fuzzy entry both match, but one watchlist raises one alert: the exact (best) entry's
    assert [a.entry_id for a in alerts] == [exact["entry_id"]]
    assert alerts[0].score == 1.0 and alerts[0].severity == "critical"
    assert alerts[0].frame_time == event.frame_time  # playback opens at the event's frame, not when it was raised
    near = matcher.match_plate(_plate_event("1กอ5189"))  # one edit from the fuzzy entry only
    assert [a.entry_id for a in near] == [fuzzy["entry_id"]] and 0 < near[0].score < 1.0
    stored = [Alert.model_validate_json(f[b"alert"]) for _, f in client.xrange(keys.ALERT_STREAM)]
    assert sorted(a.alert_id for a in stored) == sorted(a.alert_id for a in alerts)
    assert all(a.event_id == event.event_id and a.label == "1กอ5180" for a in stored)

    # a later version of the same event does not alert again; an unrelated plate does not alert at all
    assert matcher.match_plate(event.model_copy(update={"version": 2})) == []
    assert matcher.match_plate(_plate_event("9ขข9999")) == []
    assert matcher.match_plate(_plate_event("")) == []
    # the camera-restricted entry only fires on its camera; a list change is picked up (version cache)
    other = matcher.match_plate(_plate_event("1กอ5180", camera="other-cam"))
    assert sorted(a.watchlist_id for a in other) == sorted([wanted["id"], elsewhere["id"]])
    lists.delete_watchlist(wanted["id"])
    matcher.refresh(force=True)
    assert matcher.match_plate(_plate_event("1กอ5180")) == []


def test_face_match_takes_the_best_of_the_persons_embeddings_and_honours_threshold(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    lists = WatchlistStore(client)
    rng = np.random.default_rng(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 128)))
    person = lists.create_person("P", np.stack([a, b]))
    watch = lists.create_watchlist("face", "vip")
    lists.put_entry(watch["id"], {"person_id": person["id"], "threshold": 0.6, "severity": "high"})
    matcher = WatchlistMatcher(lists)

    def face(vec: np.ndarray) -> FaceEvent:
        return FaceEvent(camera_id="cam", track_id=1, started_at=0, ended_at=1, frame_time=0.5,
                         embedding=vec.tolist(), quality=0.8, det_score=0.9)

    near_b = b + 0.3 * c
    alerts = matcher.match_face(face(near_b / np.linalg.norm(near_b)))
    assert [x.entry_id for x in alerts] == [person["id"]] and alerts[0].score > 0.9 and alerts[0].label == "P"
    assert alerts[0].frame_time == 0.5
    assert matcher.match_face(face(c)) == []
    assert matcher.match_face(face(np.ones(64) / 8.0)) == []  # wrong embedding size: no crash, no match


def test_motorcycle_plate_entries_match_motorcycle_plate_events(redis_url: str) -> None:
    """Three-consonant, four-digit and digit-series motorcycle entries (typed as displayed) alert on their plates."""
    client = redis.Redis.from_url(redis_url)
    lists = WatchlistStore(client)
    wanted = lists.create_watchlist("plate", "motorcycles")
    entry = {"fuzzy": False, "max_distance": 0, "reason": "stolen", "severity": "high"}
    three = lists.put_entry(wanted["id"], {**entry, "plate": "อคม 888"})
    four = lists.put_entry(wanted["id"], {**entry, "plate": "งบล ๗๙๗๐", "fuzzy": True, "max_distance": 0.5})
    series = lists.put_entry(wanted["id"], {**entry, "plate": "1กช 4986"})
    assert (three["plate"], four["plate"], series["plate"]) == ("อคม888", "งบล7970", "1กช4986")
    assert sorted(e.plate for e in lists.plate_entries()) == sorted(["อคม888", "งบล7970", "1กช4986"])
    matcher = WatchlistMatcher(lists)

    def entries(text: str) -> list[str]:
        return [a.entry_id for a in matcher.match_plate(_plate_event(text))]

    assert entries("อคม888") == [three["entry_id"]]
    assert entries("งบล7970") == [four["entry_id"]]
    assert entries("งปล7970") == [four["entry_id"]]  # one look-alike (บ/ป) from the fuzzy entry
    assert entries("1กช4986") == [series["entry_id"]]
    assert entries("อคม8880") == [] and entries("อคม88") == [] and entries("งบล7971") == []
    client.close()
