"""Export jobs that a killed API server left queued or running are marked failed at the next start, and the
half-written clips they left behind are removed (nothing else in the exports folder is touched)."""

from __future__ import annotations

import time

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.exports import INTERRUPTED
from api.settings import ApiSettings

pytestmark = pytest.mark.timeout(120)


def _job(rclient: redis.Redis, job_id: str, status: str) -> None:
    rclient.hset(f"export:{job_id}", mapping={"id": job_id, "status": status, "progress": "0.4",
                                              "camera_id": "bkk-night-01", "start": "1000.0", "end": "1010.0",
                                              "requester": "inv", "created_at": repr(time.time())})
    rclient.zadd("exports", {job_id: time.time()})


def test_interrupted_exports_fail_with_a_reason_and_their_partial_files_go(api_settings: ApiSettings,
                                                                          rclient: redis.Redis) -> None:
    for job_id, status in (("j-run", "running"), ("j-wait", "queued"), ("j-done", "done"), ("j-bad", "failed")):
        _job(rclient, job_id, status)
    root = api_settings.exports_root()
    (root / "j-run").mkdir(parents=True)
    part = root / "j-run" / "clip.part.mp4"
    part.write_bytes(b"\x00" * 100)
    done = root / "j-done" / "clip.mp4"
    done.parent.mkdir(parents=True)
    done.write_bytes(b"\x00" * 100)
    with TestClient(create_app(api_settings)):
        pass  # the start-up sweep runs in the lifespan
    status = {j: rclient.hget(f"export:{j}", "status").decode() for j in ("j-run", "j-wait", "j-done", "j-bad")}
    assert status == {"j-run": "failed", "j-wait": "failed", "j-done": "done", "j-bad": "failed"}
    assert rclient.hget("export:j-run", "error").decode() == INTERRUPTED
    assert not part.exists() and done.exists()
