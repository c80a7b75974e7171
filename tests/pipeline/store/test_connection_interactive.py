"""The API's Redis clients (:func:`interactive_client`, :func:`interactive_async_client`): a bounded wait per
command, one quick retry of a command whose connection failed, none of one that timed out, unless the Sentinels
meanwhile name another primary (:class:`FailoverAwareConnection`). A real redis-server is stopped (``SIGSTOP``)
and always continued."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.retry import Retry

from pipeline.settings import Settings
from pipeline.store.connection import (
    AsyncFailoverAwareConnection,
    FailoverAwareConnection,
    interactive_async_client,
    interactive_client,
    interactive_options,
)
from tests.conftest import RedisServer


@contextmanager
def hung(server: RedisServer) -> Iterator[None]:
    """``server`` stopped (it accepts connections, answers nothing) for the block, continued after it."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def calls_until_raised(retry: Retry, error: Exception) -> int:
    """How many times ``retry`` calls an operation that always raises ``error``."""
    calls = []

    def do() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        retry.call_with_retry(do, lambda _error: None)
    return len(calls)


def test_options_bound_each_wait_and_retry_only_a_lost_connection_once() -> None:
    options = interactive_options(2.0, retries=1, read_extra_s=1.5)
    assert options["socket_connect_timeout"] == 2.0
    assert options["socket_timeout"] == 3.5  # the longest BLOCK of the client's commands on top
    assert calls_until_raised(options["retry"], redis.ConnectionError("reset")) == 2
    assert calls_until_raised(options["retry"], redis.TimeoutError("hangs")) == 1
    assert calls_until_raised(interactive_options(2.0, retries=0)["retry"], redis.ConnectionError("reset")) == 1


def test_settings_give_the_bounds_and_sentinel_gets_the_failover_aware_connections() -> None:
    settings = Settings(api_redis_timeout_s=0.7, api_redis_retries=0, redis_sentinels=None)
    plain = interactive_client("redis://127.0.0.1:1/0", settings)
    kwargs = plain.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.7
    assert kwargs["retry"].get_retries() == 0
    sentinel = Settings(api_redis_timeout_s=0.7, redis_sentinels="127.0.0.1:1")
    assert interactive_client("redis://sentinel/0", sentinel).connection_pool.connection_class is \
        FailoverAwareConnection
    streams = interactive_async_client("redis://sentinel/0", sentinel, read_extra_s=1.0)
    assert streams.connection_pool.connection_class is AsyncFailoverAwareConnection
    assert streams.connection_pool.connection_kwargs["socket_timeout"] == 1.7


def test_a_lost_connection_is_retried_at_once_and_a_hung_server_is_an_error_not_a_wait(
        own_redis: RedisServer) -> None:
    settings = Settings(api_redis_timeout_s=0.5, api_redis_retries=1, redis_sentinels=None)
    client = interactive_client(own_redis.url, settings)
    admin = redis.Redis.from_url(own_redis.url)
    try:
        client.set("k", "v")
        admin.client_kill_filter(_type="normal", skipme=True)  # the pooled connection is closed by the server
        assert client.get("k") == b"v"  # one quick retry on a new connection
        with hung(own_redis), pytest.raises(redis.TimeoutError):
            client.get("k")
        assert client.get("k") == b"v"
    finally:
        client.close()
        admin.close()


class StubSentinelPool:
    """What a Sentinel-managed connection asks of its pool: the primary the Sentinels name (``address``)."""

    is_master = True
    check_connection = False

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address

    def get_master_address(self) -> tuple[str, int]:
        return self.address


class AsyncStubSentinelPool(StubSentinelPool):
    async def get_master_address(self) -> tuple[str, int]:  # type: ignore[override]
        return self.address


def test_a_timeout_becomes_a_retryable_connection_error_only_once_the_sentinels_name_another_primary(
        own_redis: RedisServer) -> None:
    pool = StubSentinelPool(("127.0.0.1", own_redis.port))
    conns = [FailoverAwareConnection(connection_pool=pool, password=own_redis.password, socket_timeout=0.5,
                                     socket_connect_timeout=0.5) for _ in range(2)]
    try:
        for conn in conns:
            conn.connect()
        with hung(own_redis):
            conns[0].send_command("PING")
            with pytest.raises(redis.TimeoutError):
                conns[0].read_response()  # the Sentinels still name it: a timeout, not retried
            pool.address = ("10.255.255.1", 6379)  # a failover completed meanwhile
            conns[1].send_command("PING")
            with pytest.raises(redis.ConnectionError, match="another primary"):
                conns[1].read_response()
            assert conns[1]._sock is None  # dropped: the retry connects to the new primary
    finally:
        for conn in conns:
            conn.disconnect()


def test_the_asyncio_twin_does_the_same(own_redis: RedisServer) -> None:
    async def scenario() -> None:
        pool = AsyncStubSentinelPool(("127.0.0.1", own_redis.port))
        conn = AsyncFailoverAwareConnection(connection_pool=pool, password=own_redis.password, socket_timeout=0.5,
                                            socket_connect_timeout=0.5)
        await conn.connect()
        try:
            with hung(own_redis):
                await conn.send_command("PING")
                with pytest.raises(redis.TimeoutError):
                    await conn.read_response()
        finally:
            await conn.disconnect()
        pool2 = AsyncStubSentinelPool(("127.0.0.1", own_redis.port))
        moved = AsyncFailoverAwareConnection(connection_pool=pool2, password=own_redis.password, socket_timeout=0.5,
                                             socket_connect_timeout=0.5)
        await moved.connect()
        try:
            with hung(own_redis):
                pool2.address = ("10.255.255.1", 6379)
                await moved.send_command("PING")
                with pytest.raises(redis.ConnectionError, match="another primary"):
                    await moved.read_response()
        finally:
            await moved.disconnect()

    asyncio.run(scenario())

