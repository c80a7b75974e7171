"""Recorded playback API against real recordings: the Bangkok footage recorded as camera bkk-night-01 in 6 s
Matroska segments (stream copy), twice, with a 20 s gap between, indexed by the recorder's finaliser."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import redis

from pipeline.events import FaceEvent, PlateCandidate, PlateEvent
from pipeline.recording.index import Segment, add_segment
from pipeline.store import EventStore
from tests.playback_support import camera_stream, difference, frame_at, record

pytestmark = pytest.mark.timeout(300)

CAM, OTHER_CAM = "bkk-night-01", "walkway-01"
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"
GAP = 20.0


@pytest.fixture()
def recorded(client, rclient: redis.Redis, api_settings, shared_dir: Path):
    """Two recorded ranges of the dashcam footage with a 20 s gap; returns (first, second) segment lists."""
    video = shared_dir / "data" / "videos" / DASHCAM
    base = time.time() - 300  # recent: markers are found by store time, up to 10 min after the window
    first = record(rclient, api_settings.recordings_dir, CAM, video, base, tag="a")
    second = record(rclient, api_settings.recordings_dir, CAM, video, first[-1].end + GAP, tag="b")
    return first, second


def _ffprobe_frames(path: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True, timeout=60)
    return [float(x) for x in out.stdout.split()]


def test_timeline_ranges_gaps_and_markers(client, tokens, rclient, recorded):
    first, second = recorded
    store = EventStore(rclient)
    plate = PlateEvent(camera_id=CAM, track_id=1, started_at=first[1].start, ended_at=first[1].start + 2,
                       frame_time=first[1].start + 1, plate_text="1กอ5180", province="กรุงเทพมหานคร",
                       confidence=0.9, candidates=[PlateCandidate(text="1กอ5180", score=0.9)], vehicle_class="car")
    elsewhere = plate.model_copy(update={"event_id": "other-cam-event", "camera_id": OTHER_CAM})
    face = FaceEvent(camera_id=CAM, track_id=2, started_at=second[0].start, ended_at=second[0].start + 1,
                     frame_time=second[0].start + 0.5, embedding=[0.1] * 512, quality=0.8, det_score=0.9)
    assert store.publish_plate_event(plate) and store.publish_plate_event(elsewhere) and store.publish_face_event(face)

    day = (first[0].start - 600, second[-1].end + 600)
    r = client.get(f"/api/recordings/{CAM}/timeline", params={"start": day[0], "end": day[1]},
                   headers=tokens["inv"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["start"], x["end"]) for x in body["ranges"]] == [(first[0].start, first[-1].end),
                                                              (second[0].start, second[-1].end)]
    assert [(g["start"], g["end"]) for g in body["gaps"]] == [(first[-1].end, second[0].start)]
    assert body["gaps"][0]["end"] - body["gaps"][0]["start"] == pytest.approx(GAP, abs=0.01)
    assert body["segments"] == len(first) + len(second)
    assert body["recorded_s"] == pytest.approx(sum(s.duration for s in first + second), abs=0.01)
    kinds = [(m["kind"], m["event_id"]) for m in body["markers"]]
    assert kinds == [("plate", plate.event_id), ("face", face.event_id)]
    assert body["markers"][0]["label"] == "1กอ5180" and body["markers"][0]["time"] == plate.frame_time
    # an operator sees the plate read but not the face
    r = client.get(f"/api/recordings/{CAM}/timeline", params={"start": day[0], "end": day[1]}, headers=tokens["op"])
    assert [m["kind"] for m in r.json()["markers"]] == ["plate"]
    # ISO-8601 works too; a window cut inside the first range is clipped to it
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first[1].start))
    r = client.get(f"/api/recordings/{CAM}/timeline", params={"start": iso, "end": first[1].start + 3},
                   headers=tokens["op"])
    assert r.status_code == 200, r.text
    assert [(x["start"], x["end"]) for x in r.json()["ranges"]] == [(float(int(first[1].start)), first[1].start + 3)]


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "yesterday", "end": "1733050000"}, "start"),
    ({"start": "1733050000", "end": "nan"}, "end"),
    ({"start": "1733050000", "end": "1e30"}, "end"),
    ({"start": "1733050000", "end": "1733050000"}, "end"),
    ({"start": "1733050000", "end": str(1733050000 + 26 * 3600)}, "end"),
    ({"start": "12", "end": "13"}, "start"),
])
def test_timeline_refuses_bad_windows(client, tokens, params, field):
    r = client.get(f"/api/recordings/{CAM}/timeline", params=params, headers=tokens["op"])
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field}:")


def test_stream_starts_at_the_keyframe_before_t_and_matches_the_recording(client, tokens, rclient, recorded,
                                                                        tmp_path, shared_dir):
    first, second = recorded
    t = first[1].start + 1.52  # inside the second segment, between keyframes (1 s GOP)
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": t, "max_s": 600, "session": "test-1"},
                   headers=tokens["op"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    start = float(r.headers["X-Playback-Start"])
    assert start == pytest.approx(first[1].start + 1.0, abs=0.002)  # the keyframe at or before t
    assert float(r.headers["X-Playback-End"]) == pytest.approx(first[-1].end, abs=0.002)  # stops at the gap
    assert float(r.headers["X-Playback-Next"]) == pytest.approx(second[0].start, abs=0.002)
    assert float(r.headers["X-Playback-Frame-Rate"]) == pytest.approx(25.0)
    assert r.headers["X-Playback-Codec"] == "h264"
    body = r.content
    assert body[4:8] == b"ftyp" and b"moof" in body and b"mvex" in body  # fragmented MP4
    clip = tmp_path / "played.mp4"
    clip.write_bytes(body)
    frames = _ffprobe_frames(clip)
    assert frames[0] == pytest.approx(0.0, abs=1e-3)
    # every frame from the keyframe to the end of the range, across the segment boundaries, none twice
    assert len(frames) == round((first[-1].end - start) * 25)
    steps = [b - a for a, b in zip(frames, frames[1:], strict=False)]
    assert max(steps) < 0.05 and min(steps) > 0.03
    # the pictures are the recording's own: frame k of the stream == the camera stream at the same offset
    source = camera_stream(shared_dir / "data" / "videos" / DASHCAM)
    for k in (0, 13, 60):
        offset = start - first[0].start + k / 25
        assert difference(frame_at(clip, k / 25), frame_at(source, offset)) < 1.0, k
    # the session is audited with who, camera and the range played
    records = [json.loads(f[b"params"]) for _, f in rclient.xrange("audit") if f[b"action"] == b"playback"]
    assert records and records[-1]["camera_id"] == CAM and records[-1]["session"] == "test-1"
    assert records[-1]["from"] == pytest.approx(start) and records[-1]["to"] == pytest.approx(first[-1].end)


def test_stream_in_a_gap_starts_at_the_next_recording_or_says_when(client, tokens, recorded):
    first, second = recorded
    in_gap = first[-1].end + 5
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": in_gap, "max_s": 60}, headers=tokens["op"])
    assert r.status_code == 200, r.text
    assert float(r.headers["X-Playback-Start"]) == pytest.approx(second[0].start, abs=0.002)
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": in_gap, "max_s": 5}, headers=tokens["op"])
    assert r.status_code == 404
    assert f"next recording starts at epoch {second[0].start:.3f}" in r.json()["detail"]
    # a short max_s ends the stream early, at a whole segment; the continuation starts where it ended
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": first[0].start, "max_s": 3}, headers=tokens["op"])
    assert float(r.headers["X-Playback-End"]) == pytest.approx(first[0].end, abs=0.002)
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": r.headers["X-Playback-End"], "max_s": 3},
                   headers=tokens["op"])
    assert float(r.headers["X-Playback-Start"]) == pytest.approx(first[1].start, abs=0.002)
    # long before or after any recording
    for t in (first[0].start - 86400, second[-1].end + 30):
        r = client.get(f"/api/recordings/{CAM}/stream", params={"t": t}, headers=tokens["op"])
        assert r.status_code == 404 and "no recording" in r.json()["detail"]


def test_access_limits_and_crafted_input(client, tokens, rclient, recorded, api_settings):
    first, _ = recorded
    t = first[0].start + 1
    # a user limited to another camera gets neither the timeline nor the stream; anonymous gets 401
    assert client.get(f"/api/recordings/{CAM}/stream", params={"t": t}, headers=tokens["limited"]).status_code == 404
    r = client.get(f"/api/recordings/{CAM}/timeline", params={"start": t, "end": t + 60}, headers=tokens["limited"])
    assert r.status_code == 404
    assert client.get(f"/api/recordings/{CAM}/stream", params={"t": t}).status_code == 401
    # crafted camera ids and windows
    for cam in ("..%2F..%2Fetc", "nope", "bkk-night-01%00"):
        assert client.get(f"/api/recordings/{cam}/stream", params={"t": t}, headers=tokens["op"]).status_code == 404
    for params in ({"t": t, "max_s": 100000}, {"t": t, "max_s": 0}, {"t": "x" * 41}, {"t": t, "session": "a b"}):
        assert client.get(f"/api/recordings/{CAM}/stream", params=params, headers=tokens["op"]).status_code == 422
    # a tampered index entry pointing outside the camera's folder is never opened
    secret = api_settings.recordings_dir.parent / "secret.mkv"
    secret.write_bytes(b"secret")
    evil = first[0].start - 500
    add_segment(rclient, CAM, Segment(path="../secret.mkv", start=evil, end=evil + 6, size=6))
    add_segment(rclient, CAM, Segment(path=f"{OTHER_CAM}/x.mkv", start=evil + 6, end=evil + 12, size=6))
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": evil + 1, "max_s": 30}, headers=tokens["op"])
    assert r.status_code == 404, r.text


def test_concurrent_streams_cannot_pass_the_stream_limit_together(client, tokens, recorded, monkeypatch):
    """The playback limit holds under concurrency: requests that arrive while others are still being planned see
    those as running (the slot used to be counted only after planning, so a burst started any number of ffmpeg)."""
    import threading

    import api.routes.recordings as routes

    real_plan = routes.plan_playback

    def slow_plan(*args, **kwargs):
        time.sleep(4.0)  # every request of the burst arrives while the first ones are still planning
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(routes, "MAX_STREAMS", 2)
    monkeypatch.setattr(routes, "plan_playback", slow_plan)
    t = recorded[0][1].start + 1.0
    codes: list[int] = []

    def play() -> None:
        r = client.get(f"/api/recordings/{CAM}/stream", params={"t": t, "max_s": 10}, headers=tokens["op"])
        codes.append(r.status_code)

    threads = [threading.Thread(target=play) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(codes) == [200, 200, 429, 429, 429], codes
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": t, "max_s": 10}, headers=tokens["op"])
    assert r.status_code == 200  # every slot was given back
