"""A single-host ``pipeline run --role all`` service marks itself in Redis (``cctv:cluster:single-host``) whether or
not it runs the API (``--no-api``), so that ``cluster push-config`` warns that the push will not apply there; the
mark is refreshed while it runs and lives a bounded time after it stopped, as the API's mark does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pipeline.cluster.configstore import SINGLE_HOST_KEY, SINGLE_HOST_TTL_S, single_host_service
from pipeline.service import SingleHostMark
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_no_api_service_marks_itself_and_push_config_warns(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: off-01, name: Spare, url: 'rtsp://127.0.0.1:9/x', enabled: false}\n")
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}
    log = (tmp_path / "service.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: single_host_service(client) is not None or proc.poll() is not None, 60, "the mark")
        assert proc.poll() is None, (tmp_path / "service.log").read_text()
        assert single_host_service(client) == f"{socket.gethostname()}:{config.resolve()}"
        assert 0 < client.pttl(SINGLE_HOST_KEY) <= SINGLE_HOST_TTL_S * 1000  # expires once the service is gone
        push = subprocess.run([sys.executable, "-m", "pipeline", "cluster", "push-config", str(config)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=60)
        assert push.returncode == 0, push.stderr
        assert "single-host `--role all` service" in push.stderr and str(config.resolve()) in push.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        client.close()


def test_mark_is_refreshed_on_its_period_and_survives_redis_errors(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    mark = SingleHostMark(client, "host-a:/etc/cameras.yaml")
    assert mark.refresh(now=100.0) and client.get(SINGLE_HOST_KEY) == b"host-a:/etc/cameras.yaml"
    client.delete(SINGLE_HOST_KEY)
    assert not mark.refresh(now=101.0) and client.get(SINGLE_HOST_KEY) is None  # not due yet
    assert mark.refresh(now=106.0) and client.get(SINGLE_HOST_KEY) is not None
    client.close()
    down = SingleHostMark(redis.Redis(port=1, socket_connect_timeout=0.5), "host-a:-")
    assert not down.refresh(now=0.0)  # logged, never raised: the supervisor keeps running
