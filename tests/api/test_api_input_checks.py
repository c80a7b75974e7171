"""One reading of times and camera ids across plate search and exports.

Times: epoch seconds or ISO-8601 (a zone, or none: UTC) everywhere, and the OpenAPI document says so. Cameras: an id
that is neither configured nor holds stored data is a 422 naming it, and an id outside a limited caller's cameras gets
the very same answer (it must not tell that the camera exists). Exports: a window in the future or without any
recording is refused at once instead of being queued to fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.events import PlateEvent
from pipeline.recording.index import Segment, add_segment, index_key
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)

MINE, OTHER, REMOVED = "walkway-01", "bkk-night-01", "gate-old-07"  # REMOVED: not in cameras.yaml any more
T = 1_796_094_000.0  # 2026-12-01T03:00:00Z
ISO = "2026-12-01T03:00:00Z"


def publish_plate(rclient: redis.Redis, plate: str, camera: str, t: float = T) -> None:
    """Store one plate read through the engine's writer."""
    event = PlateEvent(camera_id=camera, track_id=1, started_at=t - 1, ended_at=t + 1, frame_time=t,
                       plate_text=plate, province="กรุงเทพมหานคร", confidence=0.9,
                       crop_path=f"crops/{camera}/{plate}.jpg")
    assert EventStore(rclient).publish_plate_event(event)


def plate_times(r) -> list[float]:  # noqa: ANN001 - httpx response
    assert r.status_code == 200, r.text
    return [h["frame_time"] for h in r.json()["hits"]]


# ---- times -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "end"), [(ISO, "2026-12-01T03:00:01Z"),
                                            ("2026-12-01T10:00:00+07:00", "2026-12-01T10:00:01+07:00"),
                                            ("2026-12-01T03:00:00", "2026-12-01T03:00:01"),  # no zone: UTC
                                            (str(T), str(T + 1))])
def test_plate_search_and_history_take_iso_and_epoch_times(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                            start: str, end: str) -> None:
    publish_plate(rclient, "1กข1234", MINE)
    publish_plate(rclient, "1กข1234", MINE, t=T + 3600)
    r = client.get("/api/plates/search", params={"q": "1กข1234", "start": start, "end": end}, headers=tokens["inv"])
    assert plate_times(r) == [T]
    r = client.get("/api/plates/1กข1234/history", params={"reason": "case 12", "start": start, "end": end},
                   headers=tokens["inv"])
    assert plate_times(r) == [T]


def test_a_malformed_time_is_a_field_error_saying_what_is_accepted(client: TestClient, tokens: dict) -> None:
    r = client.get("/api/plates/search", params={"q": "1234", "start": "yesterday"}, headers=tokens["inv"])
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "start" and "ISO-8601" in error["message"] and "epoch" in error["message"]
    r = client.post("/api/exports", headers=tokens["inv"], json={"camera_id": MINE, "start": "soon", "end": T})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "start", r.text


def test_openapi_says_times_are_numbers_or_date_time_strings(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/api/plates/search", "/api/plates/{plate}/history"):
        params = {p["name"]: p["schema"] for p in doc["paths"][path]["get"]["parameters"]}
        for name in ("start", "end"):
            text = str(params[name])
            assert "'type': 'number'" in text and "'format': 'date-time'" in text, (path, name, params[name])
    body = doc["components"]["schemas"]["ExportCreate"]["properties"]
    for name in ("start", "end"):
        kinds = {(s.get("type"), s.get("format")) for s in body[name]["anyOf"]}
        assert kinds == {("number", None), ("string", "date-time")}, body[name]


# ---- cameras -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "extra"), [("/api/plates/search", {"q": "1234"}),
                                             ("/api/plates/1234/history", {"reason": "case 12"})])
def test_plate_routes_refuse_an_unknown_camera_naming_it(client: TestClient, tokens: dict, path: str,
                                                         extra: dict) -> None:
    r = client.get(path, params={**extra, "cameras": [MINE, "nope-99"]}, headers=tokens["inv"])
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "cameras", "message": "unknown camera 'nope-99'", "type": "value_error"}]


