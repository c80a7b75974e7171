"""Clients that must not hang with a Redis that hangs: :func:`fail_fast` options and :func:`bounded_copy` (what
``/api/health`` asks through). A real redis-server is stopped (``SIGSTOP``) and always continued."""

from __future__ import annotations

import signal

import pytest
import redis

from pipeline.store.connection import bounded_copy, fail_fast, redis_client
from tests.conftest import RedisServer


def test_fail_fast_bounds_connection_and_command_and_turns_library_retries_off() -> None:
    options = fail_fast(0.5)
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.5
    assert options["retry"].get_retries() == 0


def test_a_bounded_copy_keeps_the_database_and_decoding_and_gives_up_on_a_hung_server(own_redis: RedisServer) -> None:
    url = own_redis.url.rstrip("/").rsplit("/", 1)[0] + "/5"
    client = redis_client(url, decode_responses=True)
    copy = bounded_copy(client, 0.5)
    try:
        client.set("k", "v")
        assert copy.get("k") == "v"  # same database, decoded like the original
        kwargs = copy.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.5 and kwargs["retry"].get_retries() == 0
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(redis.TimeoutError):
                copy.ping()  # an error, not a wait as long as the server hangs
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        assert copy.ping()  # and it works again once the server does
    finally:
        copy.close()
        client.close()
