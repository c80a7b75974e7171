"""The one place Redis clients are made: a plain server, or the primary that Redis Sentinel names.

Without ``CCTV_REDIS_SENTINELS`` a client connects to the URL it is given (``CCTV_REDIS_URL`` and friends). With it
(``host:port,host:port,...``), the URL gives only the user, password and database; the server is the current
primary of the Sentinel-monitored group ``CCTV_REDIS_SENTINEL_MASTER`` (default ``cctv``), asked of the Sentinels on
every new connection. After a failover the old connections fail (connection refused, or ``READONLY`` from a demoted
primary, which redis-py turns into a connection error), the next command asks the Sentinels again and reaches the
new primary; meanwhile the engine spools its events on disk (:mod:`pipeline.engine.publisher`). The Sentinels' own
password (their ``requirepass``) comes from ``CCTV_REDIS_SENTINEL_PASSWORD`` (user: ``CCTV_REDIS_SENTINEL_USERNAME``),
never from a URL or a command line.

Everything that talks to Redis (workers, engine, retention, API, alert streams, CLI) goes through
:func:`redis_client` or :func:`async_redis_client`, so one setting moves the whole service onto Sentinel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from pipeline.secrets import redact_url
from pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SENTINEL_SOCKET_TIMEOUT_S = 1.0
"""How long one Sentinel may take to answer ``get-master-addr-by-name`` before the next one is asked."""


class SentinelConfigError(ValueError):
    """``CCTV_REDIS_SENTINELS`` cannot be parsed."""


@dataclass(frozen=True)
class SentinelSetup:
    """Where the Sentinels are and what they monitor."""

    addresses: tuple[tuple[str, int], ...]
    master: str
    username: str | None
    password: str | None


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (IPv6 as ``[addr]:port``) -> addresses; :class:`SentinelConfigError` says which
    entry is wrong."""
    out: list[tuple[str, int]] = []
    for i, raw in enumerate(text.split(",")):
        entry = raw.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SentinelConfigError(f"CCTV_REDIS_SENTINELS entry {i + 1} ({entry!r}) is not host:port "
                                      "(e.g. 10.0.0.1:26379)")
        out.append((host, int(port)))
    if not out:
        raise SentinelConfigError("CCTV_REDIS_SENTINELS is set but names no Sentinel (host:port,host:port,...)")
    return tuple(out)


def sentinel_setup(settings: Settings | None = None) -> SentinelSetup | None:
    """The Sentinel configuration of the settings, or None when the service talks to one Redis directly."""
    settings = settings or get_settings()
    if not settings.redis_sentinels or not settings.redis_sentinels.strip():
        return None
    return SentinelSetup(parse_sentinels(settings.redis_sentinels), settings.redis_sentinel_master,
                         settings.redis_sentinel_username, settings.redis_sentinel_password)


class RedisUrlError(ValueError):
    """``CCTV_REDIS_URL`` (or the admin URL) is not a Redis URL; the message shows it with its password masked."""


REDIS_SCHEMES = ("redis", "rediss", "unix")
_ENCODE_HINT = "a password holding '/', '?', '#', '@' or ':' must be percent-encoded (%2F, %3F, %23, %40, %3A)"


def check_redis_url(url: str) -> None:
    """RedisUrlError unless ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL with a numeric port and
    database; its message quotes the URL with the password masked, never a part the parser cut out of it (a
    password written unencoded would otherwise show in "port 'S3c' is not a number")."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise RedisUrlError(f"Redis URL {shown}: the scheme must be one of {', '.join(REDIS_SCHEMES)}")
    if parts.scheme == "unix":
        return
    try:
        parts.port  # noqa: B018 - the property parses the port
    except ValueError:
        raise RedisUrlError(f"Redis URL {shown}: its port is not a number ({_ENCODE_HINT})") from None
    if not parts.hostname:
        raise RedisUrlError(f"Redis URL {shown}: it names no host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise RedisUrlError(f"Redis URL {shown}: its database is not a number ({_ENCODE_HINT})")


def _url_auth(url: str) -> dict[str, Any]:
    """User name, password and database of a ``redis://`` URL (its host and port are not used with Sentinel)."""
    parts = urlsplit(url)
    out: dict[str, Any] = {}
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    db = parts.path.lstrip("/")
    if db:
        out["db"] = int(db)  # a number: the client factories checked the URL (check_redis_url) first
    return out


