"""Start-up health check: refuse to run the service against a Redis that keeps nothing on disk.

Plate reads, users, watchlists, cases and the audit trail live in Redis; a server started with ``--save ""
--appendonly no`` loses all of them on its next restart. :func:`ensure_durable` asks the server how it persists
(``CONFIG GET appendonly`` / ``save``; when the ACL user may not run CONFIG, ``INFO persistence``) and raises
:class:`VolatileRedisError` with what to do unless the ``CCTV_REDIS_ALLOW_VOLATILE=1`` override is given.

- AOF on: durable (with ``appendfsync everysec`` at most the last second is lost, and only on an OS crash);
- RDB snapshots only: accepted with a warning (everything since the last snapshot is lost on a crash);
- neither: refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from pipeline.secrets import redact_url

logger = logging.getLogger(__name__)

FIX_HINT = (
    "Run the project's own Redis (scripts/install.sh writes var/secrets/redis.conf with AOF and RDB snapshots in "
    "var/redis and starts it on 127.0.0.1:6380; `set -a; . var/secrets/redis.env; set +a` then points "
    "CCTV_REDIS_URL at it), or turn persistence on in your Redis (CONFIG SET appendonly yes; CONFIG SET appendfsync "
    "everysec; CONFIG REWRITE). Set CCTV_REDIS_ALLOW_VOLATILE=1 only for tests or throw-away demos: every plate "
    "read, user, watchlist, case and audit record is then lost when Redis restarts."
)


class RedisStartError(RuntimeError):
    """The service must not start against this Redis; the message says why and how to fix it."""


class VolatileRedisError(RedisStartError):
    """The Redis server keeps nothing on disk and no override allows that."""


class RedisCredentialsError(RedisStartError):
    """The Redis server refused the credentials in the Redis URL (wrong or missing password or user)."""


class UnfinishedRestoreError(RedisStartError):
    """A restore into this Redis was killed half-way (:func:`pipeline.store.backup.unfinished_restore`): serving it
    would mix restored and older records; the message names the rollback command."""


@dataclass(frozen=True)
class Persistence:
    """How a Redis server persists its data.

    Attributes:
        aof: append-only file enabled.
        rdb_rules: the ``save`` rules ("" = no snapshots; None = unknown, CONFIG not permitted).
        fsync: the ``appendfsync`` policy (None when unknown).
        source: ``config`` or ``info`` (what the answer was read from).
    """

    aof: bool
    rdb_rules: str | None
    fsync: str | None
    source: str

    @property
    def keeps_anything(self) -> bool:
        """True when the server writes its data to disk at all (AOF or RDB snapshots)."""
        return self.aof or bool(self.rdb_rules)

    def describe(self) -> str:
        """One line for the log."""
        rdb = "unknown" if self.rdb_rules is None else (self.rdb_rules or "off")
        return f"AOF {'on' if self.aof else 'off'} (appendfsync {self.fsync or '?'}), RDB snapshots {rdb}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_persistence(client: redis.Redis) -> Persistence:
    """Ask ``client``'s server how it persists (CONFIG GET, or INFO persistence when CONFIG is not permitted)."""
    try:
        config = {_text(k): _text(v) for k, v in client.config_get("appendonly").items()}
        config.update({_text(k): _text(v) for k, v in client.config_get("save").items()})
        config.update({_text(k): _text(v) for k, v in client.config_get("appendfsync").items()})
        return Persistence(aof=config.get("appendonly", "no") == "yes", rdb_rules=config.get("save", "").strip(),
                           fsync=config.get("appendfsync"), source="config")
    except redis.ResponseError as exc:  # NOPERM for an ACL user without CONFIG, or a managed Redis without it
        logger.debug("CONFIG GET refused (%s); reading INFO persistence", exc)
    info = client.info("persistence")
    return Persistence(aof=int(info.get("aof_enabled", 0)) == 1, rdb_rules=None, fsync=None, source="info")


def ensure_durable(client: redis.Redis, allow_volatile: bool, url: str = "") -> Persistence | None:
    """Check that the server keeps its data on disk; raise :class:`VolatileRedisError` if not (unless allowed),
    :class:`RedisCredentialsError` when it refuses the credentials.

    Returns the persistence found, or None when the server cannot be reached (the caller decides; the workers
    spool their events on disk meanwhile). ``url`` is only used in messages (its password is redacted).
    """
    where = redact_url(url) if url else "Redis"
    try:
        found = read_persistence(client)
    except redis.AuthenticationError as exc:  # a ConnectionError too, but waiting will not fix it
        raise RedisCredentialsError(
            f"{where} refused the service's credentials ({type(exc).__name__}: {exc}): check the user and password "
            "in the Redis URL (CCTV_REDIS_URL; the API's own CCTV_API_REDIS_URL when set), which README's set-up "
            "writes to var/secrets/redis.env.") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        logger.warning("cannot check how %s persists its data (%s): not checked at this start (the engine spools "
                       "its events on disk until Redis answers)", where, exc)
        return None
    if found.keeps_anything:
        if not found.aof:
            logger.warning("%s keeps RDB snapshots only (%s): a crash loses everything written since the last "
                           "snapshot; turn on AOF (appendonly yes, appendfsync everysec)", where, found.describe())
        else:
            logger.info("%s persists its data: %s", where, found.describe())
        return found
    if found.source == "info":
        message = (f"{where} has AOF off and the ACL user may not read its snapshot rules (CONFIG GET): it may keep "
                   "nothing on disk, so the service will not start against it.")
    else:
        message = (f"{where} keeps nothing on disk ({found.describe()}): a Redis restart would wipe every plate "
                   "read, index, user, API key, watchlist, case and the audit trail, so the service will not "
                   "start against it.")
    if allow_volatile:
        logger.warning("%s Starting anyway because CCTV_REDIS_ALLOW_VOLATILE is set.", message)
        return found
    raise VolatileRedisError(f"{message} {FIX_HINT}")
