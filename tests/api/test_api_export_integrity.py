"""An exported clip and its manifest are served only while they still hold the bytes hashed at export: a clip or a
manifest altered on the server is refused with 409 (and the refusal audited), an intact one is served with its
recorded SHA-256 in ``X-Content-SHA256``. The MP4 says when it was recorded (``creation_time``); a window reaching
past the recording is exported as a partial clip whose manifest lists the uncovered head and tail, and a window
ending in the future is refused.

Real Redis, real recordings (the Bangkok dashcam footage cut into segments by ffmpeg), real exports by ffmpeg."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.store import ApiStore
from pipeline.recording.index import Segment
from tests.conftest import wait_for
from tests.playback_support import record

pytestmark = pytest.mark.timeout(300)

CAM = "bkk-night-01"
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"
HEADER = "X-Content-SHA256"


@pytest.fixture()
def segments(rclient: redis.Redis, api_settings, shared_dir: Path) -> list[Segment]:
    """About 24 s of camera bkk-night-01 recorded ten minutes ago, in 6 s segments."""
    return record(rclient, api_settings.recordings_dir, CAM, shared_dir / "data" / "videos" / DASHCAM,
                  time.time() - 600)


def _exported(client: TestClient, headers: dict, start: float, end: float) -> dict:
    """Ask for the clip and wait for its job to finish (done)."""
    r = client.post("/api/exports", headers=headers, json={"camera_id": CAM, "start": start, "end": end})
    assert r.status_code == 202, r.text
    jobs: dict = {}

    def finished() -> bool:
        jobs["job"] = client.get(f"/api/exports/{r.json()['id']}", headers=headers).json()
        return jobs["job"]["status"] in ("done", "failed")

    wait_for(finished, 120, "the export")
    assert jobs["job"]["status"] == "done", jobs["job"]
    return jobs["job"]


def _files(rclient: redis.Redis, job_id: str) -> tuple[Path, Path]:
    path, manifest = rclient.hmget(f"export:{job_id}", ["path", "manifest_path"])
    return Path(path.decode()), Path(manifest.decode())


def _altered_audit(rclient: redis.Redis) -> list[dict]:
    return ApiStore(rclient, scrypt_n=16).read_audit(None, 50, None, "export_altered")


def _refused(response, what: str) -> None:
    assert response.status_code == 409, (response.status_code, response.headers.get("content-type"))
    detail = response.json()["detail"]
    assert f"the {what} on disk no longer matches the hash recorded at export" in detail, detail
    assert HEADER not in response.headers and b"ftyp" not in response.content


def test_an_intact_export_is_served_with_its_recorded_hashes(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                             segments: list[Segment]) -> None:
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 5)
    _, manifest_path = _files(rclient, job["id"])
    stored = rclient.hget(f"export:{job['id']}", "manifest_sha256")
    assert stored is not None and stored.decode() == hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    assert job["manifest_sha256"] == stored.decode()
    for _ in range(2):  # the second download uses the cached verification: the same answer
        clip = client.get(f"/api/exports/{job['id']}/download", headers=tokens["inv"])
        assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
        assert clip.headers[HEADER] == job["sha256"] == hashlib.sha256(clip.content).hexdigest()
    manifest = client.get(f"/api/exports/{job['id']}/manifest", headers=tokens["inv"])
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers[HEADER] == job["manifest_sha256"] == hashlib.sha256(manifest.content).hexdigest()
    body = manifest.json()
    assert body["sha256"] == job["sha256"] and body["camera"]["id"] == CAM
    assert body["complete"] is True and body["gaps"] == [] and job["complete"] is True
    assert _altered_audit(rclient) == []


def test_a_clip_altered_on_disk_is_refused_and_audited(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                       segments: list[Segment]) -> None:
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 5)
    mp4, _ = _files(rclient, job["id"])
    assert client.get(f"/api/exports/{job['id']}/download", headers=tokens["inv"]).status_code == 200  # verified
    before = mp4.stat()
    data = bytearray(mp4.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of a picture changed: same size ...
    mp4.write_bytes(bytes(data))
    os.utime(mp4, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and the modification time put back
    clip = client.get(f"/api/exports/{job['id']}/download", headers=tokens["inv"])
    _refused(clip, "clip")
    [entry] = _altered_audit(rclient)
    assert entry["user"] == "inv" and entry["params"]["job_id"] == job["id"] and entry["params"]["file"] == "clip"
    assert entry["params"]["recorded_sha256"] == job["sha256"]
    assert entry["params"]["sha256"] == hashlib.sha256(bytes(data)).hexdigest()


def test_a_manifest_edited_on_the_server_is_refused(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                    segments: list[Segment]) -> None:
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 5)
    _, manifest_path = _files(rclient, job["id"])
    manifest = json.loads(manifest_path.read_text())
    manifest["requester"] = "someone-else"
    manifest["window"]["start"] = "2020-01-01T00:00:00.000Z"
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    _refused(client.get(f"/api/exports/{job['id']}/manifest", headers=tokens["inv"]), "clip manifest")
    [entry] = _altered_audit(rclient)
    assert entry["params"]["file"] == "clip manifest" and entry["params"]["recorded_sha256"] == job["manifest_sha256"]


def test_a_job_exported_before_manifests_were_hashed_serves_its_manifest_as_before(
        client: TestClient, tokens: dict, rclient: redis.Redis, segments: list[Segment]) -> None:
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 3)
    rclient.hdel(f"export:{job['id']}", "manifest_sha256")
    manifest = client.get(f"/api/exports/{job['id']}/manifest", headers=tokens["inv"])
    assert manifest.status_code == 200 and HEADER not in manifest.headers
    assert manifest.json()["sha256"] == job["sha256"]


def test_the_clip_says_when_it_was_recorded(client: TestClient, tokens: dict, rclient: redis.Redis,
                                            segments: list[Segment]) -> None:
    job = _exported(client, tokens["inv"], segments[1].start + 2, segments[1].start + 6)
    mp4, manifest_path = _files(rclient, job["id"])
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags=creation_time:stream=codec_name",
                            "-of", "json", str(mp4)], capture_output=True, text=True, check=True, timeout=60)
    info = json.loads(probe.stdout)
    stamped = datetime.fromisoformat(info["format"]["tags"]["creation_time"].replace("Z", "+00:00")).timestamp()
    covered = json.loads(manifest_path.read_text())["covered"]
    assert abs(stamped - covered["start_epoch"]) < 1.0 and abs(stamped - (segments[1].start + 2)) < 1.0
    assert info["streams"][0]["codec_name"] == "h264"  # still the camera's own stream (stream copy)


def test_a_window_reaching_past_the_recording_is_a_partial_clip(client: TestClient, tokens: dict,
                                                                rclient: redis.Redis,
                                                                segments: list[Segment]) -> None:
    start, end = segments[0].start - 20, segments[-1].end + 20
    job = _exported(client, tokens["inv"], start, end)
    assert job["complete"] is False
    assert abs(job["covered_start"] - segments[0].start) < 0.01 and abs(job["covered_end"] - segments[-1].end) < 0.01
    manifest = client.get(f"/api/exports/{job['id']}/manifest", headers=tokens["inv"]).json()
    assert manifest["complete"] is False
    assert manifest["requested"]["start"] == manifest["window"]["start"]
    assert manifest["covered"]["start_epoch"] > manifest["window"]["start_epoch"]
    assert manifest["covered"]["end_epoch"] < manifest["window"]["end_epoch"]
    head, tail = manifest["gaps"][0], manifest["gaps"][-1]
    assert head == {"start": manifest["window"]["start"], "end": manifest["covered"]["start"]}
    assert tail == {"start": manifest["covered"]["end"], "end": manifest["window"]["end"]}


def test_a_window_ending_in_the_future_is_refused(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                  api_settings, shared_dir: Path) -> None:
    record(rclient, api_settings.recordings_dir, CAM, shared_dir / "data" / "videos" / DASHCAM, time.time() - 25)
    now = time.time()
    r = client.post("/api/exports", headers=tokens["inv"], json={"camera_id": CAM, "start": now - 40, "end": now + 60})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "end" and "future" in r.json()["detail"]
    assert rclient.zcard("exports") == 0
