"""The control-room API on one namespace host exports a clip of footage that a worker on another host recorded and
holds; with the worker host cut off the network the export is refused as unavailable (503 naming the host), and a
job already queued fails saying so, never a 500."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from pipeline.store.redis_setup import RedisCredentials, render_conf, write_private
from tests.cluster.footage import cut_segments
from tests.cluster.netns import Cluster, Host, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CAM = "bkk-night-01"  # a camera of the repository's cameras.yaml, which the API loads
VIDEO = "short_hamilton_clip.mp4"  # a keyframe every second or two: 2 s segments
API_PORT = 8000


def start_redis(host: Host, folder: Path, password: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "redis.conf"
    write_private(conf, render_conf(6379, folder, RedisCredentials(password, "", ""), service_users=False,
                                    bind=host.ip))
    host.popen(["redis-server", str(conf)], log=folder / "redis.log")


def run_agent(host: Host, env: dict[str, str], *args: str, timeout: float = 180) -> dict:
    done = host.run([sys.executable, "-m", "tests.cluster.agent", *args], env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}


def test_api_exports_footage_held_by_a_worker_host_and_reports_it_unavailable_when_that_host_is_down(
        cluster: Cluster, tmp_path: Path, shared_dir: Path) -> None:
    redis_host, worker, api, desk = (cluster.add_host(n) for n in ("redis", "worker-1", "api-1", "desk"))
    password, token, admin_pw = secrets.token_hex(16), secrets.token_hex(24), secrets.token_hex(12)
    start_redis(redis_host, tmp_path / "redis", password)
    base_env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "CCTV_REDIS_URL": f"redis://:{password}@{redis_host.ip}:6379/0",
                             "CCTV_INTERNAL_TOKEN": token}
    base_env.pop("CCTV_REDIS_SENTINELS", None)

    worker_rec = tmp_path / "worker-rec"
    segments = cut_segments(shared_dir / "data" / "videos" / VIDEO, worker_rec, CAM, "worker-1", tmp_path / "cut")
    listing = tmp_path / "segments.json"
    listing.write_text(json.dumps([s.__dict__ for s in segments]))
    worker_env = base_env | {"CCTV_HOST_NAME": "worker-1", "CCTV_RECORDINGS_DIR": str(worker_rec),
                             "CCTV_INTERNAL_LISTEN": f"{worker.ip}:9110"}
    wait_until(lambda: worker.run([sys.executable, "-m", "tests.cluster.agent", "index", "--camera", CAM,
                                   "--segments", str(listing)], env=worker_env, timeout=60).returncode == 0,
               60, "segments indexed by the worker host")
    worker.popen([sys.executable, "-m", "tests.cluster.agent", "serve-segments"], env=worker_env,
                 log=tmp_path / "segments.log", cwd=REPO_ROOT)

    api_rec = tmp_path / "api-rec"
    api_env = base_env | {"CCTV_HOST_NAME": "api-1", "CCTV_RECORDINGS_DIR": str(api_rec),
                          "CCTV_CONFIG_PATH": str(REPO_ROOT / "cameras.yaml"), "CCTV_SCRYPT_N": "16",
                          "CCTV_ADMIN_USER": "root", "CCTV_ADMIN_PASSWORD": admin_pw}
    api.popen([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", api.ip, "--port",
               str(API_PORT)], env=api_env, log=tmp_path / "api.log", cwd=REPO_ROOT)
    desk_env = base_env | {"ADMIN_PW": admin_pw}
    base = f"http://{api.ip}:{API_PORT}"
    wait_until(lambda: desk.run(["python3", "-c", f"import urllib.request; urllib.request.urlopen('{base}/api/health')"],
                                timeout=20).returncode == 0, 120, "API answering on its host")

    assert len(segments) >= 3
    login = ["--base", base, "--user", "root", "--password-env", "ADMIN_PW", "--camera", CAM]
    # the first two segments' time: exported on the API host from footage only worker-1 has
    start, end = segments[0].start + 0.5, segments[1].end - 0.5
    done = run_agent(desk, desk_env, "api-export", *login, "--start", repr(start), "--end", repr(end))
    assert done["status_code"] == 202, done
    assert done["job"]["status"] == "done", (done, (tmp_path / "api.log").read_text()[-3000:])
    assert done["download_sha256"] == done["job"]["sha256"] == done["manifest"]["sha256"]
    assert done["manifest"]["segments"] == [s.path for s in segments[:2]]
    assert abs(done["manifest"]["duration_s"] - (end - start)) < 1.5
    # the API host has no recording of its own: what it cut came from worker-1 (into its fetch cache)
    assert not (api_rec / CAM).exists() and (api_rec / ".remote" / "worker-1" / segments[0].path).is_file()

    worker.cut()  # the worker host drops off the network
    # the whole recording: the last segment was never fetched, and its host does not answer
    refused = run_agent(desk, desk_env, "api-export", *login, "--start", repr(segments[0].start + 0.1),
                        "--end", repr(segments[-1].end - 0.1))
    assert refused["status_code"] == 503, refused
    assert "'worker-1'" in refused["body"]["detail"] and "cannot be reached" in refused["body"]["detail"]
    assert refused["retry_after"] is not None
    # what was fetched before stays exportable while the host is away
    again = run_agent(desk, desk_env, "api-export", *login, "--start", repr(start), "--end", repr(end))
    assert again["job"]["status"] == "done" and again["manifest"]["segments"] == done["manifest"]["segments"]
    api_log = (tmp_path / "api.log").read_text()
    assert " 500 " not in api_log and "Traceback" not in api_log, api_log[-3000:]
