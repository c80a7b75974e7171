"""Cameras from cameras.yaml with live health (from the ingest workers) and their latest snapshot."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse

from api.deps import Operator, RedisDep, SettingsDep, User
from api.routes.media import media_url, safe_path
from api.schemas.misc import CameraOut

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def read_health(client: redis.Redis, camera_id: str | None) -> list[dict[str, Any]]:
    """Camera health from ``pipeline.ingest.health`` (the ingest engineer's reader), or nothing if absent."""
    try:
        from pipeline.ingest.health import read_camera_health
    except ImportError:
        return []
    return read_camera_health(client, camera_id)


def _cameras(request: Request, user: User) -> list:
    config = request.app.state.camera_config
    return [c for c in (config.cameras if config else []) if user.sees(c.id)]


def _out(camera, health: dict | None) -> CameraOut:
    snap = (health or {}).get("snapshot_path")
    return CameraOut(id=camera.id, name=camera.name, enabled=camera.enabled,
                     analytics=camera.analytics.model_dump() if hasattr(camera, "analytics") else {},
                     health=health, snapshot_url=f"/api/cameras/{camera.id}/snapshot" if snap else None)


@router.get("", response_model=list[CameraOut], summary="Cameras you may see, with live health")
def list_cameras(request: Request, user: Operator, client: RedisDep) -> list[CameraOut]:
    health = {h.get("camera_id"): h for h in read_health(client, None)}
    return [_out(c, health.get(c.id)) for c in _cameras(request, user)]


@router.get("/{camera_id}", response_model=CameraOut, summary="One camera")
def get_camera(camera_id: str, request: Request, user: Operator, client: RedisDep) -> CameraOut:
    camera = next((c for c in _cameras(request, user) if c.id == camera_id), None)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} not found")
    health = read_health(client, camera_id)
    return _out(camera, health[0] if health else None)


@router.get("/{camera_id}/snapshot", summary="Latest snapshot of a camera")
def camera_snapshot(camera_id: str, request: Request, user: Operator, client: RedisDep,
                    settings: SettingsDep) -> FileResponse:
    if not any(c.id == camera_id for c in _cameras(request, user)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} not found")
    health = read_health(client, camera_id)
    snap = health[0].get("snapshot_path") if health else None
    if not snap:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} has no snapshot yet")
    return FileResponse(safe_path(settings.recordings_dir, snap), media_type="image/jpeg")


__all__ = ["media_url", "router"]
