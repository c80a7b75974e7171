"""Search stored face events by photo."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated

import numpy as np
import redis
from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import ApiStoreDep, ReadingInvestigator, RedisDep, SettingsDep, User
from api.images import decode_image, read_upload
from api.routes.media import media_url
from api.routes.plates import REASON_DESCRIPTION, ReasonText
from api.schemas.faces import FaceHitOut, FaceSearchOut, SearchedFaceOut
from api.validation import TIME_HELP, Instant, check_cameras, check_window
from pipeline.events import FaceEvent
from pipeline.search.faces import FaceHit
from pipeline.store import codec, keys

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/faces", tags=["faces"])

MAX_FACE_INDEX = 63  # a crowd photo rarely has more usable faces; the field stays bounded
MAX_OFFSET = 5000  # each page re-ranks offset + limit candidates, so deep pages are refused
MAX_CAMERAS = 500  # as many as a plate search may name
AUDIT_HIT_IDS = 500  # hit event ids kept in the audit record: a whole page (``limit`` is at most 500)

Cameras = Annotated[list[str] | None, Form(max_length=MAX_CAMERAS, description=(
    "Only these cameras (repeat the field). An id that is neither configured nor holds stored plate reads or "
    "recordings (a camera removed from cameras.yaml stays searchable), or is not one of yours, is a 422 naming "
    "it."))]
Start = Annotated[Instant | None, Form(description=f"From this instant. {TIME_HELP}")]
End = Annotated[Instant | None, Form(description=f"Up to this instant (not before `start`). {TIME_HELP}")]


def _check_cameras(request: Request, client: redis.Redis, user: User, cameras: list[str] | None) -> None:
    """422 on ``cameras`` naming the ids the caller cannot search: unknown ones (neither configured nor with stored
    data) and, answered the same way, those outside the caller's cameras (the error never lists other cameras)."""
    config = request.app.state.camera_config
    configured = None if config is None else {c.id for c in config.cameras}
    check_cameras(cameras, configured, user.cameras, "cameras", "form", client)


async def _read_photo(upload: UploadFile, max_bytes: int, max_pixels: int) -> tuple[np.ndarray, str]:
    """The decoded photo (every upload check, decoding in the thread pool) and the SHA-256 (hex) of its bytes, which
    the audit record keeps to tell which photo was searched."""
    data = await read_upload(upload, "image", max_bytes)
    image = await run_in_threadpool(decode_image, data, "image", max_pixels)
    return image, hashlib.sha256(data).hexdigest()


def _hits_out(client: redis.Redis, hits: list[FaceHit]) -> list[FaceHitOut]:
    """The hits with the quality and media of their stored events (None where an event is gone or unreadable)."""
    pipe = client.pipeline(transaction=False)
    for hit in hits:
        pipe.xrange(keys.FACE_STREAM, hit.stream_id, hit.stream_id)
    out = []
    for hit, entries in zip(hits, pipe.execute(), strict=True):
        event = codec.decode_or_none(FaceEvent, entries[0][1], hit.stream_id) if entries else None
        out.append(FaceHitOut(event_id=hit.event_id, similarity=round(hit.similarity, 4), camera_id=hit.camera_id,
                              frame_time=hit.frame_time, quality=event.quality if event else None,
                              crop_url=media_url(event.crop_path) if event else None,
                              snapshot_url=media_url(event.snapshot_path) if event else None))
    return out


@router.post("/search", response_model=FaceSearchOut, summary="Find stored faces similar to a face in a photo",
             description="Searches with one usable face of the photo: the largest by default, or the one "
                         "`face_index` names (0 = largest; the response says which face was searched, with its box, "
                         "and how many the photo holds). Hits are ranked by similarity and paged with `offset` and "
                         "`limit`; `has_more` says whether more matching faces rank after the page. A search only "
                         "reads (a POST for the photo): a read-only API key (`scope: read`) may run it.",
             responses={422: {"description": "A field is invalid (a malformed time, `end` before `start`, or an "
                                             "unknown camera or one not yours: the same answer), the photo has no "
                                             "usable face, or `face_index` is past the photo's last usable face."}})
async def search_faces(
    request: Request, user: ReadingInvestigator, client: RedisDep, store: ApiStoreDep, settings: SettingsDep,
    image: Annotated[UploadFile, File(description="JPEG/PNG/WebP photo with a face.")],
    reason: Annotated[ReasonText, Form(description=REASON_DESCRIPTION)],
    threshold: Annotated[float | None, Form(ge=-1, le=1)] = None,
    cameras: Cameras = None, start: Start = None, end: End = None,
    limit: Annotated[int, Form(ge=1, le=500, description="Most hits in the page.")] = 50,
    offset: Annotated[int, Form(ge=0, le=MAX_OFFSET, description="Hits to skip (the rank of the page's first "
                                                                 "hit).")] = 0,
    face_index: Annotated[int, Form(ge=0, le=MAX_FACE_INDEX, description="Which usable face of the photo to search "
                                                                         "for, largest first (0 = largest).")] = 0,
) -> FaceSearchOut:
    check_window(start, end, "form")  # before the photo is read or a face is looked for
    _check_cameras(request, client, user, cameras)
    photo, digest = await _read_photo(image, settings.max_upload_bytes, settings.max_image_pixels)
    service = request.app.state.faces
    face, found = await run_in_threadpool(service.pick_face, photo, "image", face_index, "face_index")
    threshold = settings.face_threshold if threshold is None else threshold

    def run() -> tuple[list[FaceHit], bool]:
        service.index.refresh()
        return service.index.search_page(face.embedding, threshold=threshold, offset=offset, limit=limit,
                                         cameras=user.camera_filter(cameras), start=start, end=end)

    hits, has_more = await run_in_threadpool(run)
    out = _hits_out(client, hits)
    store.audit(user.username, "face_search", {"reason": reason, "threshold": threshold, "cameras": cameras,
                                               "start": start, "end": end, "image_bytes": image.size,
                                               "image_sha256": digest, "face_index": face_index,
                                               "faces_found": found, "offset": offset, "limit": limit,
                                               "hit_event_ids": [h.event_id for h in out[:AUDIT_HIT_IDS]]},
                len(out))
    logger.debug("face search: face %s of %s, %s hits from %s", face_index + 1, found, len(out), offset)
    return FaceSearchOut(threshold=threshold, total=len(out), offset=offset, limit=limit, has_more=has_more,
                         next_offset=offset + len(out) if has_more else None, faces_found=found,
                         face=SearchedFaceOut(index=face_index, box=[round(v, 1) for v in face.box],
                                              det_score=round(face.score, 4)),
                         hits=out)
