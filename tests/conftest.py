"""Fixtures shared by the whole suite: paths to the shared data and a private, real redis-server."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("CCTV_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
os.environ.setdefault("CCTV_MODEL_DIR", str(SHARED_DIR / "models"))


@pytest.fixture(autouse=True)
def _private_restore_journals(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Restores in tests (and the CLI processes they start) keep their undo journals in a folder of their own,
    never in the checkout's ``var/restore``, where a journal of an earlier, killed run could be taken for theirs."""
    monkeypatch.setenv("CCTV_RESTORE_JOURNAL_DIR", str(tmp_path_factory.mktemp("restore-journals")))


@pytest.fixture(autouse=True)
def _private_evidence_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case packages built in tests are signed with a key made in a folder of the test's own (mode 0700), never the
    checkout's ``var/secrets/evidence-signing.key``; a test that sets its own key overrides this."""
    folder = tmp_path_factory.mktemp("evidence-key")
    folder.chmod(0o700)
    monkeypatch.setenv("CCTV_EVIDENCE_KEY_FILE", str(folder / "evidence-signing.key"))


@pytest.fixture(autouse=True)
def _private_audit_spool(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """API apps in tests (and the API processes they start) spool audit records of a Redis outage in a folder of
    the test's own, never the checkout's ``var/audit-spool``, whose records would be replayed into another test's
    Redis."""
    monkeypatch.setenv("CCTV_AUDIT_SPOOL_DIR", str(tmp_path_factory.mktemp("audit-spool")))


def free_port() -> int:
    """Return a TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server process owned by the tests, on loopback, that a test may stop and start again.

    By default it runs like the project's own Redis (:mod:`pipeline.store.redis_setup`): a generated ``redis.conf``
    (mode 0600, so the password is in no process listing) with AOF (``appendfsync everysec``) and RDB snapshots in
    ``workdir`` and a password; a restart on the same ``workdir`` keeps the data. ``durable=False`` gives a server
    that keeps nothing on disk (only for tests of the refusal of such a server).
    """

    port: int
    workdir: Path
    process: subprocess.Popen | None = None
    durable: bool = True
    password: str | None = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "redis.conf"

    def start(self) -> None:
        """Start (or restart) the server on the same port and data folder and wait until it answers."""
        from pipeline.store.redis_setup import RedisCredentials, render_conf, write_private

        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed: run the README's test command, which installs it")
        credentials = RedisCredentials(self.password, "", "") if self.password else None
        write_private(self.conf_path, render_conf(self.port, self.workdir, credentials, durable=self.durable,
                                                  service_users=False))
        self.process = subprocess.Popen([exe, str(self.conf_path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the server answers PING (after loading its AOF/RDB)."""
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown save; what the AOF holds survives)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        """Stop the server (SIGKILL; a durable one keeps what its AOF holds)."""
        self.kill()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder with models and data; skips if it is absent."""
    if not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real, durable, password-protected redis-server on a free loopback port for the whole session."""
    server = RedisServer(port=free_port(), workdir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's Redis, flushed before each test."""
    import redis

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A durable redis-server just for this test (data in ``tmp_path``), which the test may kill and restart."""
    server = RedisServer(port=free_port(), workdir=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def volatile_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that keeps nothing on disk (the machine's default Redis, or the old install.sh): what the
    service's durability check must refuse."""
    server = RedisServer(port=free_port(), workdir=tmp_path / "volatile", durable=False)
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()

def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.25) -> None:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout_s`` (generous timeouts: CI is a
    loaded 2-core machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
