"""The API's camera list follows the configuration pushed to Redis (multi-host deployments, :mod:`pipeline.cluster`).

Where a ``cameras.yaml`` was pushed (``python -m pipeline cluster push-config`` or an API host started with
``--role api --config``), every API replica serves that one and picks up a new version within
:data:`POLL_S`, so cameras added or removed on one host show on all of them without a restart. Where nothing was
pushed the API keeps the file it loaded at start.

A single-host ``pipeline run --role all`` service (``CCTV_CAMERA_CONFIG_SOURCE=file``, set by its supervisor) never
follows pushes: its workers run the ``--config`` file, so its API serves that file too, warns once per pushed
version that differs from it, and marks itself in Redis (:data:`~pipeline.cluster.configstore.SINGLE_HOST_KEY`) so
that ``cluster push-config`` can tell the user the push will not apply there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool

from pipeline.config import ConfigError
from pipeline.secrets import url_secrets

logger = logging.getLogger(__name__)

POLL_S = 5.0
IGNORED_WARNING = ("a configuration pushed with `cluster push-config` is ignored by a single-host `--role all` "
                   "service: restart with the file, or run --role api/worker (Redis holds version %d, this "
                   "service serves %s)")


def follow_camera_config(app: Any, client: Any) -> bool:
    """Load the pushed configuration into ``app.state.camera_config`` when its version moved; True if it did.
    Redis errors and a stored text that does not validate leave the current configuration in place (logged)."""
    from pipeline.cluster.configstore import config_version, load_cluster_config

    try:
        version = config_version(client)
        if not version or version == getattr(app.state, "camera_config_version", 0):
            return False
        stored = load_cluster_config(client)
    except (redis.RedisError, OSError) as exc:
        logger.debug("pushed camera configuration not read: %s", exc)
        return False
    except ConfigError as exc:
        logger.error("the camera configuration in Redis does not validate; keeping the current one: %s", exc)
        return False
    if stored is None:
        return False
    for url in stored.config.stream_urls():
        url_secrets(url)  # health and logs are redacted by value for the new cameras too
    app.state.camera_config = stored.config
    app.state.camera_config_version = stored.version
    logger.info("camera configuration version %d from Redis (%d cameras)", stored.version, len(stored.config.cameras))
    return True


def serves_file(app: Any) -> bool:
    """True where the API serves its ``config_path`` only (``CCTV_CAMERA_CONFIG_SOURCE=file``, ``--role all``)."""
    return getattr(app.state.settings, "camera_config_source", "cluster") == "file"


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def check_ignored_config(app: Any, client: Any) -> bool:
    """``--role all``: mark this service in Redis and warn (once per version) when Redis holds a pushed
    configuration other than the file this service serves; True if it warned. Never changes the camera list."""
    from pipeline.cluster.configstore import CONFIG_KEY, SINGLE_HOST_TTL_S, mark_single_host, single_host_where

    path = Path(app.state.settings.config_path)
    try:
        mark_single_host(client, single_host_where(path), SINGLE_HOST_TTL_S)
        version, sha = client.hmget(CONFIG_KEY, ["version", "sha256"])
    except (redis.RedisError, OSError) as exc:
        logger.debug("pushed camera configuration not checked: %s", exc)
        return False
    if version is None or int(version) == getattr(app.state, "ignored_config_version", 0):
        return False
    app.state.ignored_config_version = int(version)
    stored_sha = sha.decode() if isinstance(sha, bytes) else str(sha)
    if stored_sha == _file_sha256(path):
        return False
    logger.warning(IGNORED_WARNING, int(version), path)
    return True


def sync_camera_config(app: Any, client: Any) -> bool:
    """One step of following the configuration: True if the camera list changed (never for ``--role all``)."""
    if serves_file(app):
        check_ignored_config(app, client)
        return False
    return follow_camera_config(app, client)


async def camera_config_loop(app: Any, client: Any, poll_s: float = POLL_S) -> None:
    """Follow the pushed configuration until cancelled (``--role all``: only check for ignored pushes)."""
    while True:
        await asyncio.sleep(poll_s)
        if await run_in_threadpool(sync_camera_config, app, client):
            from api.routes.live import follow_live_config

            follow_live_config(app)  # live viewers follow a camera's new stream URL now, not at their next request
