"""``cameras.yaml`` kept in Redis, one copy for every host, with a version that grows on every change.

Key ``cctv:cluster:config`` (hash): ``version`` (integer, +1 for every pushed change), ``yaml`` (the file's text as
written: camera passwords stay ``${VARIABLES}`` that each host expands from its own environment), ``sha256`` of the
text, ``pushed_at`` (epoch seconds) and ``source`` (where it was pushed from). Pushing the same text again keeps the
version, so every API replica may push the file it was started with.

Workers poll :func:`config_version` (one ``HGET``) and reload with :func:`load_cluster_config` when it moved.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from pipeline.config import Config, parse_config

CONFIG_KEY = "cctv:cluster:config"
SINGLE_HOST_KEY = "cctv:cluster:single-host"
"""Set (with a TTL, refreshed) by a single-host ``pipeline run --role all`` service, its supervisor (with or without
``--no-api``) and its API: ``<host>:<file>``. That service ignores pushed configurations, so ``cluster push-config``
says so."""
SINGLE_HOST_REFRESH_S = 5.0
"""How often a running ``--role all`` service refreshes :data:`SINGLE_HOST_KEY` (as its API's poll)."""
SINGLE_HOST_TTL_S = 6 * SINGLE_HOST_REFRESH_S
"""Lifetime of one refresh: the mark is gone this long after the service stopped (as its API's mark)."""

_PUSH = """
-- KEYS: config hash; ARGV: yaml, sha256, pushed_at, source. Returns {version, changed (0/1)}.
if redis.call('HGET', KEYS[1], 'sha256') == ARGV[2] then
  return {tonumber(redis.call('HGET', KEYS[1], 'version')), 0}
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'yaml', ARGV[1], 'sha256', ARGV[2], 'pushed_at', ARGV[3], 'source', ARGV[4])
return {version, 1}
"""


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    version: int
    changed: bool
    cameras: int


@dataclass(frozen=True)
class StoredConfig:
    """A configuration read back from Redis."""

    version: int
    config: Config
    sha256: str


def push_config(client: Any, text: str, source: str = "") -> PushResult:
    """Validate ``text`` (raises :class:`~pipeline.config.ConfigError` listing every problem) and store it.

    Returns the version now in Redis and whether this push changed it.
    """
    config = parse_config(text, source=source or "<pushed config>")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    script = client.register_script(_PUSH)
    version, changed = script(keys=[CONFIG_KEY], args=[text, digest, f"{time.time():.3f}", source[:512]])
    return PushResult(int(version), int(changed) == 1, len(config.cameras))


def config_version(client: Any) -> int:
    """The version of the configuration in Redis (0: none pushed yet)."""
    value = client.hget(CONFIG_KEY, "version")
    return int(value) if value is not None else 0


def load_cluster_config(client: Any) -> StoredConfig | None:
    """The configuration in Redis, validated; None when nothing was pushed yet.

    Raises :class:`~pipeline.config.ConfigError` when the stored text does not validate (pushed by another version
    of the software); workers then keep running on the configuration they have.
    """
    raw = client.hmget(CONFIG_KEY, ["version", "yaml", "sha256"])
    if raw[0] is None or raw[1] is None:
        return None
    text = raw[1].decode("utf-8") if isinstance(raw[1], bytes) else raw[1]
    sha = raw[2].decode() if isinstance(raw[2], bytes) else str(raw[2])
    return StoredConfig(int(raw[0]), parse_config(text, source=f"redis:{CONFIG_KEY}"), sha)


def mark_single_host(client: Any, where: str, ttl_s: float) -> None:
    """Say for ``ttl_s`` that a single-host ``--role all`` service, serving ``where``, uses this Redis."""
    client.set(SINGLE_HOST_KEY, where[:512], px=int(ttl_s * 1000))


def single_host_service(client: Any) -> str | None:
    """``<host>:<file>`` of a live single-host ``--role all`` service on this Redis, else None."""
    value = client.get(SINGLE_HOST_KEY)
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
