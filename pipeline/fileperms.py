"""The file-creation mask of the service: what it writes (recordings: video segments, snapshots, face and plate
crops; ``var/spool``, ``var/log``, ``var/cache``; exports and their manifests) is private to its user and group.

:data:`SERVICE_UMASK` (``0o027``) makes new folders ``0o750`` and new files ``0o640`` whatever umask the shell or
init system started the process with (the usual ``022`` would leave faces and plates readable by every local
account). Folders and files made by an earlier run keep their modes (README: Security says how to fix them)."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

SERVICE_UMASK = 0o027
"""No write for the group, nothing for others."""


def apply_service_umask() -> int:
    """Set the process umask to :data:`SERVICE_UMASK`, only ever narrowing it (bits a stricter umask takes away stay
    taken away); returns the umask in force before. Call it first thing in an entry point, before any thread or
    child process starts: children (ffmpeg, the API child) inherit it."""
    previous = os.umask(SERVICE_UMASK)
    os.umask(previous | SERVICE_UMASK)
    if previous | SERVICE_UMASK != previous:
        logger.debug("umask %04o narrowed to %04o", previous, previous | SERVICE_UMASK)
    return previous

EXPORT_MANIFEST_MODE = 0o640
"""Mode of an export's (or a case clip's) manifest, set explicitly whatever the umask: it names a camera and a time
window, so it is as private as the clip (:mod:`pipeline.recording.export` writes it, ``restore`` puts it back with
it)."""
