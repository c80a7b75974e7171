"""`scripts/install.sh`'s last step, the project's own Redis, run for real in a copy of the script (no root: the
system packages and the virtual environment count as installed, the Redis files go to a temporary folder)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _shim(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A copy of the scripts with a `.venv` that is this Python, its requirements stamp already current."""
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "install.sh", proj / "scripts" / "install.sh")
    for name in ("requirements.lock", "pyproject.toml"):
        shutil.copy(REPO / name, proj / name)
    (proj / ".venv" / "bin").mkdir(parents=True)
    _shim(proj / ".venv" / "bin", "python", f'exec "{sys.executable}" "$@"')
    stamp = subprocess.run("sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1", shell=True,
                           cwd=proj, capture_output=True, text=True, check=True).stdout
    (proj / ".venv" / ".requirements.sha256").write_text(stamp)
    shims = tmp_path / "bin"
    shims.mkdir()
    _shim(shims, "dpkg-query", "printf 'install ok installed'")  # every system package present: no apt-get
    return proj


def _install_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_REDIS") and k != "REDISCLI_AUTH"}
    return env | {"PATH": f"{tmp_path / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", "PYTHONPATH": str(REPO),
                  "CCTV_REDIS_PORT": str(port), "CCTV_REDIS_DATA_DIR": str(tmp_path / "redis-data"),
                  "CCTV_REDIS_SECRETS_FILE": str(tmp_path / "secrets" / "redis.env"),
                  "CCTV_REDIS_CONF_FILE": str(tmp_path / "secrets" / "redis.conf")} | extra


def test_install_fails_naming_the_log_when_redis_does_not_come_up(checkout: Path, tmp_path: Path) -> None:
    """A redis-server that exits without serving (its daemon died: a bad data folder, no memory) stops install.sh
    with exit 1, the port and the log to read; it used to print "ready" and let run.sh start a service that only
    logged connection errors."""
    _shim(tmp_path / "bin", "redis-server", "exit 0")
    port = _free_port()
    result = subprocess.run(["bash", "scripts/install.sh"], cwd=checkout, capture_output=True, text=True,
                            env=_install_env(tmp_path, port, CCTV_REDIS_START_WAIT_S="2"), timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"redis-server did not answer on 127.0.0.1:{port} within 2 s" in result.stderr
    assert str(tmp_path / "redis-data" / "redis.log") in result.stderr
    assert "[install] ready" not in result.stdout


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_install_starts_the_projects_durable_redis(checkout: Path, tmp_path: Path) -> None:
    """The happy path: credentials generated (0600), the server answers on the chosen port, "ready"."""
    port = _free_port()
    env = _install_env(tmp_path, port)
    pid_file = tmp_path / "redis-data" / "redis.pid"
    try:
        result = subprocess.run(["bash", "scripts/install.sh"], cwd=checkout, capture_output=True, text=True,
                                env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[install] ready" in result.stdout
        assert (tmp_path / "secrets" / "redis.env").stat().st_mode & 0o777 == 0o600
        password = next(line.split("=", 1)[1] for line in (tmp_path / "secrets" / "redis.env").read_text().splitlines()
                        if line.startswith("REDISCLI_AUTH="))
        pong = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=30,
                              env=env | {"REDISCLI_AUTH": password})
        assert pong.stdout.strip() == "PONG"
    finally:  # install.sh waited for its PONG, so a server it started has written its pid file
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
