"""Cameras from cameras.yaml with live health (from the ingest workers) and their latest snapshot."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse

from api.deps import Operator, RedisDep, SettingsDep, User
from api.routes.media import media_camera, media_url, safe_path
from api.schemas.events import CameraEventsOut, CameraFaceEventOut, CameraPlateEventOut
from api.schemas.misc import CameraOut
from api.streamscan import scan_stream
from pipeline.events import FaceEvent, PlateEvent
from pipeline.store import codec, keys

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def read_health(client: redis.Redis, camera_id: str | None) -> list[dict[str, Any]]:
    """Camera health from ``pipeline.ingest.health`` (the ingest engineer's reader), or nothing if absent."""
    try:
        from pipeline.ingest.health import read_camera_health
    except ImportError:
        return []
    return read_camera_health(client, camera_id)


def check_camera_ids(request: Request, camera_ids: list[str] | None, field: str) -> None:
    """422 naming ``field`` if a camera id is not in cameras.yaml (skipped when the config is not loaded)."""
    config = request.app.state.camera_config
    if camera_ids is None or config is None:
        return
    known = {c.id for c in config.cameras}
    for i, camera_id in enumerate(camera_ids):
        if camera_id not in known:
            raise HTTPException(422, f"{field}[{i}]: unknown camera {camera_id!r} (known: {', '.join(sorted(known))})")


def _cameras(request: Request, user: User) -> list:
    config = request.app.state.camera_config
    return [c for c in (config.cameras if config else []) if user.sees(c.id)]


def _out(camera, health: dict | None) -> CameraOut:
    snap = (health or {}).get("snapshot_path")
    return CameraOut(id=camera.id, name=camera.name, enabled=camera.enabled,
                     analytics=camera.analytics.model_dump() if hasattr(camera, "analytics") else {},
                     health=health, snapshot_url=f"/api/cameras/{camera.id}/snapshot" if snap else None,
                     worker=(health or {}).get("worker") or None, host=(health or {}).get("host") or None)


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
    path = safe_path(settings.recordings_dir, snap)
    if media_camera(settings.recordings_dir, path) != camera_id:  # a stored path must not lead to another camera
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} has no snapshot yet")
    return FileResponse(path, media_type="image/jpeg")


STREAM_ID = r"^\d{1,19}-\d{1,19}$"  # 19 digits stay below 2**64 (Redis refuses larger ids)


def _plate_out(sid: str, fields: dict) -> CameraPlateEventOut:
    e = codec.decode(PlateEvent, fields)
    return CameraPlateEventOut(
        event_id=e.event_id, stream_id=sid, version=e.version, camera_id=e.camera_id, track_id=e.track_id,
        started_at=e.started_at, ended_at=e.ended_at, frame_time=e.frame_time, crop_url=media_url(e.crop_path),
        snapshot_url=media_url(e.snapshot_path), plate_text=e.plate_text, province=e.province,
        province_latin=e.province_latin, confidence=e.confidence, vehicle_class=e.vehicle_class,
        agreeing_frames=e.agreeing_frames, total_frames=e.total_frames)


def _face_out(sid: str, fields: dict) -> CameraFaceEventOut:
    # the embedding (kilobytes, never shown) is not decoded
    e = codec.decode(FaceEvent, {**fields, codec.EMBEDDING_FIELD.encode(): b""})
    return CameraFaceEventOut(
        event_id=e.event_id, stream_id=sid, version=e.version, camera_id=e.camera_id, track_id=e.track_id,
        started_at=e.started_at, ended_at=e.ended_at, frame_time=e.frame_time, crop_url=media_url(e.crop_path),
        snapshot_url=media_url(e.snapshot_path), quality=e.quality, det_score=e.det_score)


class _CameraMatch:
    """Predicate on raw event-stream fields: the event is of ``camera_id``. ``visible`` counts the events read on
    cameras the user sees (every event read, without a camera limit): all that the user is told of the scan."""

    def __init__(self, user: User, camera_id: str) -> None:
        self.user = user
        self.wanted = camera_id.encode()
        self.visible = 0

    def __call__(self, fields: dict) -> bool:
        camera = fields.get(b"camera_id", b"")
        if self.user.cameras is not None and not self.user.sees(camera.decode(errors="replace")):
            return False
        self.visible += 1
        return camera == self.wanted


@router.get("/{camera_id}/events", response_model=CameraEventsOut,
            summary="Recent plate or face events of one camera, newest first",
            description="A bounded newest-first scan of the event stream filtered to this camera (the streams have "
                        "no per-camera index): at most `scan_cap` stored events (setting CCTV_CAMERA_EVENTS_SCAN) "
                        "are read per request; page back with `before=next_before`. Plate events need the "
                        "operator role, face events the investigator role.")
def camera_events(
    camera_id: str, request: Request, user: Operator, client: RedisDep, settings: SettingsDep,
    kind: Annotated[Literal["plate", "face"], Query(description="plate or face events.")] = "plate",
    limit: Annotated[int, Query(ge=1, le=200, description="Most events returned.")] = 20,
    before: Annotated[str | None, Query(pattern=STREAM_ID, description="Only events stored before this stream id "
                                        "(the `next_before` of the previous page).")] = None,
) -> CameraEventsOut:
    if kind == "face" and not user.may("investigator"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"face events need the 'investigator' role; you are "
                            f"'{user.role}'")
    if not any(c.id == camera_id for c in _cameras(request, user)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} not found")
    stream = keys.PLATE_STREAM if kind == "plate" else keys.FACE_STREAM
    match = _CameraMatch(user, camera_id)
    scan = scan_stream(client, stream, match, limit, settings.camera_events_scan, start=before)
    to_out = _plate_out if kind == "plate" else _face_out
    items = []
    for sid, fields in scan.entries:
        try:
            items.append(to_out(sid, fields))
        except ValueError as exc:  # a record this version cannot read must not hide the others
            logger.warning("skipping unreadable %s event %s: %s", kind, sid, exc)
    return CameraEventsOut(camera_id=camera_id, kind=kind, items=items, next_before=scan.next_id,
                           scanned=match.visible,
                           scan_cap=settings.camera_events_scan, capped=scan.capped)


__all__ = ["check_camera_ids", "media_url", "router"]
