"""Service health: Redis reachability and camera counts (the only route without authentication).

The answer is for load balancers and monitoring, so it names no camera (ids and names stay behind sign-in, and on
the internal Prometheus endpoint). HTTP status:

- **200** ``ok``: Redis answers and every enabled camera is online.
- **200** ``degraded``: Redis answers but a camera is not online (:func:`pipeline.ingest.health.camera_state`: a
  camera reconnecting for less than ``RECONNECT_GRACE_S`` still counts as online) (``cameras`` says how many are offline, stale or
  unknown). Deliberately not 503: the API itself serves, and a load balancer must not take it out of rotation
  because a camera on a pole went dark.
- **503** ``down``: Redis is unreachable (nothing works without it).
"""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import RedisDep
from api.routes.cameras import read_health
from api.schemas.misc import CameraCountsOut, HealthOut
from pipeline.ingest.health import camera_state

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/health", tags=["health"])


def camera_counts(request: Request, client: redis.Redis) -> CameraCountsOut:
    """Counts of the enabled cameras of the configuration by state (the reporting cameras without one)."""
    health = {h.get("camera_id"): h for h in read_health(client, None)}
    config = request.app.state.camera_config
    ids = [c.id for c in config.cameras if c.enabled] if config is not None else sorted(health)
    counts = {"online": 0, "offline": 0, "stale": 0, "unknown": 0}
    for camera_id in ids:
        counts[camera_state(health.get(camera_id))] += 1
    return CameraCountsOut(total=len(ids), **counts)


@router.get("", summary="Service health", response_model=HealthOut,
            description="No sign-in needed. 200 `ok`; 200 `degraded` when a camera is not online (counts only, no "
                        "camera names: per-camera state is on the internal Prometheus endpoint as "
                        "`cctv_camera_up` and `cctv_camera_last_frame_age_seconds`); 503 `down` when Redis is "
                        "unreachable.",
            responses={503: {"model": HealthOut, "description": "Redis is unreachable."}})
def health(request: Request, client: RedisDep) -> JSONResponse:
    try:
        client.ping()
        cameras = camera_counts(request, client)
    except redis.RedisError as exc:
        logger.warning("health: Redis unreachable: %s", exc)
        return JSONResponse(HealthOut(status="down", redis=False).model_dump(), status_code=503)
    status = "ok" if cameras.online == cameras.total else "degraded"
    return JSONResponse(HealthOut(status=status, redis=True, cameras=cameras).model_dump())
