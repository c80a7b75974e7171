"""Several API replicas on one Redis (`pipeline run --role api`): the camera list follows the configuration pushed
to Redis, health says which worker host holds a camera, and a replica starting never fails another live replica's
export jobs (only those of replicas that are gone)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.clusterconfig import follow_camera_config
from api.exportqueue import alive_key
from api.main import create_app
from api.routes.exports import INTERRUPTED
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.cluster.configstore import push_config
from pipeline.ingest.health import write_camera_health

pytestmark = pytest.mark.timeout(120)
PASSWORD = "correct horse battery"


def _yaml(*ids: str) -> str:
    return "cameras:\n" + "".join(f"  - {{id: {i}, name: {i.upper()}, url: 'rtsp://10.1.1.1/{i}'}}\n" for i in ids)


def _login(tc: TestClient, rclient: redis.Redis) -> dict[str, str]:
    ApiStore(rclient, scrypt_n=16).put_user("adm", "admin", PASSWORD, None)
    r = tc.post("/api/auth/login", json={"username": "adm", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_the_camera_list_follows_the_pushed_configuration(api_settings: ApiSettings, rclient: redis.Redis) -> None:
    push_config(rclient, _yaml("pushed-1", "pushed-2"))
    write_camera_health(rclient, "pushed-1", {"status": "online", "worker": "w-7", "host": "gpu-7", "lease_token": 3})
    app = create_app(api_settings)
    with TestClient(app) as tc:
        auth = _login(tc, rclient)
        cams = {c["id"]: c for c in tc.get("/api/cameras", headers=auth).json()}
        assert set(cams) == {"pushed-1", "pushed-2"}  # not the file's cameras: the pushed configuration
        assert (cams["pushed-1"]["worker"], cams["pushed-1"]["host"]) == ("w-7", "gpu-7")
        assert cams["pushed-1"]["health"]["lease_token"] == 3
        assert cams["pushed-2"]["worker"] is None
        push_config(rclient, _yaml("pushed-2", "pushed-3"))
        assert follow_camera_config(app, rclient)  # what the replica's background loop does every 5 s
        assert not follow_camera_config(app, rclient)  # same version: nothing to do
        assert {c["id"] for c in tc.get("/api/cameras", headers=auth).json()} == {"pushed-2", "pushed-3"}
        assert tc.get("/api/cameras/pushed-1", headers=auth).status_code == 404


def _job(rclient: redis.Redis, job_id: str, owner: str | None) -> None:
    job = {"id": job_id, "status": "running", "progress": "0.4", "camera_id": "bkk-night-01", "start": "1000.0",
           "end": "1010.0", "requester": "inv", "created_at": repr(time.time())}
    if owner:
        job["owner"] = owner
    rclient.hset(f"export:{job_id}", mapping=job)
    rclient.zadd("exports", {job_id: time.time()})


def test_a_starting_replica_fails_only_the_jobs_of_replicas_that_are_gone(api_settings: ApiSettings,
                                                                         rclient: redis.Redis, tmp_path: Path) -> None:
    first = create_app(api_settings)
    with TestClient(first):
        live_owner = first.state.export_queue.instance
        assert rclient.exists(alive_key(live_owner))
        _job(rclient, "j-live", live_owner)  # being cut by the first replica right now
        _job(rclient, "j-dead", "f00dfeedf00dfeed")  # its replica was killed: no liveness key
        part = api_settings.exports_root() / "j-live" / "clip.part.mp4"
        part.parent.mkdir(parents=True)
        part.write_bytes(b"\x00" * 10)
        second = create_app(api_settings)
        with TestClient(second):
            assert second.state.export_queue.instance != live_owner
        status = {j: rclient.hget(f"export:{j}", "status").decode() for j in ("j-live", "j-dead")}
        assert status == {"j-live": "running", "j-dead": "failed"}
        assert rclient.hget("export:j-dead", "error").decode() == INTERRUPTED
        assert part.exists()  # the live replica's half-written clip is left alone
    rclient.delete(alive_key(live_owner))  # the first replica is gone (its key would expire within 30 s)
    with TestClient(create_app(api_settings)):
        pass
    assert rclient.hget("export:j-live", "status") == b"failed" and not part.exists()
