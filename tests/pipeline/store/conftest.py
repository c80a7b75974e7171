"""Fixtures shared by the store tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer, free_port


@pytest.fixture()
def target_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A second, empty, durable server to restore into."""
    server = RedisServer(port=free_port(), workdir=tmp_path / "target-redis")
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()
