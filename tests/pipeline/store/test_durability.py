"""The start-up durability check and the project's generated Redis set-up, against real redis-server processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pipeline.store.durability import (
    RedisCredentialsError,
    RedisStartError,
    VolatileRedisError,
    ensure_durable,
    read_persistence,
)
from pipeline.store.redis_setup import API_USER, WORKERS_USER, read_credentials, setup_redis
from tests.conftest import RedisServer, free_port

REPO = Path(__file__).resolve().parents[3]




def test_durable_server_passes_and_volatile_one_is_refused_unless_allowed(own_redis: RedisServer,
                                                                          volatile_redis: RedisServer) -> None:
    durable = redis.Redis.from_url(own_redis.url)
    found = ensure_durable(durable, allow_volatile=False, url=own_redis.url)
    assert found is not None and found.aof and found.fsync == "everysec" and found.rdb_rules

    volatile = redis.Redis.from_url(volatile_redis.url)
    with pytest.raises(VolatileRedisError) as err:
        ensure_durable(volatile, allow_volatile=False, url=volatile_redis.url)
    text = str(err.value)
    assert "keeps nothing on disk" in text and "CCTV_REDIS_ALLOW_VOLATILE=1" in text and "appendonly yes" in text
    assert volatile_redis.password not in text  # the URL in the message is redacted
    assert ensure_durable(volatile, allow_volatile=True) is not None  # the explicit override


def test_acl_user_without_config_is_judged_by_info_persistence(own_redis: RedisServer,
                                                               volatile_redis: RedisServer) -> None:
    for server, durable in ((own_redis, True), (volatile_redis, False)):
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser("limited", enabled=True, passwords=["+limited-pass"], keys=["*"],
                          commands=["+@all", "-config"])
        limited = redis.Redis.from_url(f"redis://limited:limited-pass@127.0.0.1:{server.port}/0")
        found = read_persistence(limited)
        assert found.source == "info" and found.aof is durable and found.rdb_rules is None
        if durable:
            assert ensure_durable(limited, allow_volatile=False) is not None
        else:
            with pytest.raises(VolatileRedisError, match="may not read its snapshot rules"):
                ensure_durable(limited, allow_volatile=False)


def test_unreachable_redis_is_not_judged() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    assert ensure_durable(client, allow_volatile=False) is None


def test_generated_setup_is_private_durable_and_has_one_user_per_side(tmp_path: Path) -> None:
    env_file, conf_file, data = tmp_path / "secrets" / "redis.env", tmp_path / "secrets" / "redis.conf", tmp_path / "d"
    port = free_port()
    first = setup_redis(env_file, conf_file, data, port)
    assert first.created_credentials
    for path in (env_file, conf_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    creds = read_credentials(env_file)
    conf = conf_file.read_text()
    assert "appendonly yes" in conf and "appendfsync everysec" in conf and "bind 127.0.0.1" in conf
    for password in (creds.admin, creds.workers, creds.api):
        assert password not in conf  # only SHA-256 hashes
    again = setup_redis(env_file, conf_file, data, port)  # a second set-up keeps the credentials
    assert not again.created_credentials and read_credentials(env_file) == creds

    proc = subprocess.Popen(["redis-server", str(conf_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = RedisServer(port=port, workdir=data, process=proc, password=creds.admin)
        server.wait_ready()
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert all(p not in cmdline for p in (creds.admin, creds.workers, creds.api))
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
        workers = redis.Redis.from_url(values["CCTV_REDIS_URL"])
        api = redis.Redis.from_url(values["CCTV_API_REDIS_URL"])
        assert workers.acl_whoami() == WORKERS_USER and api.acl_whoami() == API_USER
        workers.set("k", "v")
        assert api.get("k") == b"v"
        assert ensure_durable(workers, allow_volatile=False).source == "config"  # CONFIG GET is allowed
        for forbidden in (workers.flushall, api.flushall, lambda: workers.config_set("appendonly", "no")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(f"redis://{WORKERS_USER}:wrong@127.0.0.1:{port}/0").ping()
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            redis.Redis(port=port).set("x", "y")  # no password: nothing allowed
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_service_refuses_to_start_against_a_volatile_redis(volatile_redis: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: v-cam, name: V, url: 'rtsp://127.0.0.1:9/x', "
                      "analytics: {plates: false, faces: false}}\n")
    env = {**os.environ, "CCTV_REDIS_URL": volatile_redis.url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}
    env.pop("CCTV_REDIS_ALLOW_VOLATILE", None)
    run = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "keeps nothing on disk" in run.stderr and "CCTV_REDIS_ALLOW_VOLATILE=1" in run.stderr
    assert volatile_redis.password not in run.stderr + run.stdout
    assert "started capture" not in run.stderr  # nothing was started


def test_refused_credentials_stop_the_start_with_a_clear_error(own_redis: RedisServer) -> None:
    """A wrong or missing password is not an unreachable Redis (which the workers ride out by spooling): it says so
    and stops the start, without the password."""
    wrong_url = f"redis://:not-the-{own_redis.password}@127.0.0.1:{own_redis.port}/0"
    for url in (wrong_url, f"redis://127.0.0.1:{own_redis.port}/0"):
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        with pytest.raises(RedisCredentialsError) as err:
            ensure_durable(client, allow_volatile=True, url=url)
        text = str(err.value)
        assert "refused the service's credentials" in text and "CCTV_REDIS_URL" in text
        assert own_redis.password not in text
    assert issubclass(RedisCredentialsError, RedisStartError) and issubclass(VolatileRedisError, RedisStartError)


def test_service_refuses_to_start_on_a_half_restored_redis(own_redis: RedisServer, tmp_path: Path) -> None:
    """A restore killed half-way leaves its marker: the service says so and names the rollback instead of serving a
    mix of restored and older records; a damaged marker stops it too."""
    from pipeline.store import keys

    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: v-cam, name: V, url: 'rtsp://127.0.0.1:9/x', "
                      "analytics: {plates: false, faces: false}}\n")
    env = {**os.environ, "CCTV_REDIS_URL": own_redis.url, "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}
    client = redis.Redis.from_url(own_redis.url)
    client.set(keys.RESTORE_MARKER, '{"journal": "/srv/cctv/var/restore/restore-1.journal", "backup": "/backups/'
               'monday", "backup_id": "ab12", "host": "nvr-1", "pid": 1, "started_at": 1.0}')
    for expected in ("restore --rollback", "not a restore marker"):
        run = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert expected in run.stderr and "started capture" not in run.stderr
        assert own_redis.password not in run.stderr + run.stdout
        client.set(keys.RESTORE_MARKER, b"\xffnot json")
