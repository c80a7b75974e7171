"""Service health: Redis reachability and camera counts (the only route without authentication).

The answer is for load balancers and monitoring, so it names no camera (ids and names stay behind sign-in, and on
the internal Prometheus endpoint). HTTP status:

- **200** ``ok``: Redis answers, every enabled camera is online and every recorded one records.
- **200** ``degraded``: Redis answers but a camera is not online (:func:`pipeline.ingest.health.camera_state`: a
  camera whose last frame is less than ``RECONNECT_GRACE_S`` old still counts as online) or a recorded camera's
  recording failed (:func:`pipeline.ingest.health.recording_state`: a full disk) (``cameras`` says how many are
  offline, stale, unknown or not recording). Deliberately not 503: the API itself serves, and a load balancer must
  not take it out of rotation because a camera on a pole went dark or its disk filled up. A worker host whose clock
  is off the Redis server's (:mod:`pipeline.cluster.clock`) makes it ``degraded`` too, counted in
  ``clock_skewed_hosts`` (``cluster status`` names them).
- **503** ``down``: Redis is unreachable (nothing works without it), or does not answer within
  :data:`HEALTH_REDIS_TIMEOUT_S` per command: a primary that hangs (with Sentinel, until a replica is promoted)
  gives ``down`` within about a second instead of a request that hangs with it.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api.deps import RedisDep
from api.routes.cameras import read_health
from api.schemas.misc import CameraCountsOut, HealthOut
from pipeline.cluster.clock import clock_problems
from pipeline.ingest.health import camera_state, recording_state
from pipeline.notify.webhooks import dead_letter_total
from pipeline.store.connection import bounded_copy

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/health", tags=["health"])

HEALTH_REDIS_TIMEOUT_S = 1.0
"""The longest one Redis command (or connection) of ``/api/health`` may wait; never retried inside redis-py."""
_copy_lock = threading.Lock()


def health_client(request: Request, client: RedisDep) -> redis.Redis:
    """The app's Redis client as a :func:`~pipeline.store.connection.bounded_copy` (made once per app client and
    kept in ``app.state``); a stand-in without a connection pool (a test's) as it is."""
    if not isinstance(getattr(client, "connection_pool", None), redis.ConnectionPool):
        return client
    with _copy_lock:
        made = getattr(request.app.state, "health_redis", None)
        if made is None or made[0] is not client:
            if made is not None:
                made[1].close()
            made = (client, bounded_copy(client, HEALTH_REDIS_TIMEOUT_S))
            request.app.state.health_redis = made
    return made[1]


HealthRedisDep = Annotated[redis.Redis, Depends(health_client)]


def camera_counts(request: Request, client: redis.Redis) -> CameraCountsOut:
    """Counts of the enabled cameras of the configuration by state (the reporting cameras without one), and of the
    recorded ones whose recording failed."""
    health = {h.get("camera_id"): h for h in read_health(client, None)}
    config = request.app.state.camera_config
    if config is not None:
        recorded = {c.id: c.recording.enabled for c in config.cameras if c.enabled}
    else:
        recorded = dict.fromkeys(sorted(health), True)  # the hash itself says when recording is disabled
    counts = {"online": 0, "offline": 0, "stale": 0, "unknown": 0}
    failed = 0
    for camera_id, enabled in recorded.items():
        record = health.get(camera_id)
        counts[camera_state(record)] += 1
        failed += recording_state(record, enabled) == "failed"
    return CameraCountsOut(total=len(recorded), recording_failed=failed, **counts)


@router.get("", summary="Service health", response_model=HealthOut,
            description="No sign-in needed. 200 `ok`; 200 `degraded` when a camera is not online or a recorded "
                        "camera's recording failed (a full disk: `cameras.recording_failed`) or a worker host's clock is off "
                        "the Redis server's (`clock_skewed_hosts`) (counts only, no host or "
                        "camera names: per-camera state is on the internal Prometheus endpoint as "
                        "`cctv_camera_up`, `cctv_camera_recording` and `cctv_camera_last_frame_age_seconds`); 503 "
                        "`down` when Redis is unreachable.",
            responses={503: {"model": HealthOut, "description": "Redis is unreachable."}})
def health(request: Request, client: HealthRedisDep) -> JSONResponse:
    try:
        client.ping()
        cameras = camera_counts(request, client)
        skewed = len(clock_problems(client))
        config = request.app.state.camera_config
        dead = dead_letter_total(client, list(config.notifications.webhooks) if config is not None else [])
    except redis.RedisError as exc:
        logger.warning("health: Redis unreachable: %s", exc)
        return JSONResponse(HealthOut(status="down", redis=False).model_dump(), status_code=503)
    healthy = cameras.online == cameras.total and not cameras.recording_failed and not skewed
    return JSONResponse(HealthOut(status="ok" if healthy else "degraded", redis=True, cameras=cameras,
                                  clock_skewed_hosts=skewed, webhook_dead_letters=dead).model_dump())