def test_a_camera_outside_the_callers_scope_is_answered_like_an_unknown_one(client: TestClient, tokens: dict,
                                                                          rclient: redis.Redis) -> None:
    publish_plate(rclient, "1กข1234", OTHER)
    other = client.get("/api/plates/search", params={"q": "1234", "cameras": OTHER}, headers=tokens["limited"])
    unknown = client.get("/api/plates/search", params={"q": "1234", "cameras": "nope-99"}, headers=tokens["limited"])
    assert other.status_code == unknown.status_code == 422
    assert other.json()["detail"] == unknown.json()["detail"].replace("nope-99", OTHER)
    assert "walkway" not in unknown.json()["detail"]  # the existing cameras are never listed
    mine = client.get("/api/plates/search", params={"q": "1234", "cameras": MINE}, headers=tokens["limited"])
    assert mine.status_code == 200 and mine.json()["hits"] == []
    for camera in (OTHER, "nope-99"):
        r = client.post("/api/exports", headers=tokens["limited"], json={"camera_id": camera, "start": T, "end": T + 9})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "camera_id", "message": f"unknown camera {camera!r}",
                                       "type": "value_error"}]


def test_a_removed_camera_with_stored_reads_stays_searchable(client: TestClient, tokens: dict,
                                                             rclient: redis.Redis) -> None:
    publish_plate(rclient, "1กข1234", REMOVED)
    r = client.get("/api/plates/search", params={"q": "1กข1234", "cameras": REMOVED}, headers=tokens["inv"])
    assert plate_times(r) == [T]
    r = client.get("/api/plates/search", params={"q": "1กข1234", "cameras": REMOVED}, headers=tokens["limited"])
    assert r.status_code == 422  # but not for a user limited to other cameras


# ---- export windows ----------------------------------------------------------------------------------------------
@pytest.fixture()
def recorded(rclient: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Segment]:
    """One indexed minute of MINE at T (no file: the export job is replaced by a no-op)."""
    from api.routes import exports

    monkeypatch.setattr(exports, "run_export", lambda *args: None)
    segment = Segment(f"{MINE}/2026-12-01/03/{MINE}_20261201T030000.000Z.mkv", T, T + 60, 1000)
    add_segment(rclient, MINE, segment)
    yield segment
    rclient.delete(index_key(MINE))


def test_export_takes_iso_times(client: TestClient, tokens: dict, recorded: Segment) -> None:
    r = client.post("/api/exports", headers=tokens["inv"],
                    json={"camera_id": MINE, "start": "2026-12-01T10:00:10+07:00", "end": "2026-12-01T03:00:40Z"})
    assert r.status_code == 202, r.text
    assert (r.json()["start"], r.json()["end"]) == (T + 10, T + 40)


def test_an_export_in_the_future_is_refused_before_it_is_queued(client: TestClient, tokens: dict,
                                                                 rclient: redis.Redis, recorded: Segment) -> None:
    now = time.time()
    r = client.post("/api/exports", headers=tokens["inv"], json={"camera_id": MINE, "start": now + 3600,
                                                                 "end": now + 3660})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "start" and "future" in r.json()["detail"]
    assert rclient.zcard("exports") == 0


def test_an_export_of_a_window_without_recording_is_refused_at_once(client: TestClient, tokens: dict,
                                                                    rclient: redis.Redis, recorded: Segment) -> None:
    r = client.post("/api/exports", headers=tokens["inv"], json={"camera_id": MINE, "start": T - 600, "end": T - 300})
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == f"no recording of camera {MINE!r} covers 2026-12-01T02:50:00Z .. 2026-12-01T02:55:00Z"
    assert rclient.zcard("exports") == 0
    r = client.post("/api/exports", headers=tokens["inv"], json={"camera_id": MINE, "start": T - 30, "end": T + 5})
    assert r.status_code == 202, r.text  # a window that overlaps the recording is queued


def test_a_buddhist_era_year_is_refused_with_the_gregorian_one(client: TestClient, tokens: dict) -> None:
    """A Thai user typing 2569 (2026 CE) would otherwise search a window 543 years away and find nothing."""
    r = client.get("/api/plates/search", params={"q": "1234", "start": "2569-12-01T00:00:00+07:00"},
                   headers=tokens["inv"])
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "start" and "Buddhist-era" in error["message"] and "2026" in error["message"]
    r = client.post("/api/exports", headers=tokens["inv"], json={"camera_id": MINE, "start": "2569-12-01T03:00:00Z",
                                                                 "end": T})
    assert r.status_code == 422 and "Buddhist-era" in r.text, r.text