def _sentinel_kwargs(setup: SentinelSetup) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
                              "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S}
    if setup.password:
        kwargs["password"] = setup.password
    if setup.username:
        kwargs["username"] = setup.username
    return kwargs


def redis_client(url: str | None = None, settings: Settings | None = None, **kwargs: Any) -> redis.Redis:
    """A redis-py client for ``url`` (default ``CCTV_REDIS_URL``): that server, or with Sentinel configured the
    current primary of the monitored group, found again after every failover. ``kwargs`` go to every connection
    (timeouts, ``health_check_interval``, ``decode_responses``)."""
    settings = settings or get_settings()
    url = url or settings.redis_url
    check_redis_url(url)
    setup = sentinel_setup(settings)
    if setup is None:
        return redis.Redis.from_url(url, **kwargs)
    sentinel = Sentinel(list(setup.addresses), sentinel_kwargs=_sentinel_kwargs(setup))
    logger.debug("Redis through Sentinel %s (group %s) as %s", setup.addresses, setup.master, redact_url(url))
    return sentinel.master_for(setup.master, redis_class=redis.Redis, **(_url_auth(url) | kwargs))


def async_redis_client(url: str | None = None, settings: Settings | None = None, **kwargs: Any) -> aioredis.Redis:
    """The asyncio twin of :func:`redis_client` (``max_connections`` and other pool options in ``kwargs``)."""
    settings = settings or get_settings()
    url = url or settings.redis_url
    check_redis_url(url)
    setup = sentinel_setup(settings)
    if setup is None:
        return aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(url, **kwargs))
    sentinel = AsyncSentinel(list(setup.addresses), sentinel_kwargs=_sentinel_kwargs(setup))
    return sentinel.master_for(setup.master, redis_class=aioredis.Redis, **(_url_auth(url) | kwargs))


def fail_fast(timeout_s: float) -> dict[str, Any]:
    """Client options (for :func:`redis_client`) of a caller that retries by itself: connecting and each command
    wait at most ``timeout_s``, and redis-py does not retry a failed command (its default retries, ten with
    backoff, would multiply the wait on a primary that hangs). With Sentinel the next command of such a client
    asks the Sentinels again, so a hung primary is left for the one they name next."""
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "retry": Retry(NoBackoff(), 0)}


