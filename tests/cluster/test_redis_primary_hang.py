"""A Redis Sentinel primary that hangs (``SIGSTOP`` of its redis-server: its host still accepts connections, nothing
answers) instead of dying, on network-namespace hosts.

- A worker's lease keeping (a real :class:`~pipeline.cluster.node.WorkerNode`'s agent and lease keeper, through
  Sentinel; no capture, :mod:`tests.cluster.lease_probe`) keeps every camera across the failover that follows, as
  it does for a SIGKILLed primary: renewals time out quickly, the Sentinels are asked again, the new primary's
  ``NOREPLICAS`` (its replica not yet re-attached) is retried with a bounded backoff, and no lease passes its
  deadline. The new primary's own count of refused commands bounds the retry rate.
- Real workers (``pipeline run --role worker``, two hosts, record-only cameras with 2 s segments, lease TTL 8 s as
  in test_workers_redis_failover.py) keep every camera recording where it was: no lease lost, no capture stalled
  and restarted (a capture's segment-index write must not block its reading for longer than the stall timeout),
  the recording indexed on the new primary.
- ``/api/health`` answers ``503 down`` within seconds while the hung primary is still the one the Sentinels name
  (a long ``down-after-milliseconds``: no failover during the test), instead of hanging on it.

The stopped server is always continued (``SIGCONT``) before the test ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.netns import Cluster, wait_until
from tests.cluster.redisgroup import REDIS_PORT, SentinelGroup
from tests.cluster.test_workers_redis_failover import CAMERAS as WORKER_CAMERAS
from tests.cluster.test_workers_redis_failover import CONFIG, all_online, env_of, state
from tests.conftest import SHARED_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
CAMERAS = ["c-1", "c-2", "c-3", "c-4"]
API_PORT = 8000


def read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def ok_renewals_since(out: Path, since: float) -> int:
    return sum(1 for started, _took, outcome in read(out).get("attempts", []) if started > since and outcome == "ok")


def rejected_calls(group: SentinelGroup, ip: str) -> int:
    """Commands the Redis at ``ip`` refused (``NOREPLICAS``, ``READONLY``...), all commands together."""
    stats = group.cli(group.host_of(ip), REDIS_PORT, "INFO", "commandstats")
    return sum(int(n) for n in re.findall(r"rejected_calls=(\d+)", stats))


@pytest.mark.timeout(600)
def test_a_hung_primary_fails_over_without_a_worker_losing_its_leases(cluster: Cluster, tmp_path: Path) -> None:
    redis_hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    worker = cluster.add_host("worker")
    group = SentinelGroup(redis_hosts, tmp_path / "redis", down_after_ms=1000)
    group.start()
    env = os.environ | group.client_env() | {"PYTHONPATH": str(REPO_ROOT), "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}
    out = tmp_path / "leases.json"
    probe = worker.popen([sys.executable, "-m", "tests.cluster.lease_probe", "--worker-id", "w-1", "--cameras",
                          ",".join(CAMERAS), "--ttl-s", "8", "--renew-s", "1.5", "--push", "--out", str(out)],
                         log=tmp_path / "probe.log", env=env, cwd=REPO_ROOT)
    log = tmp_path / "probe.log"
    wait_until(lambda: read(out).get("held") == CAMERAS and ok_renewals_since(out, 0) >= 2 * len(CAMERAS), 120,
               "every camera leased and renewed")

    old_ip = group.primary_ip()
    assert old_ip is not None
    hung = group.redis[group.host_of(old_ip).name]
    # the worst moment: just before the next renewal round (every 1.5 s), which then waits on the hung server
    last = max(started for started, _took, _outcome in read(out)["attempts"])
    time.sleep(max(0.0, last + 1.5 - 0.2 - time.time()))
    stopped_at = time.time()
    hung.send_signal(signal.SIGSTOP)
    try:
        new_ip = group.wait_failover(old_ip)
        promoted_at = time.time()
        rejected_before = rejected_calls(group, new_ip)
        # every lease renewed twice on the new primary
        wait_until(lambda: ok_renewals_since(out, promoted_at) >= 2 * len(CAMERAS), 120,
                   "the leases renewed on the new primary")
        back_at = min(started for started, _took, outcome in read(out)["attempts"]
                      if started > stopped_at and outcome == "ok")
        refused = rejected_calls(group, new_ip) - rejected_before
    finally:
        hung.send_signal(signal.SIGCONT)
    probe.send_signal(signal.SIGTERM)
    probe.wait(timeout=60)
    now = read(out)
    failed = [a for a in now["attempts"] if stopped_at < a[0] < back_at]
    print(f"\nhung primary: new primary after {promoted_at - stopped_at:.1f} s, leases renewed again after "
          f"{back_at - stopped_at:.1f} s; {len(failed)} failed renewal attempts meanwhile "
          f"({[round(a[1], 2) for a in failed]} s each), {refused} commands refused by the new primary after its "
          "promotion")
    assert now["lost"] == [], log.read_text(errors="replace")[-4000:]
    assert now["held"] == CAMERAS
    # bounded retries: no hot loop, neither of the agent nor of the client library underneath it
    outage_s = max(back_at - stopped_at, 1.0)
    assert len(failed) <= 4 * outage_s + 2, failed
    assert refused <= 4 * max(back_at - promoted_at, 1.0) + 4, refused


@pytest.mark.timeout(600)
def test_health_answers_503_quickly_while_the_primary_hangs(cluster: Cluster, tmp_path: Path) -> None:
    redis_hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    api, desk = cluster.add_host("api-1"), cluster.add_host("desk")
    group = SentinelGroup(redis_hosts, tmp_path / "redis", down_after_ms=60_000)  # no failover in this test
    group.start()
    env = os.environ | group.client_env() | {"PYTHONPATH": str(REPO_ROOT)}
    api.popen([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", api.ip, "--port",
               str(API_PORT)], log=tmp_path / "api.log", cwd=REPO_ROOT,
              env=env | {"CCTV_RECORDINGS_DIR": str(tmp_path / "rec"), "CCTV_SCRYPT_N": "16",
                         "CCTV_CONFIG_PATH": str(REPO_ROOT / "cameras.yaml")})
    url = f"http://{api.ip}:{API_PORT}/api/health"
    ask = ("import json, time, urllib.error, urllib.request\n"
           "t = time.monotonic()\n"
           "try:\n"
           f"    r = urllib.request.urlopen('{url}', timeout=20); code, body = r.status, r.read()\n"
           "except urllib.error.HTTPError as e:\n"
           "    code, body = e.code, e.read()\n"
           "print(json.dumps({'code': code, 'body': json.loads(body), 's': time.monotonic() - t}))\n")

    def health() -> dict:
        done = desk.run([sys.executable, "-c", ask], timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    wait_until(lambda: health()["body"]["redis"], 120, "the API answering with Redis up")
    hung = group.redis[redis_hosts[0].name]
    hung.send_signal(signal.SIGSTOP)
    try:
        answers = [health() for _ in range(3)]
    finally:
        hung.send_signal(signal.SIGCONT)
    print(f"\n/api/health while the primary hangs: {answers}")
    for answer in answers:
        assert answer["code"] == 503 and answer["body"]["status"] == "down", answer
        # 1 s per Redis command now; redis-py's default socket timeout (5 s) made every answer wait 5 s or more
        assert answer["s"] < 4, answer
    assert "Traceback" not in (tmp_path / "api.log").read_text(errors="replace")


@pytest.mark.timeout(600)
def test_workers_keep_recording_every_camera_across_a_hung_primary(cluster: Cluster, tmp_path: Path) -> None:
    redis_hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    ctl = cluster.add_host("ctl")
    group = SentinelGroup(redis_hosts, tmp_path / "redis", down_after_ms=1000)
    group.start()
    env = env_of(group, tmp_path)
    config = tmp_path / "cameras.yaml"
    config.write_text(CONFIG)
    pushed = ctl.run([sys.executable, "-m", "pipeline", "cluster", "push-config", str(config)], env=env, timeout=120)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    names = ("w-1", "w-2")
    for name in names:
        host = cluster.add_host(name)
        host.popen([sys.executable, "-m", "pipeline", "serve-cameras", "--videos", str(SHARED_DIR / "data" / "videos"),
                    "--port", "8554"], log=tmp_path / f"{name}-cams.log", env=env, cwd=REPO_ROOT)
        wenv = env_of(group, tmp_path, CCTV_RECORDINGS_DIR=str(tmp_path / f"{name}-rec"), CCTV_HOST_NAME=name)
        host.popen([sys.executable, "-m", "pipeline", "run", "--role", "worker", "--worker-id", name, "--slots", "4"],
                   log=tmp_path / f"{name}.log", env=wenv, cwd=REPO_ROOT)
    wait_until(lambda: all_online(state(ctl, env), set(names))
               and {c["holder"] for c in state(ctl, env).values()} == set(names), 300,
               "every camera online, split over w-1 and w-2", interval_s=1.0)
    wait_until(lambda: all(c["indexed"] >= 2 for c in state(ctl, env).values()), 120, "segments indexed")

    before = state(ctl, env)
    offsets = {name: (tmp_path / f"{name}.log").stat().st_size for name in names}
    old_ip = group.primary_ip()
    assert old_ip is not None
    hung = group.redis[group.host_of(old_ip).name]
    stopped_at = time.time()
    hung.send_signal(signal.SIGSTOP)
    try:
        group.wait_failover(old_ip)
        print(f"\nhung primary: a new primary after {time.time() - stopped_at:.1f} s")
        # every camera records on: three more segments (2 s each) indexed on the new primary
        wait_until(lambda: all(c["indexed"] > before[cam]["indexed"] + 3 for cam, c in state(ctl, env).items()),
                   180, "recording indexed on the new primary", interval_s=1.0)
    finally:
        hung.send_signal(signal.SIGCONT)
    after = state(ctl, env)
    since = {name: (tmp_path / f"{name}.log").read_bytes()[offsets[name]:].decode(errors="replace") for name in names}
    for name, text in since.items():
        trouble = [line for line in text.splitlines()
                   if re.search(r"lease lost|lease could not be renewed|deadline passed|stalled|started on", line)]
        assert trouble == [], (name, trouble)  # no camera stopped, stalled or restarted
    assert all_online(after, set(names))
    assert {cam: c["holder"] for cam, c in after.items()} == {cam: c["holder"] for cam, c in before.items()}
    assert set(after) == set(WORKER_CAMERAS)
