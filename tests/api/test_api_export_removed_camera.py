"""A camera removed from cameras.yaml (decommissioned, renamed) whose recordings retention still keeps stays exportable
as evidence and reviewable (timeline, playback): for an admin, or a user whose cameras include its id; its clip's
manifest says the camera is no longer configured. An id neither configured nor recorded, or a crafted one, is refused
as before.

Real Redis, real recordings (the Bangkok footage recorded by ffmpeg as camera ``old-gate-01``, which cameras.yaml
does not hold), real export by ffmpeg."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from fastapi.testclient import TestClient

from api.store import ApiStore
from pipeline.recording.index import BYTES_KEY, Segment, add_segment, index_key
from tests.api.conftest import PASSWORD
from tests.conftest import wait_for
from tests.playback_support import record

pytestmark = pytest.mark.timeout(300)

REMOVED, CONFIGURED = "old-gate-01", "bkk-night-01"
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"
CRAFTED = ["../x", "..%2Fx", "../../etc/passwd", "/etc/passwd", "old-gate-01\x00", "a\x00b", "bytes", "host-bytes",
           "Old-Gate-01", "old-gate-01/../bkk-night-01", "old gate", "x" * 65]


def _login(client: TestClient, rclient: redis.Redis, name: str, role: str, cameras: list[str] | None) -> dict:
    ApiStore(rclient, scrypt_n=16).put_user(name, role, PASSWORD, cameras)
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture()
def removed(client: TestClient, rclient: redis.Redis, api_settings, shared_dir: Path) -> list[Segment]:
    """The retained recording of camera old-gate-01 (not in cameras.yaml)."""
    return record(rclient, api_settings.recordings_dir, REMOVED, shared_dir / "data" / "videos" / DASHCAM,
                  time.time() - 600)


def _export(client: TestClient, headers: dict, camera_id: str, start: float, end: float):
    return client.post("/api/exports", headers=headers, json={"camera_id": camera_id, "start": start, "end": end})


def _finished(client: TestClient, headers: dict, job_id: str) -> dict:
    jobs: dict = {}

    def done() -> bool:
        jobs["job"] = client.get(f"/api/exports/{job_id}", headers=headers).json()
        return jobs["job"]["status"] in ("done", "failed")

    wait_for(done, 120, f"export {job_id}")
    assert jobs["job"]["status"] == "done", jobs["job"]
    return jobs["job"]


def test_a_removed_cameras_retained_footage_is_exported_and_its_manifest_says_so(
        client: TestClient, tokens: dict, rclient: redis.Redis, removed: list[Segment]) -> None:
    start, end = removed[0].start + 1, removed[0].start + 5
    r = _export(client, tokens["adm"], REMOVED, start, end)
    assert r.status_code == 202, r.text
    job = _finished(client, tokens["adm"], r.json()["id"])
    assert job["camera_id"] == REMOVED and job["error"] is None
    manifest = client.get(f"/api/exports/{job['id']}/manifest", headers=tokens["adm"])
    assert manifest.status_code == 200, manifest.text
    body = manifest.json()
    assert body["camera_id"] == REMOVED and body["sha256"] == job["sha256"]
    assert body["camera"]["id"] == REMOVED and body["camera"]["configured"] is False
    assert body["camera"]["name"] is None and "no longer" in body["camera"]["note"]
    clip = client.get(f"/api/exports/{job['id']}/download", headers=tokens["adm"])
    assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
    audit = ApiStore(rclient, scrypt_n=16).read_audit(None, 50, "adm", "export")
    assert [a["params"]["camera_configured"] for a in audit] == [False]  # the audit trail says so too


def test_who_may_export_a_removed_camera(client: TestClient, tokens: dict, rclient: redis.Redis,
                                         removed: list[Segment]) -> None:
    start, end = removed[0].start + 1, removed[0].start + 3
    scoped = _login(client, rclient, "gatekeeper", "investigator", [REMOVED])
    for who, headers in (("an investigator without a camera limit", tokens["inv"]), ("one limited to it", scoped)):
        r = _export(client, headers, REMOVED, start, end)
        assert r.status_code == 202, (who, r.text)
    r = _export(client, tokens["limited"], REMOVED, start, end)  # limited to walkway-01: not this camera
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"camera_id: unknown camera {REMOVED!r}"  # as for a camera that does not exist
    nowhere = _export(client, tokens["adm"], "never-was-01", start, end)
    assert nowhere.status_code == 422 and nowhere.json()["detail"] == "camera_id: unknown camera 'never-was-01'"


def test_a_configured_cameras_manifest_names_it(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                api_settings, shared_dir: Path) -> None:
    segments = record(rclient, api_settings.recordings_dir, CONFIGURED, shared_dir / "data" / "videos" / DASHCAM,
                      time.time() - 600)
    r = _export(client, tokens["inv"], CONFIGURED, segments[0].start + 1, segments[0].start + 3)
    assert r.status_code == 202, r.text
    job = _finished(client, tokens["inv"], r.json()["id"])
    camera = client.get(f"/api/exports/{job['id']}/manifest", headers=tokens["inv"]).json()["camera"]
    assert camera == {"id": CONFIGURED, "name": "Bangkok night traffic (dashcam)", "configured": True}


@pytest.mark.parametrize("camera_id", CRAFTED)
def test_crafted_camera_ids_are_refused_even_with_an_index(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                           camera_id: str) -> None:
    now = time.time()
    if camera_id not in ("bytes", "host-bytes"):  # those name the index's own hashes
        add_segment(rclient, camera_id, Segment(path=f"{camera_id}/x.mkv", start=now - 100, end=now - 90, size=1))
    rclient.hset(BYTES_KEY, "whatever", 1)
    r = _export(client, tokens["adm"], camera_id, now - 99, now - 95)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "camera_id"
    assert rclient.zcard("exports") == 0
    path = quote(camera_id, safe="")
    t = client.get(f"/api/recordings/{path}/timeline", params={"start": now - 200, "end": now},
                   headers=tokens["adm"])
    assert t.status_code == 404, t.text
    s = client.get(f"/api/recordings/{path}/stream", params={"t": now - 99}, headers=tokens["adm"])
    assert s.status_code == 404, s.text
    assert rclient.exists(index_key(camera_id)) or camera_id in ("bytes", "host-bytes")  # nothing removed


def test_a_removed_camera_is_reviewable_on_the_timeline_and_in_playback(
        client: TestClient, tokens: dict, rclient: redis.Redis, removed: list[Segment]) -> None:
    window = {"start": removed[0].start - 60, "end": removed[-1].end + 60}
    scoped = _login(client, rclient, "gatewatch", "operator", [REMOVED])
    for headers in (tokens["adm"], tokens["op"], scoped):
        r = client.get(f"/api/recordings/{REMOVED}/timeline", params=window, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["segments"] == len(removed)
    played = client.get(f"/api/recordings/{REMOVED}/stream", params={"t": removed[0].start + 1, "max_s": 5},
                        headers=tokens["adm"])
    assert played.status_code == 200, played.text
    assert played.content[4:8] == b"ftyp"
    for path in ("timeline", "stream"):  # limited to walkway-01: the same 404 as a camera that does not exist
        params = window if path == "timeline" else {"t": removed[0].start + 1}
        mine = client.get(f"/api/recordings/{REMOVED}/{path}", params=params, headers=tokens["limited"])
        nowhere = client.get(f"/api/recordings/never-was-01/{path}", params=params, headers=tokens["adm"])
        assert mine.status_code == nowhere.status_code == 404, (mine.text, nowhere.text)
        assert mine.json()["detail"] == f"camera {REMOVED!r} not found"
