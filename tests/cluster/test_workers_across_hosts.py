"""Three worker hosts (`pipeline run --role worker`, each in its own network namespace) share six RTSP cameras
through leases in a Redis on a fourth host: every camera held and captured by exactly one worker, a third worker
that joins gets its share one camera at a time, and a worker SIGKILLed has its cameras taken by the others within
15 s. Each worker host serves the same looping footage as RTSP cameras on its own loopback (`pipeline
serve-cameras`), so a camera URL means the same stream wherever the camera moves. Cameras are record-only (no
models to load) to keep the run light on CPU."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

from pipeline.store.redis_setup import RedisCredentials, render_conf, write_private
from tests.cluster.netns import Cluster, Host, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIP = "short_hamilton_clip"
CAMERAS = [f"c-{i}" for i in range(1, 7)]
STATUS = """
import json, redis
from pipeline.cluster.measure import camera_holders
from pipeline.ingest.health import read_camera_health
from pipeline.settings import get_settings
client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=5, socket_connect_timeout=5)
cams = {cams!r}
health = {{h["camera_id"]: h for h in read_camera_health(client)}}
print(json.dumps({{"holders": camera_holders(client, cams),
                  "health": {{c: [health.get(c, {{}}).get(k) for k in ("status", "worker", "host", "stale")]
                             for c in cams}}}}))
"""

WATCH = """
import json, redis
from pipeline.cluster.measure import wait_handover
from pipeline.settings import get_settings
client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=5, socket_connect_timeout=5)
print("ready", flush=True)
print(json.dumps(wait_handover(client, {victims!r}, {lost!r}, timeout_s=90, poll_s=0.05, started=0.0)), flush=True)
"""


def config_text() -> str:
    lines = ["cluster: {lease_ttl_s: 5, renew_interval_s: 1, rebalance_interval_s: 2, orphan_grace_s: 1}\n",
             "ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n",
             "cameras:\n"]
    for cam in CAMERAS:
        lines.append(f"  - {{id: {cam}, name: {cam}, url: 'rtsp://127.0.0.1:8554/{CLIP}', "
                     "analytics: {plates: false, faces: false}}\n")
    return "".join(lines)


def status(host: Host, env: dict[str, str]) -> dict:
    done = host.run([sys.executable, "-c", STATUS.format(cams=CAMERAS)], env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def counts(state: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for worker in state["holders"].values():
        out[worker] = out.get(worker, 0) + 1
    return out


def captured_once(state: dict) -> bool:
    """Every camera online, and captured by the worker holding its lease (so by no other)."""
    return all(state["health"][cam][0] == "online" and state["health"][cam][1] == worker and worker
               and not state["health"][cam][3] for cam, worker in state["holders"].items())


def test_three_worker_hosts_share_cameras_and_take_over_a_killed_ones(
        cluster: Cluster, tmp_path: Path, shared_dir: Path) -> None:
    redis_host = cluster.add_host("redis")
    hosts = {name: cluster.add_host(name) for name in ("w-1", "w-2", "w-3")}
    password = secrets.token_hex(16)
    folder = tmp_path / "redis"
    folder.mkdir()
    conf = folder / "redis.conf"
    write_private(conf, render_conf(6379, folder, RedisCredentials(password, "", ""), service_users=False,
                                    bind=redis_host.ip))
    redis_host.popen(["redis-server", str(conf)], log=folder / "redis.log")
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "CCTV_REDIS_URL": f"redis://:{password}@{redis_host.ip}:6379/0"}
    env.pop("CCTV_REDIS_SENTINELS", None)
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / f"{CLIP}.mp4").symlink_to(shared_dir / "data" / "videos" / f"{CLIP}.mp4")
    cfg = tmp_path / "cameras.yaml"
    cfg.write_text(config_text())
    wait_until(lambda: redis_host.run([sys.executable, "-m", "pipeline", "cluster", "push-config", str(cfg)],
                                      env=env, timeout=60).returncode == 0, 60, "configuration pushed")

    procs = {}

    def start(name: str) -> None:
        host = hosts[name]
        host.popen([sys.executable, "-m", "pipeline", "serve-cameras", "--videos", str(videos), "--port", "8554"],
                   env=env, log=tmp_path / f"{name}-cams.log", cwd=REPO_ROOT)
        procs[name] = host.popen([sys.executable, "-m", "pipeline", "run", "--role", "worker", "--worker-id", name,
                                  "--slots", "6"],
                                 env=env | {"CCTV_HOST_NAME": name, "CCTV_RECORDINGS_DIR": str(tmp_path / name)},
                                 log=tmp_path / f"{name}.log", cwd=REPO_ROOT)  # fmt: skip

    start("w-1")
    start("w-2")
    wait_until(lambda: counts(status(redis_host, env)) == {"w-1": 3, "w-2": 3}, 120, "a 3/3 split")
    wait_until(lambda: captured_once(status(redis_host, env)), 120, "every camera online on its holder, once")
    hosts_seen = {tuple(v[1:3]) for v in status(redis_host, env)["health"].values()}
    assert hosts_seen == {("w-1", "w-1"), ("w-2", "w-2")}  # health names the holding host

    def releases() -> int:
        return sum((tmp_path / f"{n}.log").read_text().count("releasing") for n in ("w-1", "w-2"))

    before = releases()  # w-1 may have held everything for a moment before w-2 registered
    start("w-3")
    wait_until(lambda: counts(status(redis_host, env)) == {"w-1": 2, "w-2": 2, "w-3": 2}, 120,
               "a 2/2/2 rebalance after w-3 joined")  # fmt: skip
    wait_until(lambda: captured_once(status(redis_host, env)), 120, "every camera online once after the rebalance")
    assert releases() - before == 2  # exactly the two cameras w-3 needed moved, one by each of the others

    victims = [cam for cam, w in status(redis_host, env)["holders"].items() if w == "w-1"]
    watch_log = tmp_path / "watch.log"  # a watcher inside the cluster, polling Redis every 50 ms
    redis_host.popen([sys.executable, "-c", WATCH.format(victims=victims, lost="w-1")], env=env, log=watch_log,
                     cwd=REPO_ROOT)  # fmt: skip
    wait_until(lambda: watch_log.exists() and "ready" in watch_log.read_text(), 60, "the hand-over watcher")
    killed = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process of the machine
    hosts["w-1"].kill(procs["w-1"])  # SIGKILL: a crashed worker host
    wait_until(lambda: watch_log.read_text().strip().endswith("}"), 120, "the watcher's result")
    taken = json.loads(watch_log.read_text().strip().splitlines()[-1])
    assert sorted(taken) == sorted(victims), f"not taken over within 90 s: {set(victims) - set(taken)}"
    handover_s = max(taken.values()) - killed
    print(f"\nw-1 SIGKILLed: its {len(victims)} cameras leased elsewhere after {handover_s:.2f} s (lease TTL 5 s)")
    assert handover_s < 15
    wait_until(lambda: captured_once(status(redis_host, env)), 120, "every camera online once on w-2 and w-3")
    assert counts(status(redis_host, env)) == {"w-2": 3, "w-3": 3}
