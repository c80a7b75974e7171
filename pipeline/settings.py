"""Process-wide settings read from the environment (never from hard-coded paths).

Every setting has an environment variable prefixed with ``CCTV_``:

- ``CCTV_MODEL_DIR``: directory holding the upstream model files (the layout of ``models/manifest.yaml``).
- ``CCTV_PROJECT_MODEL_DIR``: directory holding the models this project trains and ships (default ``models/``).
- ``CCTV_DERIVED_MODEL_DIR``: where derived files (batch-capable exports) are written (default ``var/models``).
- ``CCTV_REDIS_URL``: Redis connection URL of the workers (``scripts/install.sh`` writes it, with the workers' ACL
  user and password, to ``var/secrets/redis.env``).
- ``CCTV_API_REDIS_URL``: Redis URL of the API (its own ACL user); the supervisor hands it to the API child. Unset:
  the API uses ``CCTV_REDIS_URL``.
- ``CCTV_REDIS_ADMIN_URL``: Redis URL with full rights, used by ``python -m pipeline backup/restore`` (unset: the
  workers' URL).
- ``CCTV_REDIS_ALLOW_VOLATILE``: ``1`` lets the service start against a Redis that keeps nothing on disk (tests,
  throw-away demos); without it the service refuses to start (see :mod:`pipeline.store.durability`).
- ``CCTV_REDIS_PORT``, ``CCTV_REDIS_DATA_DIR``, ``CCTV_REDIS_SECRETS_FILE``, ``CCTV_REDIS_CONF_FILE``: the project's
  own Redis written by ``python -m pipeline redis-setup`` (port 6380, data in ``var/redis``, credentials in
  ``var/secrets/redis.env`` and the generated ``var/secrets/redis.conf``, both mode 0600).
- ``CCTV_REDIS_SENTINELS`` (``host:port,host:port,...``), ``CCTV_REDIS_SENTINEL_MASTER`` (``cctv``),
  ``CCTV_REDIS_SENTINEL_USERNAME``, ``CCTV_REDIS_SENTINEL_PASSWORD``: find the Redis primary through Redis Sentinel
  (:mod:`pipeline.store.connection`); the Redis URLs then give only user, password and database.
- ``CCTV_REDIS_WAIT_REPLICAS``, ``CCTV_REDIS_WAIT_TIMEOUT_MS``: replicas that must confirm each event (``WAIT``)
  before it leaves the engine's spool (unset: 1 with Sentinel, 0 without), and how long to wait for them.
- ``CCTV_API_REDIS_TIMEOUT_S`` (default 2), ``CCTV_API_REDIS_RETRIES`` (default 1): the longest one Redis command
  (or connection) of an API request may wait, and how many times a command that lost its connection is tried
  again at once (asking the Sentinels again; a command that timed out only when the Sentinels meanwhile name
  another primary): a primary that hangs costs a request at most about that long, then ``503`` (see
  :func:`pipeline.store.connection.interactive_client`).
- ``CCTV_HOST_NAME``: this host's name in the recording index (default: the machine's host name).
- ``CCTV_INTERNAL_TOKEN``, ``CCTV_INTERNAL_LISTEN``, ``CCTV_INTERNAL_URL``: the shared secret, listen address and
  advertised base URL of the worker's internal segment server (:mod:`pipeline.recording.serve`).
- ``CCTV_RECORDINGS_DIR``: root of recordings, snapshots and exported evidence.
- ``CCTV_VIDEOS_DIR``: folder of sample footage served as loopback RTSP cameras by the demo.
- ``CCTV_DEVICE``: inference device of the models loaded outside the engine's config (the plate reader's
  ``auto``): ``auto``, ``cpu`` or ``cuda``, as ``engine.device``.
- ``CCTV_MODEL_THREADS``: CPU threads each model's inference may use (default 0: the runtime's own choice, every
  core); cap it where several worker processes share one host.
- ``CCTV_FORWARDED_ALLOW_IPS``: comma-separated addresses of reverse proxies whose ``X-Forwarded-For`` /
  ``X-Forwarded-Proto`` the API believes (``*``: any). Unset: none, and the client address is the TCP peer's
  (otherwise anyone on the API's host could pick the address the login limits and the audit trail see).
- ``CCTV_CUDA_SYNC``: how a process waits for the GPU under ``engine.runtime: torch`` (``auto``: CUDA's own choice,
  spinning while it has cores to spare; ``blocking``: sleeping, which leaves those cores to decoding and the other
  engines; ``spin``, ``yield``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.secrets import redact_text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "CCTV_"
SECRET_SETTINGS = frozenset({"redis_url", "api_redis_url", "redis_admin_url", "redis_sentinel_username",
                             "redis_sentinel_password", "internal_token"})
"""Settings whose value is (or holds) a credential: an error about one never shows the value."""


class SettingsError(ValueError):
    """An environment variable ``CCTV_*`` holds a value the service cannot use; one line per variable, never the
    value of a secret."""


class Settings(BaseSettings):
    """Runtime settings; see the module docstring for the environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    model_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "models",
        description="Directory of upstream model weights (fetched by `python -m pipeline models fetch`).",
    )
    project_model_dir: Path = Field(
        default=PROJECT_ROOT / "models",
        description="Directory of models trained and shipped by this project (plate reader).",
    )
    derived_model_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "models",
        description="Directory where derived model files (batch-capable exports) are written.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis connection URL.")
    api_redis_url: str | None = Field(default=None, description="Redis URL of the API child (its own ACL user).")
    redis_admin_url: str | None = Field(default=None, description="Redis URL with full rights (backup/restore).")
    redis_allow_volatile: bool = Field(
        default=False, description="Start even against a Redis that keeps nothing on disk (tests, demos only).")
    redis_port: int = Field(default=6380, ge=1, le=65535, description="Port of the project's own Redis.")
    redis_data_dir: Path = Field(default=PROJECT_ROOT / "var" / "redis",
                                 description="Data folder (AOF and RDB) of the project's own Redis.")
    redis_secrets_file: Path = Field(default=PROJECT_ROOT / "var" / "secrets" / "redis.env",
                                     description="Generated credentials of the project's Redis (mode 0600).")
    redis_conf_file: Path = Field(default=PROJECT_ROOT / "var" / "secrets" / "redis.conf",
                                  description="Generated redis.conf of the project's Redis (mode 0600).")
    redis_sentinels: str | None = Field(default=None, max_length=4096,
                                        description="Sentinels host:port,host:port,... (unset: no Sentinel).")
    redis_sentinel_master: str = Field(default="cctv", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$",
                                       description="Name of the group the Sentinels monitor.")
    redis_sentinel_username: str | None = Field(default=None, max_length=256, description="Sentinel ACL user.")
    redis_sentinel_password: str | None = Field(default=None, max_length=1024,
                                                description="Sentinel password (their requirepass).")
    redis_wait_replicas: int | None = Field(default=None, ge=0, le=16,
                                            description="Replicas that must confirm each event (WAIT).")
    redis_wait_timeout_ms: int = Field(default=1000, ge=1, le=60_000,
                                       description="How long an event write waits for its replicas (ms).")
    api_redis_timeout_s: float = Field(default=2.0, gt=0, le=60,
                                       description="Longest wait of one Redis command or connection of the API.")
    api_redis_retries: int = Field(default=1, ge=0, le=3,
                                   description="Quick retries of an API Redis command whose connection failed.")
    host_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128,
                           pattern=r"^[A-Za-z0-9_.-]+$", description="This host's name in the recording index.")
    internal_token: str | None = Field(default=None, min_length=16, max_length=1024,
                                       description="Shared secret of the hosts' internal segment servers.")
    internal_listen: str = Field(default="0.0.0.0:9110", max_length=300,
                                 description="host:port the internal segment server listens on.")
    internal_url: str | None = Field(default=None, max_length=300,
                                     description="Base URL other hosts reach this host's segment server at.")
    recordings_dir: Path = Field(
        default=PROJECT_ROOT / "recordings",
        description="Root for recordings, snapshots, crops and exported evidence.",
    )
    videos_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data" / "videos",
        description="Folder of sample footage that the demo serves as loopback RTSP cameras.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Inference device: auto, cpu or cuda "
                                                   "(the values of engine.device).")
    model_threads: int = Field(default=0, ge=0, le=1024,
                               description="CPU threads each model's inference may use (0: the runtime's default, "
                                           "every core); cap it where several worker processes share one host.")
    forwarded_allow_ips: str = Field(default="", max_length=2000, pattern=r"^[0-9A-Fa-f:.,/* ]*$",
                                     description="Reverse proxies whose X-Forwarded-* headers the API trusts "
                                                 "(comma-separated addresses or networks, * for any; empty: none).")
    cuda_sync: Literal["auto", "blocking", "spin", "yield"] = Field(
        default="auto", description="How a process waits for the GPU (engine.runtime torch): auto (CUDA's choice), "
                                    "blocking (sleep: frees the CPU), spin or yield.")


