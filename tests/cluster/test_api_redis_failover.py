"""The control-room API (uvicorn, its own namespace host) on a Redis Sentinel group rides through a failover: an
operator's session made before the primary is SIGKILLed still works after it (users and sessions were replicated),
requests during the failover get 503 at worst (never a 500), and the API answers 200 again from the new primary."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from tests.cluster.netns import Cluster, wait_until
from tests.cluster.redisgroup import SentinelGroup

REPO_ROOT = Path(__file__).resolve().parents[2]
API_PORT = 8000


def read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_api_sessions_survive_a_sentinel_failover_and_it_never_answers_500(cluster: Cluster, tmp_path: Path) -> None:
    redis_hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    api, desk = cluster.add_host("api-1"), cluster.add_host("desk")
    group = SentinelGroup(redis_hosts, tmp_path / "redis")
    group.start()
    admin_pw = secrets.token_hex(12)
    env = os.environ | group.client_env() | {"PYTHONPATH": str(REPO_ROOT), "ADMIN_PW": admin_pw}
    api.popen([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", api.ip, "--port",
               str(API_PORT)], log=tmp_path / "api.log", cwd=REPO_ROOT,
              env=env | {"CCTV_RECORDINGS_DIR": str(tmp_path / "rec"), "CCTV_SCRYPT_N": "16",
                         "CCTV_CONFIG_PATH": str(REPO_ROOT / "cameras.yaml"), "CCTV_ADMIN_USER": "root",
                         "CCTV_ADMIN_PASSWORD": admin_pw})
    base = f"http://{api.ip}:{API_PORT}"
    wait_until(lambda: desk.run(["python3", "-c", f"import urllib.request; urllib.request.urlopen('{base}/api/health')"],
                                timeout=20).returncode == 0, 120, "API answering on its host")
    mark, out = tmp_path / "killed", tmp_path / "probe.json"
    probe = desk.popen([sys.executable, "-m", "tests.cluster.agent", "api-probe", "--base", base, "--user", "root",
                        "--password-env", "ADMIN_PW", "--mark-file", str(mark), "--out", str(out)],
                       log=tmp_path / "probe.log", env=env, cwd=REPO_ROOT)
    wait_until(lambda: read(out).get("codes", {}).get("before", {}).get("200", 0) >= 10, 120, "the session works")
    time.sleep(2)  # the session's writes reach the replicas (asynchronous for the API; milliseconds here)

    old_ip = group.primary_ip()
    mark.touch()
    group.kill_primary()
    group.wait_failover(old_ip or "")
    wait_until(lambda: read(out).get("ok_after", 0) >= 20, 180, "the same session served from the new primary")
    probe.send_signal(signal.SIGTERM)
    probe.wait(timeout=60)
    codes = read(out)["codes"]
    print(f"\nAPI across the failover: {codes}")
    assert set(codes["before"]) == {"200"}, codes
    assert set(codes["after"]) <= {"200", "503"}, codes  # never 500, never 401 (the session survived)
    log = (tmp_path / "api.log").read_text(errors="replace")
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]
