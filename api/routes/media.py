"""Event snapshots and crops under the recordings dir, resolved first and authorised on the resolved path.

Only the event-image folders (:data:`MEDIA_KINDS`, laid out ``<kind>/<camera_id>/...``) are served here, and only
for cameras the caller may see. Recording segments (``<camera_id>/<date>/...``), export clips and case packages
(``exports/...``) and anything else under the recordings dir are reachable only through their own routes (exports,
cases), with their role, camera and owner checks. Every download is audited.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from api.deps import ApiStoreDep, CurrentUser, SettingsDep

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/media", tags=["media"])

MEDIA_KINDS = frozenset({"snapshots", "crops", "faces", "plates"})
_NOT_FOUND = "file not found"


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


@router.get("/{relpath:path}", summary="An event snapshot or crop (snapshots/, crops/, faces/, plates/)",
            response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}, "description": "The image."},
                       401: {"description": "Not authenticated."},
                       404: {"description": "No such file, or not one you may see (another camera's, a recording "
                                            "segment, an export, or a path that leaves the media folders)."}},
            description="The path is resolved first (symlinks followed, `..`, backslashes, absolute paths and NUL "
                        "refused) and then authorised: it must lie in an event-image folder of a camera you may "
                        "see. Recordings and exports are served only by their own routes.")
def media(relpath: str, user: CurrentUser, settings: SettingsDep, store: ApiStoreDep) -> FileResponse:
    root = settings.recordings_dir
    path = safe_path(root, relpath)
    camera_id = media_camera(root, path)
    resolved = path.relative_to(root.resolve()).as_posix()
    if camera_id is None or not user.sees(camera_id):
        store.audit(user.username, "media_refused", {"path": relpath, "resolved": resolved}, status=404)
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    store.audit(user.username, "media", {"path": relpath, "resolved": resolved, "camera_id": camera_id}, 1,
                status=200)
    return FileResponse(path)
