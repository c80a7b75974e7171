"""cameras.yaml in Redis with a version; `pipeline cluster push-config` and `status` as real commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pipeline.cluster.configstore import config_version, load_cluster_config, push_config
from pipeline.config import ConfigError

REPO = Path(__file__).resolve().parents[3]
YAML = "cameras:\n  - {id: cam-1, name: One, url: 'rtsp://10.0.0.1/live', analytics: {plates: true}}\n"


def test_push_keeps_the_version_for_the_same_text(client: redis.Redis) -> None:
    assert config_version(client) == 0 and load_cluster_config(client) is None
    first = push_config(client, YAML, source="test")
    assert (first.version, first.changed, first.cameras) == (1, True, 1)
    assert push_config(client, YAML).changed is False  # every API replica may push the same file
    second = push_config(client, YAML + "  - {id: cam-2, name: Two, url: 'rtsp://10.0.0.2/live'}\n")
    assert (second.version, second.changed) == (2, True)
    stored = load_cluster_config(client)
    assert stored is not None and stored.version == 2 and [c.id for c in stored.config.cameras] == ["cam-1", "cam-2"]


def test_an_invalid_file_is_refused_and_the_stored_one_kept(client: redis.Redis) -> None:
    push_config(client, YAML)
    with pytest.raises(ConfigError, match="analysis_fps"):
        push_config(client, YAML.replace("analytics: {plates: true}", "analysis_fps: 99"))
    assert config_version(client) == 1


def test_cli_push_config_and_status(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(YAML)
    env = {**os.environ, "CCTV_REDIS_URL": redis_url}
    run = [sys.executable, "-m", "pipeline", "cluster"]
    out = subprocess.run([*run, "push-config", str(path)], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "1 cameras, stored as version 1" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - {id: Bad Id, name: x, url: 'rtsp://h/x'}\n")
    out = subprocess.run([*run, "push-config", str(bad)], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 1 and "bad.yaml:2: cameras[0].id" in out.stderr
    out = subprocess.run([*run, "status", "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"config_version": 1' in out.stdout and '"worker": null' in out.stdout


def test_cli_push_config_warns_about_a_password_written_in_the_url(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - {id: cam-p, name: P, url: 'rtsp://admin:Tr0ub4dor3x@10.0.0.5/live'}\n"
                    "  - {id: cam-v, name: V, url: 'rtsp://admin:${CAM_V_PASSWORD}@10.0.0.6/live'}\n")
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CAM_V_PASSWORD": "fromtheenv"}
    out = subprocess.run([sys.executable, "-m", "pipeline", "cluster", "push-config", str(path)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cameras[0].url: warning: a password written in the URL is stored in Redis" in out.stderr
    assert "cameras[1]" not in out.stderr  # a variable stays on each host
    assert "Tr0ub4dor3x" not in out.stderr + out.stdout
