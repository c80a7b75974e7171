"""Authenticated, path-traversal-safe access to snapshots, crops and exports under the recordings dir."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from api.deps import CurrentUser, SettingsDep

router = APIRouter(prefix="/api/media", tags=["media"])


def media_url(relpath: str | None) -> str | None:
    """The API URL of a file relative to the recordings dir."""
    return f"/api/media/{quote(relpath)}" if relpath else None


def safe_path(root: Path, relpath: str) -> Path:
    """``root/relpath`` resolved, refusing anything that leaves ``root`` (404 rather than telling why)."""
    root = root.resolve()
    if "\x00" in relpath or relpath.startswith(("/", "\\")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "file not found")
    path = (root / relpath).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "file not found")
    return path


@router.get("/{relpath:path}", summary="A snapshot, crop or clip under the recordings dir")
def media(relpath: str, user: CurrentUser, settings: SettingsDep) -> FileResponse:
    path = safe_path(settings.recordings_dir, relpath)
    parts = Path(relpath).parts
    # snapshots/crops are laid out <kind>/<camera_id>/...: hide cameras the user may not see
    if len(parts) > 2 and parts[0] in ("snapshots", "crops", "faces", "plates") and not user.sees(parts[1]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "file not found")
    return FileResponse(path)
