"""Legal hold: what is attached to an open case survives every retention; closing the case lets it go.

Real files under a real recordings folder, real Redis, the real retention functions."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import redis
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from pipeline.config import parse_config
from pipeline.engine.snapshots import cleanup_snapshots
from pipeline.events import PlateEvent
from pipeline.recording.index import Segment, add_segment, index_key
from pipeline.recording.retention import apply_retention
from pipeline.store import EventStore, holds, keys

CAM = "bkk-night-01"
T0 = datetime(2024, 1, 10, 12, 0, tzinfo=UTC).timestamp()
DAY = "2024-01-10"


def _event(rclient: redis.Redis, rec: Path, plate: str, t: float) -> PlateEvent:
    """A stored plate event with a real snapshot and crop file."""
    event = PlateEvent(camera_id=CAM, track_id=1, started_at=t - 1, ended_at=t + 1, frame_time=t, plate_text=plate,
                       province="กรุงเทพมหานคร", confidence=0.9)
    rel = f"snapshots/{CAM}/{DAY}"
    event = event.model_copy(update={"snapshot_path": f"{rel}/{event.event_id}_frame.jpg",
                                     "crop_path": f"{rel}/{event.event_id}_plate.jpg"})
    for path in (event.snapshot_path, event.crop_path):
        (rec / path).parent.mkdir(parents=True, exist_ok=True)
        (rec / path).write_bytes(b"\xff\xd8\xff jpeg of " + plate.encode())
    assert EventStore(rclient).publish_plate_event(event)
    return event


def _segment(rclient: redis.Redis, rec: Path, start: float, end: float) -> Segment:
    """A recorded segment file, indexed."""
    hour = datetime.fromtimestamp(start, UTC).strftime("%H")
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    rel = f"{CAM}/{day}/{hour}/{int(start)}.mp4"
    (rec / rel).parent.mkdir(parents=True, exist_ok=True)
    (rec / rel).write_bytes(b"\0" * 1000)
    segment = Segment(path=rel, start=start, end=end, size=1000)
    add_segment(rclient, CAM, segment)
    return segment


def _retention(rclient: redis.Redis, rec: Path) -> None:
    """Every retention, as far in the future as it takes: events, snapshots/crops, recording segments."""
    EventStore(rclient).prune_before(time.time() + 60)
    cleanup_snapshots(rec, 1, now=time.time(), held=holds.held(rclient))
    config = parse_config(f'cameras:\n  - {{id: {CAM}, name: N, url: "rtsp://h/x", '
                          f'recording: {{retention_days: 1}}}}\n')
    apply_retention(rclient, config, rec, now=time.time())


def _stored(rclient: redis.Redis, event: PlateEvent) -> bool:
    raw = rclient.hget(keys.PLATE_EVENTS, event.event_id)
    if raw is None:
        return False
    sid = raw.decode().split("\t")[-1].split("|")[0]
    return bool(rclient.xrange(keys.PLATE_STREAM, sid, sid))


def _indexed(rclient: redis.Redis, segment: Segment) -> bool:
    return rclient.zscore(index_key(CAM), segment.member()) is not None


def _package(client: TestClient, headers: dict, case_id: str) -> tuple[dict, set[str]]:
    r = client.get(f"/api/cases/{case_id}/package", headers=headers)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return json.loads(zf.read("manifest.json")), set(zf.namelist())


def test_case_items_survive_retention_until_the_case_is_closed(client: TestClient, tokens: dict,
                                                               rclient: redis.Redis,
                                                               api_settings: ApiSettings) -> None:
    rec = api_settings.recordings_dir
    inv = tokens["inv"]
    kept, other = _event(rclient, rec, "1กข1234", T0), _event(rclient, rec, "2กข5678", T0 + 5000)
    near = _segment(rclient, rec, T0 - 10, T0 + 50)  # the recording of the held event
    far = _segment(rclient, rec, T0 + 3600, T0 + 3660)  # nobody holds this one
    clip_seg = _segment(rclient, rec, T0 + 7200, T0 + 7260)
    export_dir = api_settings.exports_root() / "job1"
    export_dir.mkdir(parents=True)
    (export_dir / "clip.mp4").write_bytes(b"mp4")
    (export_dir / "clip.json").write_text("{}")
    rclient.hset("export:job1", mapping={"id": "job1", "status": "done", "progress": "1", "camera_id": CAM,
                                         "start": repr(T0 + 7200), "end": repr(T0 + 7230), "requester": "inv",
                                         "created_at": repr(time.time()), "path": str(export_dir / "clip.mp4"),
                                         "manifest_path": str(export_dir / "clip.json"), "sha256": "x" * 64})
    case = client.post("/api/cases", headers=inv, json={"name": "stolen pickup"}).json()
    assert case["status"] == "open"
    for kind, ref in (("plate", kept.event_id), ("clip", "job1")):
        r = client.post(f"/api/cases/{case['id']}/items", headers=inv, json={"kind": kind, "ref": ref})
        assert r.status_code == 201, r.text

    _retention(rclient, rec)
    assert _stored(rclient, kept) and not _stored(rclient, other)
    assert (rec / kept.snapshot_path).is_file() and (rec / kept.crop_path).is_file()
    assert not (rec / other.snapshot_path).exists() and not (rec / other.crop_path).exists()
    assert _indexed(rclient, near) and (rec / near.path).is_file()
    assert _indexed(rclient, clip_seg) and (rec / clip_seg.path).is_file()
    assert not _indexed(rclient, far) and not (rec / far.path).exists()
    hits = client.get("/api/plates/search", params={"q": "1กข1234", "mode": "exact"}, headers=inv).json()["hits"]
    assert [h["event_id"] for h in hits] == [kept.event_id]  # still searchable, not just kept

    manifest, names = _package(client, inv, case["id"])
    assert manifest["missing"] == []
    assert f"events/plate-{kept.event_id}.json" in names and f"media/{kept.crop_path}" in names
    assert "clips/job1/clip.mp4" in names
    (export_dir / "clip.mp4").unlink()  # lost outside the service: the package says so
    manifest, names = _package(client, inv, case["id"])
    assert [(m["item"], m["what"]) for m in manifest["missing"]] == [("clip:job1", "clip")]

    closed = client.post(f"/api/cases/{case['id']}/close", headers=inv)
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_at"]
    refused = client.post(f"/api/cases/{case['id']}/items", headers=inv, json={"kind": "clip", "ref": "job1"})
    assert refused.status_code == 409
    _retention(rclient, rec)
    assert not _stored(rclient, kept)
    assert not (rec / kept.snapshot_path).exists() and not (rec / kept.crop_path).exists()
    assert not _indexed(rclient, near) and not (rec / near.path).exists()
    assert not _indexed(rclient, clip_seg) and not (rec / clip_seg.path).exists()
    manifest, names = _package(client, inv, case["id"])
    # the event record travels with the case; its pictures went with retention once the case was closed
    assert f"events/plate-{kept.event_id}.json" in names
    assert {(m["item"], m["what"]) for m in manifest["missing"]} == {(f"plate:{kept.event_id}", "snapshot"),
                                                                     (f"plate:{kept.event_id}", "crop"),
                                                                     ("clip:job1", "clip")}


def test_a_held_event_trimmed_from_its_size_capped_stream_stays_in_the_case(client: TestClient, tokens: dict,
                                                                            rclient: redis.Redis,
                                                                            api_settings: ApiSettings) -> None:
    rec = api_settings.recordings_dir
    inv = tokens["inv"]
    event = _event(rclient, rec, "4กข4444", T0)
    case = client.post("/api/cases", headers=inv, json={"name": "trimmed"}).json()
    assert client.post(f"/api/cases/{case['id']}/items", headers=inv,
                       json={"kind": "plate", "ref": event.event_id}).status_code == 201
    rclient.xtrim(keys.PLATE_STREAM, maxlen=0)  # what events_maxlen does to old entries of a busy control room
    assert not _stored(rclient, event)
    manifest, names = _package(client, inv, case["id"])
    assert manifest["missing"] == []
    record = json.loads(zipfile.ZipFile(io.BytesIO(client.get(f"/api/cases/{case['id']}/package",
                                                              headers=inv).content))
                        .read(f"events/plate-{event.event_id}.json"))
    assert record["plate_text"] == "4กข4444" and record["event_id"] == event.event_id
    assert f"media/{event.crop_path}" in names


def test_an_item_two_cases_hold_stays_held_until_both_close(client: TestClient, tokens: dict,
                                                           rclient: redis.Redis, api_settings: ApiSettings) -> None:
    rec = api_settings.recordings_dir
    inv = tokens["inv"]
    event = _event(rclient, rec, "3กข9999", T0)
    cases = [client.post("/api/cases", headers=inv, json={"name": f"c{i}"}).json()["id"] for i in range(2)]
    for cid in cases:
        assert client.post(f"/api/cases/{cid}/items", headers=inv,
                           json={"kind": "plate", "ref": event.event_id}).status_code == 201
    client.post(f"/api/cases/{cases[0]}/close", headers=inv)
    _retention(rclient, rec)
    assert _stored(rclient, event) and (rec / event.crop_path).is_file()
    client.post(f"/api/cases/{cases[1]}/close", headers=inv)
    _retention(rclient, rec)
    assert not _stored(rclient, event) and not (rec / event.crop_path).exists()


def test_open_cases_from_before_legal_hold_are_held_at_start(rclient: redis.Redis,
                                                            api_settings: ApiSettings) -> None:
    """A case written without a hold (older version) gets its hold when the API starts; a closed one does not."""
    from api.main import create_app

    rec = api_settings.recordings_dir
    old, closed = _event(rclient, rec, "4กข1111", T0), _event(rclient, rec, "5กข2222", T0 + 10)
    for case_id, event, status in (("oldcase", old, "open"), ("shut", closed, "closed")):
        rclient.hset(f"case:{case_id}", mapping={"id": case_id, "name": case_id, "description": "",
                                                 "created_by": "inv", "created_at": repr(T0), "status": status})
        rclient.zadd("cases", {case_id: T0})
        rclient.hset(f"case:{case_id}:items", f"plate:{event.event_id}",
                     json.dumps({"kind": "plate", "ref": event.event_id, "added_by": "inv", "added_at": T0}))
    with TestClient(create_app(api_settings)):
        pass
    _retention(rclient, rec)
    assert _stored(rclient, old) and (rec / old.crop_path).is_file()
    assert not _stored(rclient, closed) and not (rec / closed.crop_path).exists()


def test_a_package_flags_a_clip_whose_bytes_differ_from_its_export_hash(client: TestClient, tokens: dict,
                                                                        rclient: redis.Redis,
                                                                        api_settings: ApiSettings) -> None:
    import hashlib

    inv = tokens["inv"]
    export_dir = api_settings.exports_root() / "job2"
    export_dir.mkdir(parents=True)
    clip = export_dir / "clip.mp4"
    clip.write_bytes(b"the exported clip")
    (export_dir / "clip.json").write_text("{}")
    rclient.hset("export:job2", mapping={"id": "job2", "status": "done", "progress": "1", "camera_id": CAM,
                                         "start": repr(T0), "end": repr(T0 + 30), "requester": "inv",
                                         "created_at": repr(time.time()), "path": str(clip),
                                         "manifest_path": str(export_dir / "clip.json"),
                                         "sha256": hashlib.sha256(b"the exported clip").hexdigest()})
    case = client.post("/api/cases", headers=inv, json={"name": "evidence"}).json()
    assert client.post(f"/api/cases/{case['id']}/items", headers=inv, json={"kind": "clip", "ref": "job2"}).status_code == 201
    manifest, _ = _package(client, inv, case["id"])
    assert manifest["altered"] == []
    clip.write_bytes(b"the exported clip, edited")  # changed on disk after the export
    r = client.get(f"/api/cases/{case['id']}/package", headers=inv)
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        packaged = zf.read("clips/job2/clip.mp4")
    entry = {f["path"]: f["sha256"] for f in manifest["files"]}["clips/job2/clip.mp4"]
    assert entry == hashlib.sha256(packaged).hexdigest()  # the manifest vouches for the bytes in the zip
    assert [(a["item"], a["export_sha256"] != a["sha256"]) for a in manifest["altered"]] == [("clip:job2", True)]


def test_a_package_takes_no_file_from_outside_the_export_folders(client: TestClient, tokens: dict,
                                                                 rclient: redis.Redis, api_settings: ApiSettings,
                                                                 tmp_path: Path) -> None:
    """An export job record pointing outside the exports and recordings folders (a tampered or restored Redis) is
    not packaged, as its download is refused, and the manifest does not print the server's path."""
    inv = tokens["inv"]
    secret = tmp_path / "outside" / "server-secret.txt"
    secret.parent.mkdir()
    secret.write_text("not evidence")
    rclient.hset("export:job3", mapping={"id": "job3", "status": "done", "progress": "1", "camera_id": CAM,
                                         "start": repr(T0), "end": repr(T0 + 30), "requester": "inv",
                                         "created_at": repr(time.time()), "path": str(secret),
                                         "manifest_path": str(secret), "sha256": "0" * 64})
    case = client.post("/api/cases", headers=inv, json={"name": "tampered"}).json()
    assert client.post(f"/api/cases/{case['id']}/items", headers=inv, json={"kind": "clip", "ref": "job3"}).status_code == 201
    assert client.get("/api/exports/job3/download", headers=inv).status_code == 404
    r = client.get(f"/api/cases/{case['id']}/package", headers=inv)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert [n for n in zf.namelist() if n.startswith("clips/")] == []
        manifest = json.loads(zf.read("manifest.json"))
    assert {m["what"] for m in manifest["missing"] if m["item"] == "clip:job3"} == {"clip", "clip manifest"}
    assert str(secret.parent) not in json.dumps(manifest)


