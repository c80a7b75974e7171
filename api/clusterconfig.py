"""The API's camera list follows the configuration pushed to Redis (multi-host deployments, :mod:`pipeline.cluster`).

Where a ``cameras.yaml`` was pushed (``python -m pipeline cluster push-config`` or an API host started with
``--role api --config``), every API replica serves that one and picks up a new version within
:data:`POLL_S`, so cameras added or removed on one host show on all of them without a restart. Where nothing was
pushed (one machine, ``--role all``) the API keeps the file it loaded at start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool

from pipeline.config import ConfigError
from pipeline.secrets import url_secrets

logger = logging.getLogger(__name__)

POLL_S = 5.0


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


async def camera_config_loop(app: Any, client: Any, poll_s: float = POLL_S) -> None:
    """Follow the pushed configuration until cancelled."""
    while True:
        await asyncio.sleep(poll_s)
        if await run_in_threadpool(follow_camera_config, app, client):
            from api.routes.live import follow_live_config

            follow_live_config(app)  # live viewers follow a camera's new stream URL now, not at their next request
