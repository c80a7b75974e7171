"""The web page's static files served from memory: read once when the app is built, answered without a worker
thread, so the page (index.html, its JS and CSS) loads at once even while every worker thread of AnyIO's default
limiter waits on Redis (a hung primary, many searches at once). Starlette's :class:`StaticFiles` looks each file up
and reads it in a worker thread, so it would queue behind them.

A file larger than :data:`MAX_CACHED_BYTES`, one added after the start and any path that names no cached file (404s,
redirects of a folder without its ``/``) are left to :class:`StaticFiles` as before."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
from email.utils import formatdate
from pathlib import Path

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

logger = logging.getLogger(__name__)

MAX_CACHED_BYTES = 4 * 1024 * 1024
"""Largest file kept in memory (the page's files are a few hundred KiB in all)."""


class CachedFile:
    """One static file's bytes and the headers :class:`~starlette.responses.FileResponse` would send."""

    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        mtime = path.stat().st_mtime
        media_type = mimetypes.guess_type(path.name)[0] or "text/plain"
        if media_type.startswith("text/") or media_type in ("application/javascript", "application/json"):
            media_type += "; charset=utf-8"
        self.headers = {"content-type": media_type, "content-length": str(len(self.body)),
                        "last-modified": formatdate(mtime, usegmt=True),
                        "etag": f'"{hashlib.sha256(self.body).hexdigest()[:32]}"'}  # fmt: skip


class MemoryStaticFiles(StaticFiles):
    """:class:`StaticFiles` (``html=True`` behaviour: a folder URL ending in ``/`` serves its ``index.html``) whose
    files present at start are answered from memory, without a worker thread."""

    def __init__(self, *, directory: str | os.PathLike[str], html: bool = False) -> None:
        super().__init__(directory=directory, html=html)
        if not Path(directory).is_dir():
            raise RuntimeError(f"static files folder {directory} is not a directory")
        self.files, self.indexes = load_files(Path(directory), html)
        self.config_checked = True  # checked now: StaticFiles would stat the folder in a worker thread at first use
        logger.debug("%d static files of %s served from memory", len(self.files), directory)

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The cached file of ``path`` (a folder's ``index.html`` for a folder URL ending in ``/``), else
        :meth:`StaticFiles.get_response`."""
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        key = path.replace(os.sep, "/")
        cached = self.files.get(key)
        if cached is None and scope["path"].endswith("/"):
            cached = self.indexes.get(key)  # without the "/": StaticFiles's redirect to it
        if cached is None:
            return await super().get_response(path, scope)
        headers = Headers(cached.headers)
        if self.is_not_modified(headers, Headers(scope=scope)):
            return NotModifiedResponse(headers)
        return Response(b"" if scope["method"] == "HEAD" else cached.body, headers=cached.headers)


def load_files(directory: Path, html: bool) -> tuple[dict[str, CachedFile], dict[str, CachedFile]]:
    """Every regular file under ``directory`` up to :data:`MAX_CACHED_BYTES`, by its path relative to it (``/``
    separated), and (with ``html``) the ``index.html`` of each folder holding one, by the folder's path (``.``: the
    top one). A file that cannot be read is left to :class:`StaticFiles`."""
    files: dict[str, CachedFile] = {}
    for path in sorted(directory.rglob("*")):
        try:
            if path.is_file() and path.stat().st_size <= MAX_CACHED_BYTES:
                files[path.relative_to(directory).as_posix()] = CachedFile(path)
        except OSError as exc:
            logger.warning("static file %s not cached (%s): served from disk", path, exc)
    indexes = {(key.rpartition("/")[0] or "."): item for key, item in files.items()
               if html and (key == "index.html" or key.endswith("/index.html"))}  # fmt: skip
    return files, indexes