def bounded_copy(client: redis.Redis, timeout_s: float) -> redis.Redis:
    """A client on the same server (or the same Sentinel group, through the same Sentinels) as ``client``, with the
    same user, password and database, but :func:`fail_fast` options: for the answers that must come back within a
    bound whatever the server does (``/api/health``). Its own connections: close it when done with it."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k != "connection_pool"} | fail_fast(timeout_s)
    if isinstance(pool, SentinelConnectionPool):
        kwargs.pop("connection_class", None)  # the pool picks its Sentinel-managed class itself
        copy: redis.ConnectionPool = SentinelConnectionPool(pool.service_name, pool.sentinel_manager,
                                                            is_master=pool.is_master, **kwargs)
    else:
        copy = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=copy)



class FailoverAwareConnection(SentinelManagedConnection):
    """A connection to the primary the Sentinels name whose read that times out becomes a
    :class:`redis.ConnectionError` (a retryable error for :func:`interactive_options`) when the Sentinels now name
    another primary: a failover completed while the command waited, so the one retry goes to the new primary at
    once (and the pool's idle connections to the old one are dropped). A timeout on the primary they still name
    stays a :class:`redis.TimeoutError`, not retried: asking that server again would only wait as long again."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.TimeoutError as exc:
            if not _moved(self, _current_primary(self.connection_pool)):
                raise
            self.disconnect()
            raise redis.ConnectionError(f"Redis at {self.host}:{self.port} timed out and the Sentinels now name "
                                        "another primary") from exc


class AsyncFailoverAwareConnection(AsyncSentinelManagedConnection):
    """The asyncio twin of :class:`FailoverAwareConnection`."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except redis.TimeoutError as exc:
            try:
                primary = await self.connection_pool.get_master_address()
            except (redis.RedisError, OSError):
                primary = None
            if not _moved(self, primary):
                raise
            await self.disconnect()
            raise redis.ConnectionError(f"Redis at {self.host}:{self.port} timed out and the Sentinels now name "
                                        "another primary") from exc


def _current_primary(pool: Any) -> tuple[str, int] | None:
    """The primary the Sentinels name now (None when none answers)."""
    try:
        return pool.get_master_address()
    except (redis.RedisError, OSError):
        return None


def _moved(connection: Any, primary: tuple[str, int] | None) -> bool:
    """Whether ``primary`` is known and is not the server ``connection`` talks to."""
    return primary is not None and tuple(primary) != (connection.host, connection.port)


def interactive_options(timeout_s: float, retries: int = 1, read_extra_s: float = 0.0,
                        asyncio: bool = False) -> dict[str, Any]:
    """Client options of a caller that answers people (the API): connecting waits at most ``timeout_s``, each
    command ``timeout_s + read_extra_s`` (``read_extra_s``: the longest ``BLOCK`` its commands ask for), and a
    command whose connection failed (refused, reset, closed by the server, ``READONLY`` from a demoted primary) is
    tried again at most ``retries`` times at once, on a new connection (with Sentinel: to the primary they name
    then). A timeout is not retried (but see :class:`FailoverAwareConnection`); redis-py's defaults (5 s, ten
    retries with backoff) made one command on a primary that hangs wait from 5 s to a minute."""
    retry_class = AsyncRetry if asyncio else Retry
    return {"socket_timeout": timeout_s + read_extra_s, "socket_connect_timeout": timeout_s,
            "retry": retry_class(NoBackoff(), retries, supported_errors=(redis.ConnectionError,))}


def interactive_client(url: str | None = None, settings: Settings | None = None, **kwargs: Any) -> redis.Redis:
    """:func:`redis_client` with :func:`interactive_options` from ``CCTV_API_REDIS_TIMEOUT_S`` and
    ``CCTV_API_REDIS_RETRIES`` (the API's client; ``kwargs`` override them), on :class:`FailoverAwareConnection`
    connections with Sentinel."""
    settings = settings or get_settings()
    options = interactive_options(settings.api_redis_timeout_s, settings.api_redis_retries)
    if sentinel_setup(settings) is not None:
        options["connection_class"] = FailoverAwareConnection
    return redis_client(url, settings, **(options | kwargs))


def interactive_async_client(url: str | None = None, settings: Settings | None = None, read_extra_s: float = 0.0,
                             **kwargs: Any) -> aioredis.Redis:
    """The asyncio twin of :func:`interactive_client`; ``read_extra_s``: the longest ``BLOCK`` of its commands
    (an alert stream's ``XREAD``), added to the wait of a command."""
    settings = settings or get_settings()
    options = interactive_options(settings.api_redis_timeout_s, settings.api_redis_retries, read_extra_s,
                                  asyncio=True)
    if sentinel_setup(settings) is not None:
        options["connection_class"] = AsyncFailoverAwareConnection
    return async_redis_client(url, settings, **(options | kwargs))


def wait_replicas(settings: Settings | None = None) -> int:
    """Replicas that must confirm an event before it counts as stored (``CCTV_REDIS_WAIT_REPLICAS``; unset: 1
    with Sentinel, 0 without)."""
    settings = settings or get_settings()
    if settings.redis_wait_replicas is not None:
        return settings.redis_wait_replicas
    return 1 if sentinel_setup(settings) is not None else 0