def _setting_problem(err: Any) -> str:
    """One line for one pydantic error: the variable, what is wrong and, unless it is a secret, what it held."""
    field = str(err["loc"][0]) if err["loc"] else ""
    line = f"{ENV_PREFIX}{field.upper()}: {err['msg']}"
    value = err.get("input")
    if field not in SECRET_SETTINGS and isinstance(value, str):
        shown = redact_text(value)
        line += f" (got {shown[:80]!r}{'...' if len(shown) > 80 else ''})"
    return line


def settings_error(exc: ValidationError) -> SettingsError:
    """The :class:`SettingsError` of a failed :class:`Settings` validation."""
    problems = [_setting_problem(err) for err in exc.errors()]
    return SettingsError("invalid environment setting(s):\n" + "\n".join(f"  {p}" for p in problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings, read once from the environment; :class:`SettingsError` names every variable that is
    wrong (never the value of a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


REDIS_LOCATION_VARIABLES = ("CCTV_REDIS_URL", "CCTV_API_REDIS_URL", "CCTV_REDIS_ADMIN_URL", "CCTV_REDIS_SENTINELS")
"""Variables that name the Redis to use; with none of them set every URL falls back to the machine's 6379."""


def load_project_redis_credentials(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """For console commands run in a plain shell (``python -m api create-user``, ``backup``, ``restore``): when
    the environment names no Redis at all, take the URLs of the project's own Redis from its secrets file
    (``CCTV_REDIS_SECRETS_FILE``, default ``var/secrets/redis.env``, written by ``redis-setup``) instead of falling
    back to ``redis://127.0.0.1:6379/0``, the machine's Redis, which the service does not use. Returns the file
    read, or None (a Redis already named, or no readable secrets file); the settings are read again afterwards."""
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in REDIS_LOCATION_VARIABLES):
        return None
    path = Path(env.get(f"{ENV_PREFIX}REDIS_SECRETS_FILE") or PROJECT_ROOT / "var" / "secrets" / "redis.env")
    try:
        text = path.read_text()
    except OSError:
        return None
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in REDIS_LOCATION_VARIABLES[:3] and value.strip():
            found[name.strip()] = value.strip()
    if not found:
        return None
    env.update(found)
    get_settings.cache_clear()
    return path
