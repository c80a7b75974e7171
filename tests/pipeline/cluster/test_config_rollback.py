"""An API host restarted with an older cameras.yaml keeps the configuration pushed since (no cluster-wide roll
back); `cluster push-config` still replaces it; a worker's --config is warned about when it differs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pipeline.cli import build_parser
from pipeline.cluster.configstore import config_origin, load_cluster_config, push_config
from pipeline.cluster.roles import check_worker_config_file, push_config_file, startup_push
from tests.conftest import free_port, wait_for

REPO = Path(__file__).resolve().parents[3]
OLD = "cameras:\n  - {id: cam-1, name: One, url: 'rtsp://10.0.0.1/live'}\n"
NEW = OLD + "  - {id: cam-5, name: Five, url: 'rtsp://10.0.0.5/live'}\n"


def _ids(client: redis.Redis) -> list[str]:
    stored = load_cluster_config(client)
    assert stored is not None
    return [cam.id for cam in stored.config.cameras]


def test_the_start_up_push_never_replaces_a_newer_configuration(client: redis.Redis, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    old = tmp_path / "cams_rec.yaml"
    old.write_text(OLD)
    new = tmp_path / "cams_rec2.yaml"
    new.write_text(NEW)
    assert startup_push(client, old) is not None and _ids(client) == ["cam-1"]  # Redis empty: the file is stored
    assert push_config_file(client, new).version == 2  # `cluster push-config` replaces
    with caplog.at_level(logging.INFO, logger="pipeline.cluster.roles"):
        stored = startup_push(client, old)  # an API replica restarted with the older file
    assert stored is not None and stored.version == 2 and _ids(client) == ["cam-1", "cam-5"]
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "was version 1" in warning and "Redis has version 2" in warning and "cluster push-config" in warning
    assert "cams_rec2.yaml" in warning  # where Redis's came from
    origin = config_origin(client)
    assert origin is not None and "@" in origin.pushed_by and origin.source.endswith("cams_rec2.yaml")
    assert startup_push(client, new) is not None and config_origin(client).version == 2  # same text: unchanged
    assert push_config_file(client, old).version == 3 and _ids(client) == ["cam-1"]  # deliberate roll back works


@pytest.mark.timeout(180)
def test_an_api_restarted_with_an_older_file_keeps_the_pushed_one(redis_url: str, tmp_path: Path) -> None:
    old = tmp_path / "cams_rec.yaml"
    old.write_text(OLD)
    client = redis.Redis.from_url(redis_url)
    push_config(client, OLD, source="test:cams_rec.yaml")
    push_config(client, NEW, source="test:cams_rec2.yaml")
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec"),
           "CCTV_SCRYPT_N": "16"}  # fmt: skip
    env.pop("CCTV_REDIS_SENTINELS", None)
    log = tmp_path / "api.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--role", "api", "--config", str(old),
                                 "--port", str(free_port())], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or "configuration " in log.read_text(errors="replace"), 120,
                 "the start-up push logged")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    try:
        assert _ids(client) == ["cam-1", "cam-5"] and config_origin(client).version == 2, text
        assert "WARNING" in text and "NOT pushed" in text and "Redis has version 2" in text
    finally:
        client.close()


def test_a_workers_config_file_that_differs_is_warned_about(client: redis.Redis, redis_url: str, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            request: pytest.FixtureRequest) -> None:  # fmt: skip
    monkeypatch.setenv("CCTV_REDIS_URL", redis_url)
    monkeypatch.delenv("CCTV_REDIS_SENTINELS", raising=False)
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)  # the next test reads its own environment
    push_config(client, OLD)
    push_config(client, NEW, source="ops:cams_rec2.yaml")
    other = tmp_path / "other.yaml"
    other.write_text(OLD)
    with caplog.at_level(logging.INFO, logger="pipeline.cluster.roles"):
        check_worker_config_file(other)
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "IGNORED" in warning and "other.yaml" in warning and "version 2" in warning and "was version 1" in warning
    caplog.clear()
    same = tmp_path / "same.yaml"
    same.write_text(NEW)
    with caplog.at_level(logging.INFO, logger="pipeline.cluster.roles"):
        check_worker_config_file(same)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert build_parser().parse_args(["run", "--role", "worker"]).config is None  # no --config: nothing to warn