def test_a_damaged_case_item_is_shown_and_listed_missing_not_a_500(client: TestClient, tokens: dict,
                                                                   rclient: redis.Redis,
                                                                   api_settings: ApiSettings) -> None:
    """One unreadable stored case item (Redis edited by hand, a bad restore) used to make the case page, its
    package and the API's start (holds of old cases) fail; now it shows as ``damaged`` and the package lists it
    under ``missing``, every other item as before."""
    from api.main import create_app

    rec = api_settings.recordings_dir
    inv = tokens["inv"]
    kept = _event(rclient, rec, "6กข3333", T0)
    case = client.post("/api/cases", headers=inv, json={"name": "damaged item"}).json()
    assert client.post(f"/api/cases/{case['id']}/items", headers=inv,
                       json={"kind": "plate", "ref": kept.event_id}).status_code == 201
    for key, raw in (("clip:bad", b"{not json"), ("plate:odd", json.dumps({"kind": "plate"})),
                     ("face:bin", b"\xff\xfe"), ("plate:copy", json.dumps({"kind": "plate", "ref": "x", "added_at": 1,
                                                                           "event": {"camera_id": 5}}))):
        rclient.hset(f"case:{case['id']}:items", key, raw)
    r = client.get(f"/api/cases/{case['id']}", headers=inv)
    assert r.status_code == 200, r.text
    assert sorted(i["ref"] for i in r.json()["items"] if i["kind"] == "damaged") == ["clip:bad", "face:bin",
                                                                                      "plate:odd"]
    manifest, names = _package(client, inv, case["id"])
    assert f"events/plate-{kept.event_id}.json" in names
    damaged = {m["item"] for m in manifest["missing"] if m["what"] == "case item"}
    assert damaged == {"damaged:clip:bad", "damaged:face:bin", "damaged:plate:odd"}
    assert any(m["item"] == "plate:x" and m["what"] == "event record" for m in manifest["missing"])
    rclient.delete(holds.case_key(case["id"]))  # as a case from before legal holds: held again at start
    with TestClient(create_app(api_settings)):
        pass
    assert holds.held(rclient).events
