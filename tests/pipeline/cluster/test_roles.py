"""`pipeline run --role api` and the worker role's argument checks, as real commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis

from pipeline.cluster.configstore import load_cluster_config
from tests.conftest import free_port, wait_for

REPO = Path(__file__).resolve().parents[3]
YAML = "cameras:\n  - {id: role-cam, name: R, url: 'rtsp://10.0.0.9/live', analytics: {plates: true}}\n"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.timeout(180)
def test_the_api_role_pushes_its_configuration_and_serves(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(YAML)
    port = free_port()
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec"),
           "CCTV_SCRYPT_N": "16"}  # fmt: skip
    env.pop("CCTV_REDIS_SENTINELS", None)
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--role", "api", "--config", str(config),
                             "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: load_cluster_config(client) is not None, 60, "the configuration pushed")
        stored = load_cluster_config(client)
        assert stored is not None and [c.id for c in stored.config.cameras] == ["role-cam"]
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/api/health"), 90, "the API answering")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        client.close()
    text = (tmp_path / "api.log").read_text()
    assert "version 1 in Redis (pushed)" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--slots", "0"], "camera slots must be between 1 and 4096"),
    (["--worker-id", "a|b"], "worker id 'a|b' must be"),
])
def test_the_worker_role_refuses_bad_arguments(args: list[str], message: str, redis_url: str) -> None:
    env = {**os.environ, "CCTV_REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--role", "worker", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and message in done.stderr


def test_the_api_role_names_an_unreachable_redis_in_one_line(tmp_path: Path) -> None:
    """Redis refusing the start-up push: one line naming the URL (password masked) and what to check, exit 2, no
    traceback."""
    config = tmp_path / "cameras.yaml"
    config.write_text(YAML)
    closed = free_port()  # nothing listens there
    env = {**os.environ, "CCTV_REDIS_URL": f"redis://api:s3cret-pw@127.0.0.1:{closed}/0",
           "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}  # fmt: skip
    env.pop("CCTV_REDIS_SENTINELS", None)
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--role", "api", "--config", str(config),
                           "--port", str(free_port())], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "s3cret-pw" not in output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert f"redis://api:***@127.0.0.1:{closed}/0" in errors[0] and "CCTV_REDIS_URL" in errors[0]
