"""Fixtures of the multi-host tests: a :class:`~tests.cluster.netns.Cluster` of namespace hosts, removed after the
test whatever happens (and swept by the next run if this one is killed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.netns import Cluster, netns_unavailable

_WHY_NOT = netns_unavailable()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is marked ``netns`` and skipped, saying why, where namespaces cannot be made."""
    for item in items:
        if "tests/cluster/" in item.nodeid:
            item.add_marker(pytest.mark.netns)
            if _WHY_NOT is not None:
                item.add_marker(pytest.mark.skip(reason=f"multi-host tests need Linux network namespaces: {_WHY_NOT}"))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """An empty cluster (add hosts with ``cluster.add_host(name)``)."""
    if _WHY_NOT is not None:
        pytest.skip(f"multi-host tests need Linux network namespaces: {_WHY_NOT}")
    c = Cluster()
    try:
        yield c
    finally:
        c.close()
