"""The connection factory (plain Redis or Sentinel) and replica-acknowledged event writes (WAIT), on loopback with
real servers; the multi-host failover itself is in tests/cluster/test_redis_failover.py."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.engine.publisher import SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.events import PlateEvent
from pipeline.settings import Settings
from pipeline.store import EventStore, NotReplicatedError, keys
from pipeline.store.connection import (
    SentinelConfigError,
    async_redis_client,
    parse_sentinels,
    redis_client,
    sentinel_setup,
    wait_replicas,
)
from pipeline.store.redis_setup import RedisCredentials, render_conf, render_sentinel_conf, write_private
from tests.conftest import RedisServer, free_port, wait_for


def test_sentinel_list_is_parsed_and_bad_entries_are_named() -> None:
    assert parse_sentinels("10.0.0.1:26379, 10.0.0.2:26380,[fd00::3]:26379") == (
        ("10.0.0.1", 26379), ("10.0.0.2", 26380), ("fd00::3", 26379))
    with pytest.raises(SentinelConfigError, match=r"entry 2 \('10.0.0.2'\)"):
        parse_sentinels("10.0.0.1:26379,10.0.0.2")
    with pytest.raises(SentinelConfigError, match="entry 1"):
        parse_sentinels("host:99999")
    with pytest.raises(SentinelConfigError, match="names no Sentinel"):
        parse_sentinels(" , ")


def test_acknowledgement_default_follows_sentinel() -> None:
    plain = Settings(redis_url="redis://127.0.0.1:1/0")
    assert sentinel_setup(plain) is None and wait_replicas(plain) == 0
    ha = Settings(redis_sentinels="10.0.0.1:26379", redis_sentinel_password="s3cret")
    assert sentinel_setup(ha).addresses == (("10.0.0.1", 26379),) and wait_replicas(ha) == 1
    assert wait_replicas(Settings(redis_sentinels="10.0.0.1:26379", redis_wait_replicas=0)) == 0


def event(n: int) -> PlateEvent:
    return PlateEvent(event_id=f"ack-{n}", camera_id="cam", track_id=n, started_at=1.0, ended_at=2.0, frame_time=2.0,
                      plate_text="1กข1234", confidence=0.9)


def start_server(folder: Path, port: int, password: str, replica_of: int | None = None) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "redis.conf"
    write_private(conf, render_conf(port, folder, RedisCredentials(password, "", ""), service_users=False,
                                    replica_of=("127.0.0.1", replica_of) if replica_of else None))
    return subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_event_without_a_replica_is_not_acknowledged_and_is_delivered_once_when_one_confirms(
        own_redis: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    store = EventStore(client, wait_replicas=1, wait_timeout_ms=200)
    with pytest.raises(NotReplicatedError, match="0 of 1 replica"):
        store.publish_plate_event(event(0))  # on the primary, but no replica confirmed it

    publisher = SpooledPublisher(store, EventSpool(tmp_path / "spool", 1 << 20), retry_interval_s=0.05)
    assert publisher.publish("plate", event(1)) is False and publisher.pending == 1
    replica: Any = None
    try:
        port = free_port()
        replica = start_server(tmp_path / "replica", port, own_redis.password, replica_of=own_redis.port)
        replica_client = redis.Redis(port=port, password=own_redis.password, socket_timeout=5)
        wait_for(lambda: replica_client.info("replication").get("master_link_status") == "up", 60, "replica in sync")
        # the spooled record was already written on the primary: the redelivery stores nothing new, writes the
        # marker and WAITs for it, which confirms the earlier write too
        wait_for(lambda: publisher.flush(force=True) or publisher.pending == 0, 30, "spool delivered")
        assert publisher.publish("plate", event(2)) is True
        assert store.publish_plate_event(event(0)) is False  # already stored: acknowledged without a second copy
        ids = [f[b"event_id"] for _, f in replica_client.xrange(keys.PLATE_STREAM)]
        assert sorted(ids) == [b"ack-0", b"ack-1", b"ack-2"]
    finally:
        if replica is not None:
            replica.kill()
            replica.wait(timeout=30)


def test_factory_reaches_the_primary_that_sentinel_names(own_redis: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "sentinel"
    folder.mkdir()
    write_private(folder / "sentinel.conf", render_sentinel_conf(
        port, "127.0.0.1", folder, "cctv", ("127.0.0.1", own_redis.port), 1, own_redis.password, "sentinel-pw"))
    sentinel = subprocess.Popen([shutil.which("redis-sentinel") or shutil.which("redis-server") or "redis-server",
                                 str(folder / "sentinel.conf"), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        settings = Settings(redis_sentinels=f"127.0.0.1:{port}", redis_sentinel_master="cctv",
                            redis_sentinel_password="sentinel-pw", redis_url=f"redis://:{own_redis.password}@x/0")
        client = redis_client(settings=settings, socket_timeout=5)
        wait_for(lambda: client.set("via-sentinel", "1"), 60, "write through Sentinel")
        assert redis.Redis.from_url(own_redis.url).get("via-sentinel") == b"1"

        async def read_async() -> bytes | None:  # the API's live-alert streams use the asyncio twin
            aclient = async_redis_client(settings=settings, max_connections=4)
            try:
                return await aclient.get("via-sentinel")
            finally:
                await aclient.aclose()

        assert asyncio.run(read_async()) == b"1"
        wrong = Settings(redis_sentinels=f"127.0.0.1:{port}", redis_sentinel_master="cctv",
                         redis_sentinel_password="wrong", redis_url=f"redis://:{own_redis.password}@x/0")
        with pytest.raises(redis.ConnectionError):  # a Sentinel that refuses us names no primary
            redis_client(settings=wrong, socket_timeout=2).ping()
    finally:
        sentinel.kill()
        sentinel.wait(timeout=30)


def test_publisher_backs_off_at_most_4_s_with_sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:  # a store whose Redis is away (failover in progress)
        def publish_plate_event(self, _event: PlateEvent) -> bool:
            raise redis.ConnectionError("connection refused")

    monkeypatch.setattr("pipeline.store.connection.get_settings",
                        lambda: Settings(redis_sentinels="10.0.0.1:26379"))
    with_sentinel = SpooledPublisher(Down(), EventSpool(tmp_path / "a", 1 << 20))
    monkeypatch.setattr("pipeline.store.connection.get_settings", lambda: Settings())
    without = SpooledPublisher(Down(), EventSpool(tmp_path / "b", 1 << 20))
    assert (with_sentinel.max_backoff_s, without.max_backoff_s) == (4.0, 16.0)
    for publisher in (with_sentinel, without):
        waits = []
        publisher.publish("plate", event(100))  # spooled: Redis is away
        for _ in range(8):  # every retry fails; the wait doubles up to the cap
            publisher.flush(force=True)
            waits.append(publisher._next_retry - time.monotonic())
        assert max(waits) <= publisher.max_backoff_s + 0.1 and max(waits) > publisher.max_backoff_s - 1
        assert publisher.pending == 1


def test_a_primary_without_its_replicas_refuses_and_the_event_stays_spooled(own_redis: RedisServer,
                                                                           tmp_path: Path) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    client.config_set("min-replicas-to-write", 1)  # the group's setting: no replica connected -> NOREPLICAS
    try:
        store = EventStore(client)
        with pytest.raises(NotReplicatedError, match="NOREPLICAS"):
            store.publish_plate_event(event(500))
        publisher = SpooledPublisher(store, EventSpool(tmp_path / "spool", 1 << 20), retry_interval_s=0.05)
        assert publisher.publish("plate", event(501)) is False and publisher.pending == 1
        assert not publisher.redis_ok
        client.config_set("min-replicas-to-write", 0)
        wait_for(lambda: publisher.flush(force=True) or publisher.pending == 0, 30, "spool delivered")
        assert client.hexists(keys.PLATE_EVENTS, "ack-501") and not client.hexists(keys.PLATE_EVENTS, "ack-500")
    finally:
        client.config_set("min-replicas-to-write", 0)


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://admin:S3c/retPW@127.0.0.1:6399/0", "its port is not a number"),  # '/' in the password, unencoded
    ("redis://admin:S3c#retPW@127.0.0.1:6399/0", "its port is not a number"),
    ("redis://:pw@127.0.0.1:6399/x", "its database is not a number"),
    ("redis://127.0.0.1:badport/0", "its port is not a number"),
    ("foo://127.0.0.1:6379/0", "the scheme must be one of redis, rediss, unix"),
])
def test_a_bad_redis_url_is_named_with_its_password_masked(url: str, problem: str) -> None:
    from pipeline.store.connection import RedisUrlError

    for settings in (Settings(redis_url=url), Settings(redis_url=url, redis_sentinels="127.0.0.1:1")):
        with pytest.raises(RedisUrlError) as err:
            redis_client(settings=settings)
        assert problem in str(err.value) and "retPW" not in str(err.value) and "S3c" not in str(err.value)
        with pytest.raises(RedisUrlError):
            async_redis_client(settings=settings)


def test_the_cli_reports_a_bad_redis_url_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main
    from pipeline.settings import get_settings

    monkeypatch.setenv("CCTV_REDIS_URL", "redis://admin:S3c/retPW@127.0.0.1:6399/0")
    get_settings.cache_clear()
    try:
        assert main(["backup", str(tmp_path / "bk")]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert err.startswith("error: Redis URL redis://admin:***@127.0.0.1:6399/0: its port is not a number")
    assert "retPW" not in err and "S3c" not in err and "Traceback" not in err
