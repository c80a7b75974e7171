"""``cameras.yaml`` kept in Redis, one copy for every host, with a version that grows on every change.

Key ``cctv:cluster:config`` (hash): ``version`` (integer, +1 for every pushed change), ``yaml`` (the file's text as
written: camera passwords stay ``${VARIABLES}`` that each host expands from its own environment), ``sha256`` of the
text, ``pushed_at`` (epoch seconds), ``source`` (``<host>:<file>`` it was pushed from) and ``pushed_by`` (who:
``<user>@<host>`` of ``cluster push-config``, ``api@<host>`` of an API host's start). Pushing the same text again keeps
the version. Key ``cctv:cluster:config:history`` (hash): ``<sha256>`` = the version that text was stored as, so a
file's own version can be named when it is older than the one in Redis.

Two kinds of push: ``cluster push-config`` replaces whatever is stored (``replace=True``); an API host's start-up
push (``replace=False``) stores its file only when Redis has no configuration yet, and otherwise never replaces one:
a replica restarted with an older ``cameras.yaml`` must not roll the whole cluster back (:attr:`PushResult.kept`).

Workers poll :func:`config_version` (one ``HGET``) and reload with :func:`load_cluster_config` when it moved.
"""

from __future__ import annotations

import hashlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path
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


def single_host_where(config_path: str | Path | None) -> str:
    """The value of :data:`SINGLE_HOST_KEY` for a service on this host serving ``config_path``: ``<host>:<file>``
    (the file resolved; ``-`` without one)."""
    return f"{socket.gethostname()}:{Path(config_path).resolve() if config_path is not None else '-'}"

HISTORY_KEY = CONFIG_KEY + ":history"

_PUSH = """
-- KEYS: config hash, history hash; ARGV: yaml, sha256, pushed_at, source, pushed_by, replace ('1'/'0').
-- Returns {version, changed (0/1), kept (1: not replace and another configuration is stored: left as it is)}.
if redis.call('HGET', KEYS[1], 'sha256') == ARGV[2] then
  return {tonumber(redis.call('HGET', KEYS[1], 'version')), 0, 0}
end
if ARGV[6] ~= '1' and redis.call('HEXISTS', KEYS[1], 'yaml') == 1 then
  return {tonumber(redis.call('HGET', KEYS[1], 'version') or '0'), 0, 1}
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'yaml', ARGV[1], 'sha256', ARGV[2], 'pushed_at', ARGV[3], 'source', ARGV[4],
           'pushed_by', ARGV[5])
redis.call('HSET', KEYS[2], ARGV[2], version)
return {version, 1, 0}
"""


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    version: int
    changed: bool
    cameras: int
    kept: bool = False
    """A start-up push (``replace=False``) left a different configuration in Redis as it was."""


@dataclass(frozen=True)
class ConfigOrigin:
    """Where the configuration in Redis came from, and which version a given text was stored as before."""

    version: int
    source: str
    pushed_by: str
    pushed_at: float
    sha256: str
    text_version: int | None
    """The version the compared text was stored as earlier; None: never pushed."""

    def describe(self) -> str:
        """``version N (pushed by X from Y at T)``, for log lines and messages."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.pushed_at)) if self.pushed_at else "?"
        return (f"version {self.version} (pushed by {self.pushed_by or '?'} from {self.source or '?'} at {when}, "
                f"sha256 {self.sha256[:12]})")


@dataclass(frozen=True)
class StoredConfig:
    """A configuration read back from Redis."""

    version: int
    config: Config
    sha256: str


def text_sha256(text: str) -> str:
    """The digest a configuration text is stored and compared under."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def push_config(client: Any, text: str, source: str = "", pushed_by: str = "", replace: bool = True) -> PushResult:
    """Validate ``text`` (raises :class:`~pipeline.config.ConfigError` listing every problem) and store it.

    ``replace=False`` (an API host's start-up push) stores it only when Redis has no configuration yet; a different
    one already there is kept (``kept``). Returns the version now in Redis and whether this push changed it.
    """
    config = parse_config(text, source=source or "<pushed config>")
    script = client.register_script(_PUSH)
    version, changed, kept = script(keys=[CONFIG_KEY, HISTORY_KEY],
                                    args=[text, text_sha256(text), f"{time.time():.3f}", source[:512],
                                          pushed_by[:256], "1" if replace else "0"])  # fmt: skip
    return PushResult(int(version), int(changed) == 1, len(config.cameras), kept=int(kept) == 1)


def config_origin(client: Any, text: str | None = None) -> ConfigOrigin | None:
    """Where the configuration in Redis came from (None when nothing was pushed yet), and the version ``text``
    was stored as before, if it ever was."""
    raw = client.hmget(CONFIG_KEY, ["version", "source", "pushed_by", "pushed_at", "sha256"])
    if raw[0] is None:
        return None
    version, source, pushed_by, pushed_at, sha = (_str(v) for v in raw)
    earlier = client.hget(HISTORY_KEY, text_sha256(text)) if text is not None else None
    return ConfigOrigin(int(version), source, pushed_by, float(pushed_at or 0), sha,
                        int(earlier) if earlier is not None else None)  # fmt: skip


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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
