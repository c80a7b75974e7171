"""Search stored face events by photo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from api.deps import ApiStoreDep, Investigator, RedisDep, SettingsDep
from api.images import load_image
from api.routes.media import media_url
from api.routes.plates import REASON_DESCRIPTION
from api.schemas.faces import FaceHitOut, FaceSearchOut
from api.validation import check_window
from pipeline.events import FaceEvent
from pipeline.store import codec, keys

router = APIRouter(prefix="/api/faces", tags=["faces"])


@router.post("/search", response_model=FaceSearchOut, summary="Find stored faces similar to the face in a photo")
async def search_faces(
    request: Request, user: Investigator, client: RedisDep, store: ApiStoreDep, settings: SettingsDep,
    image: Annotated[UploadFile, File(description="JPEG/PNG/WebP photo with a face.")],
    reason: Annotated[str, Form(min_length=3, max_length=500, description=REASON_DESCRIPTION)],
    threshold: Annotated[float | None, Form(ge=-1, le=1)] = None,
    cameras: Annotated[list[str] | None, Form()] = None,
    start: Annotated[float | None, Form(ge=0, description="From this UTC epoch second.")] = None,
    end: Annotated[float | None, Form(ge=0, description="Up to this UTC epoch second (not before `start`).")] = None,
    limit: Annotated[int, Form(ge=1, le=500)] = 50,
) -> FaceSearchOut:
    from starlette.concurrency import run_in_threadpool

    check_window(start, end, "form")  # before the photo is read or a face is looked for
    photo = await load_image(image, "image", settings.max_upload_bytes, settings.max_image_pixels)
    service = request.app.state.faces
    query = await run_in_threadpool(service.one_face, photo, "image", False)
    threshold = settings.face_threshold if threshold is None else threshold

    def run() -> list:
        service.index.refresh()
        return service.index.search(query, threshold=threshold, top_k=limit,
                                    cameras=user.camera_filter(cameras), start=start, end=end)

    hits = await run_in_threadpool(run)
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
    store.audit(user.username, "face_search", {"reason": reason, "threshold": threshold, "cameras": cameras,
                                               "start": start,
                                               "end": end, "image_bytes": image.size}, len(out))
    return FaceSearchOut(threshold=threshold, total=len(out), hits=out)
