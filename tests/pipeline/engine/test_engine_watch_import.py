"""A CSV hot-list import reaches the engine's watchlist matcher: the import bumps the watchlist version in the same
transaction as its rows (real Redis), so a running matcher re-reads and alerts on the imported plates."""

from __future__ import annotations

import pytest
import redis

from pipeline.engine.watchmatch import WatchlistMatcher
from pipeline.events import PlateEvent
from pipeline.store import WatchlistStore

pytestmark = pytest.mark.timeout(60)


def _plate_event(text: str, camera: str = "bkk-night-01") -> PlateEvent:
    return PlateEvent(camera_id=camera, track_id=1, started_at=1.0, ended_at=2.0, frame_time=1.5, plate_text=text,
                      confidence=0.9, crop_path="snapshots/x/plate.jpg")


def _row(plate: str, reason: str, severity: str = "high") -> dict:
    return {"plate": plate, "province": None, "fuzzy": False, "max_distance": 1.0, "reason": reason,
            "severity": severity, "expires_at": None, "cameras": None, "enabled": True}


def test_imported_entries_are_picked_up_by_a_running_matcher(redis_url: str) -> None:
    lists = WatchlistStore(redis.Redis.from_url(redis_url))
    wanted = lists.create_watchlist("plate", "police hot list")
    matcher = WatchlistMatcher(lists, refresh_interval_s=0)
    assert matcher.match_plate(_plate_event("1กข1234")) == []  # loaded, empty
    version = lists.version()
    dry = lists.import_plate_entries(wanted["id"], [_row("1กข1234", "stolen")], "skip", "adm", dry_run=True)
    assert dry == {"added": 1, "updated": 0, "skipped": 0} and lists.version() == version
    assert matcher.match_plate(_plate_event("1กข1234")) == []
    counts = lists.import_plate_entries(wanted["id"], [_row("1กข1234", "stolen"), _row("1กช4986", "warrant")],
                                        "skip", "adm")
    assert counts == {"added": 2, "updated": 0, "skipped": 0} and lists.version() == version + 1
    [alert] = matcher.match_plate(_plate_event("1กช4986"))
    assert alert.watchlist_id == wanted["id"] and alert.reason == "warrant" and alert.severity == "high"
    # an update import changes the entry the engine holds (same entry id, new reason)
    again = lists.import_plate_entries(wanted["id"], [_row("1กข1234", "recovered?", "low")], "update", "adm")
    assert again == {"added": 0, "updated": 1, "skipped": 0}
    [alert] = matcher.match_plate(_plate_event("1กข1234", camera="stage-01"))
    assert alert.reason == "recovered?" and alert.severity == "low"
    assert lists.import_plate_entries("missing", [_row("1กข1234", "x")], "skip") is None
