"""Event snapshots and crops under the recordings dir, resolved first and authorised on the resolved path.

Only the event-image folders (:data:`MEDIA_KINDS`, laid out ``<kind>/<camera_id>/...``) are served here, and only
for cameras the caller may see. Recording segments (``<camera_id>/<date>/...``), export clips and case packages
(``exports/...``) and anything else under the recordings dir are reachable only through their own routes (exports,
cases), with their role, camera and owner checks. Every download is audited.

Face images (a face event's crop or frame, see :func:`is_face_image`) follow the rule of the routes that list face
events: they need :data:`FACE_ROLE`. A caller below it (an operator, who sees face *alerts* but not face events) gets
only the crop of a face alert still in the alert stream on a camera they see, found through the alert publisher's
index ``alerts:face_media`` (:data:`pipeline.store.keys.FACE_ALERT_MEDIA`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import redis
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from api.deps import ApiStoreDep, CurrentUser, RedisDep, SettingsDep, User
from pipeline.store import keys

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/media", tags=["media"])

MEDIA_KINDS = frozenset({"snapshots", "crops", "faces", "plates"})
FACE_ROLE = "investigator"
"""The role that may list face events (camera events of kind face, face search, the recordings timeline): face images
are served to it and above; below it only the crops of face alerts (:func:`alert_crop_visible`)."""
_NOT_FOUND = "file not found"
_EVENT_IMAGE = re.compile(r"^(?P<event_id>.+)_(?P<kind>frame|plate|face)\.jpg$")
_STREAM_ID = re.compile(r"^\d{1,19}-\d{1,19}$")


def media_url(relpath: str | None) -> str | None:
    """The API URL of a file relative to the recordings dir."""
    return f"/api/media/{quote(relpath)}" if relpath else None


def safe_path(root: Path, relpath: str) -> Path:
    """``root/relpath`` resolved (symlinks followed), refusing anything that leaves ``root`` or is not a plain
    relative path: NUL, backslashes, absolute paths and ``.``/``..`` segments (404 rather than telling why)."""
    root = root.resolve()
    if (not relpath or "\x00" in relpath or "\\" in relpath or relpath.startswith("/")
            or any(part in ("", ".", "..") for part in relpath.split("/"))):
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    path = Path(os.path.realpath(root / relpath))
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return path


def media_camera(root: Path, path: Path) -> str | None:
    """The camera of a resolved event image (``<kind>/<camera_id>/...`` under ``root``), else None."""
    parts = PurePosixPath(path.relative_to(root.resolve()).as_posix()).parts
    if len(parts) < 3 or parts[0] not in MEDIA_KINDS:
        return None
    return parts[1]


def _text(value: bytes | str | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def is_face_image(client: redis.Redis, path: Path, resolved: str) -> bool:
    """Whether an event image (``path``, resolved; ``resolved``: relative to the recordings dir) may show a face
    event: the legacy ``faces/`` folder, and under ``snapshots/<camera>/<date>/`` everything but a plate crop
    (``*_plate.jpg``) and a plate event's frame (``<event_id>_frame.jpg`` of an event in ``plates:ev`` or beside
    its ``<event_id>_plate.jpg``). A frame of an unknown event counts as a face image: the check fails closed. A
    camera's live snapshot (``snapshots/<camera>/<file>``) and the ``crops/`` and ``plates/`` folders are not."""
    parts = PurePosixPath(resolved).parts
    if parts[0] == "faces":
        return True
    if parts[0] != "snapshots" or len(parts) == 3:
        return False
    found = _EVENT_IMAGE.match(parts[-1]) if len(parts) == 4 else None
    if found is None or found["kind"] == "face":
        return True
    if found["kind"] == "plate":
        return False
    event_id = found["event_id"]
    return not (path.with_name(f"{event_id}_plate.jpg").is_file() or client.hexists(keys.PLATE_EVENTS, event_id))


def alert_crop_visible(client: redis.Redis, user: User, resolved: str) -> bool:
    """Whether ``resolved`` is the crop of a face alert still in the alert stream, on a camera ``user`` sees (the
    alert publisher indexes face-alert crops in ``alerts:face_media``; the alert record itself is checked)."""
    sid = _text(client.hget(keys.FACE_ALERT_MEDIA, resolved))
    if not sid or not _STREAM_ID.match(sid):
        return False
    entries = client.xrange(keys.ALERT_STREAM, sid, sid)
    if not entries:
        return False  # trimmed, not yet pruned from the index
    try:
        alert = json.loads(entries[0][1].get(b"alert", b""))
    except ValueError:
        logger.warning("alert %s in the alert stream is not JSON: its crop is not served", sid)
        return False
    return (isinstance(alert, dict) and alert.get("kind") == "face" and alert.get("crop_path") == resolved
            and user.sees(str(alert.get("camera_id", ""))))


def may_fetch(client: redis.Redis, user: User, camera_id: str | None, path: Path, resolved: str) -> bool:
    """Whether ``user`` may fetch the event image ``path`` (``resolved`` relative to the recordings dir) of
    ``camera_id`` (None: not an event image)."""
    if camera_id is None or not user.sees(camera_id):
        return False
    if user.may(FACE_ROLE) or not is_face_image(client, path, resolved):
        return True
    return alert_crop_visible(client, user, resolved)


@router.get("/{relpath:path}", summary="An event snapshot or crop (snapshots/, crops/, faces/, plates/)",
            response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}, "description": "The image."},
                       401: {"description": "Not authenticated."},
                       404: {"description": "No such file, or not one you may see (another camera's, a face image "
                                            "without the investigator role that is no face alert's crop, a "
                                            "recording segment, an export, or a path that leaves the media "
                                            "folders)."}},
            description="The path is resolved first (symlinks followed, `..`, backslashes, absolute paths and NUL "
                        "refused) and then authorised: it must lie in an event-image folder of a camera you may "
                        "see, and a face event's crop or frame needs the investigator role (as face events do), "
                        "except the crop of a face alert you may see. Recordings and exports are served only by "
                        "their own routes.")
def media(relpath: str, user: CurrentUser, settings: SettingsDep, store: ApiStoreDep,
          client: RedisDep) -> FileResponse:
    """Serve an event image the caller may see (404 for anything else, the same answer as a missing file)."""
    root = settings.recordings_dir
    path = safe_path(root, relpath)
    camera_id = media_camera(root, path)
    resolved = path.relative_to(root.resolve()).as_posix()
    if not may_fetch(client, user, camera_id, path, resolved):
        store.audit(user.username, "media_refused", {"path": relpath, "resolved": resolved}, status=404)
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    store.audit(user.username, "media", {"path": relpath, "resolved": resolved, "camera_id": camera_id}, 1,
                status=200)
    return FileResponse(path)
