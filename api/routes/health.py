"""Liveness and Redis reachability (the only route without authentication)."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import RedisDep

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("", summary="Service health")
def health(client: RedisDep) -> JSONResponse:
    try:
        client.ping()
    except redis.RedisError:
        return JSONResponse({"status": "degraded", "redis": False}, status_code=503)
    return JSONResponse({"status": "ok", "redis": True})
