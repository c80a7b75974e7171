"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis


@pytest.fixture()
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's (freshly flushed) Redis, closed after the test."""
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()
