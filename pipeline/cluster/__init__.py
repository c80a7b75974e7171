"""Many worker hosts, one control room: camera leases, worker registry, shared configuration and fencing.

- :mod:`pipeline.cluster.leases`: Redis primitives (worker heartbeats, one lease per camera with a fencing token);
- :mod:`pipeline.cluster.configstore`: ``cameras.yaml`` kept in Redis with a version (``cluster push-config``);
- :mod:`pipeline.cluster.agent`: what one worker decides every step (renew, take, release one for balance);
- :mod:`pipeline.cluster.fencing`: the event store and publisher that refuse writes of a lease that was lost;
- :mod:`pipeline.cluster.lanebus`: a frame bus whose lanes are (re)assigned to cameras while it runs;
- :mod:`pipeline.cluster.node`: ``pipeline run --role worker``, the supervisor of one worker host;
- :mod:`pipeline.cluster.roles`: ``pipeline run --role api`` and ``pipeline cluster push-config | status``;
- :mod:`pipeline.cluster.measure`: who holds which camera, and how long a lost worker's cameras take to move.
"""

from __future__ import annotations

from typing import Any


def cluster_redis_client(url: str, **kwargs: Any) -> Any:
    """A Redis client for ``url`` through :mod:`pipeline.store.connection` (Sentinel-aware) where it exists."""
    try:
        from pipeline.store.connection import redis_client
    except ImportError:  # pragma: no cover - older trees without the Sentinel-aware factory
        import redis

        return redis.Redis.from_url(url, **kwargs)
    return redis_client(url, **kwargs)
