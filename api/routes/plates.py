"""Plate search (exact, partial, wildcard, fuzzy) and a plate's history across cameras."""

from __future__ import annotations

from typing import Annotated, Literal

import redis
from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import StringConstraints

from api.deps import ApiStoreDep, Investigator, Operator, RedisDep, User
from api.routes.media import media_url
from api.schemas.plates import PlateHitOut, PlateSearchOut
from api.schemas.text import OneLine
from api.validation import TIME_HELP, Instant, check_cameras, check_window, field_error
from pipeline.plates.grams import MAX_QUERY_LEN, QueryError
from pipeline.plates.provinces import match_province
from pipeline.search.plates import (
    MAX_FUZZY_DISTANCE,
    Cursor,
    PlateFilters,
    PlateSearcher,
    PlateSearchResult,
    cursor_of,
    parse_cursor,
    split_province,
)

router = APIRouter(prefix="/api/plates", tags=["plates"])
MAX_QUERY_WITH_PROVINCE = MAX_QUERY_LEN + 48
"""Longest ``q``: a plate query and a province name after it (the longest, กรุงเทพมหานคร, has 13 characters)."""

Cameras = Annotated[list[str] | None, Query(max_length=500, description=(
    "Only these cameras (repeat the field). An id that is neither configured nor holds stored plate reads or "
    "recordings (a camera removed from cameras.yaml stays searchable), or is not one of yours, is a 422 naming it."))]
Start = Annotated[Instant | None, Query(description=f"From this instant. {TIME_HELP}")]
End = Annotated[Instant | None, Query(description=f"Up to this instant (not before `start`). {TIME_HELP}")]
REASON_DESCRIPTION = ("Why you search: a reason or case number (required; recorded in the audit trail and shown in "
                      "the audit view -- plate histories and face searches are personal data under the PDPA).")
REASON_MIN, REASON_MAX = 3, 500
ReasonText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=REASON_MIN, max_length=REASON_MAX)]
"""A mandatory reason: surrounding whitespace stripped, then at least :data:`REASON_MIN` characters (spaces alone
are no reason)."""
Reason = Annotated[ReasonText, Query(description=REASON_DESCRIPTION)]


def _check_cameras(request: Request, client: redis.Redis, user: User, cameras: list[str] | None) -> None:
    """422 on ``cameras`` naming the ids the caller cannot search: unknown ones (neither configured nor with stored
    data) and, answered the same way, those outside the caller's cameras."""
    config = request.app.state.camera_config
    configured = None if config is None else {c.id for c in config.cameras}
    check_cameras(cameras, configured, user.cameras, "cameras", client=client)


def _filters(user: User, cameras: list[str] | None, start: float | None, end: float | None,
             province: str | None = None, min_confidence: float | None = None,
             vehicle_class: str | None = None) -> PlateFilters:
    """The search filters of the request (422 on an inverted window or an unknown province)."""
    check_window(start, end)
    thai = None
    if province:
        found = match_province(province, max_ratio=0.2)
        if found is None:
            raise field_error("province", f"unknown province {province!r}")
        thai = found.thai
    return PlateFilters(cameras=user.camera_filter(cameras), start=start, end=end, province=thai,
                        min_confidence=min_confidence, vehicle_class=vehicle_class,
                        scope=None if user.cameras is None else set(user.cameras))


def _hits(searcher: PlateSearcher, result: PlateSearchResult) -> list[PlateHitOut]:
    out = []
    for hit, event in zip(result.hits, searcher.events(result.hits), strict=True):
        out.append(PlateHitOut(
            event_id=event.event_id if event else None, stream_id=hit.stream_id, plate=hit.plate,
            distance=hit.distance, frame_time=hit.frame_time, camera_id=hit.camera_id,
            confidence=hit.confidence, vehicle_class=hit.vehicle_class, province=hit.province or None,
            province_latin=event.province_latin if event else None,
            started_at=event.started_at if event else None, ended_at=event.ended_at if event else None,
            snapshot_url=media_url(event.snapshot_path) if event else None,
            crop_url=media_url(event.crop_path) if event else None,
        ))
    return out


@router.get("/search", response_model=PlateSearchOut, summary="Search plate reads")
def search_plates(
    request: Request, user: Operator, client: RedisDep, store: ApiStoreDep,
    q: Annotated[OneLine, Query(min_length=1, max_length=MAX_QUERY_WITH_PROVINCE, description=(
        f"Plate, part of it, or a pattern with ? (one char) and * (any run); at most {MAX_QUERY_LEN} characters, "
        "optionally followed by a province name (`1กข 1234 กรุงเทพมหานคร`, `1กข1234 Tak`), which then filters "
        "like `province`. No control or bidirectional-override characters."))],
    mode: Annotated[Literal["auto", "exact", "partial", "fuzzy"], Query()] = "auto",
    max_distance: Annotated[float, Query(ge=0, le=MAX_FUZZY_DISTANCE, description="Fuzzy: largest distance.")] = 1.0,
    cameras: Cameras = None, start: Start = None, end: End = None,
    province: Annotated[str | None, Query(max_length=64, description="Thai or Latin name.")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    vehicle_class: Annotated[Literal["car", "motorcycle", "bus", "truck", "vehicle"] | None, Query(
        description="Class of the vehicle the plate was read on; vehicle: a plate seen without a vehicle box "
                    "(close-up gate views).")] = None,
    order: Annotated[Literal["time", "distance"], Query()] = "time",
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description=(
        "The `next_cursor` of the previous page (order=time): this page holds the hits older than that page's "
        "last one, so new reads arriving between pages never repeat or skip a row. total and plates_matched then "
        "count from the cursor on."))] = None,
) -> PlateSearchOut:
    plate, province = _plate_and_province(q, province)
    filters = _filters(user, cameras, start, end, province, min_confidence, vehicle_class)
    _check_cameras(request, client, user, cameras)
    before = _cursor(cursor, order)
    searcher = PlateSearcher(client)
    try:
        result = searcher.search(plate, mode=mode, filters=filters, offset=offset, limit=limit,
                                 max_distance=max_distance, order=order, before=before)
    except QueryError as exc:
        raise field_error("q", str(exc)) from exc
    store.audit(user.username, "plate_search", {"q": q, "mode": mode, "cameras": cameras, "start": start,
                                                "end": end, "province": province}, result.total)
    next_cursor = cursor_of(result.hits[-1]) if order == "time" and result.has_more and result.hits else None
    suggestion = None
    if not result.hits and offset == 0 and before is None:  # nothing found: was it typed on the English layout?
        suggestion = searcher.layout_suggestion(plate, mode=mode, filters=filters, max_distance=max_distance)
    return PlateSearchOut(query=q, mode=mode, total=result.total, plates_matched=result.plates_matched,
                          complete=result.complete, has_more=result.has_more, offset=offset, limit=limit,
                          truncated=result.truncated, notes=result.notes, hits=_hits(searcher, result),
                          next_cursor=next_cursor, did_you_mean=suggestion)


def _plate_and_province(q: str, province: str | None) -> tuple[str, str | None]:
    """The plate part of ``q`` and the province to filter by: one named at the end of ``q`` (422 when it differs
    from ``province``), else ``province``; 422 when the plate part is longer than :data:`MAX_QUERY_LEN`."""
    plate, named = split_province(q)
    if named is not None and province:
        given = match_province(province, max_ratio=0.2)
        if given is not None and given.thai != named:
            raise field_error("province", f"{province!r} differs from the province {named!r} named in q")
    if len(plate) > MAX_QUERY_LEN:
        raise field_error("q", f"the plate is longer than {MAX_QUERY_LEN} characters")
    return plate, named if named is not None else province


def _cursor(cursor: str | None, order: str) -> Cursor | None:
    """The parsed ``cursor`` parameter (422 when it is not a next_cursor, or is given with order=distance)."""
    if cursor is None:
        return None
    if order != "time":
        raise field_error("cursor", "pages only order=time (newest first)")
    try:
        return parse_cursor(cursor)
    except QueryError as exc:
        raise field_error("cursor", str(exc)) from exc


@router.get("/{plate}/history", response_model=PlateSearchOut, summary="Every sighting of a plate, oldest first")
def plate_history(
    plate: str, request: Request, user: Investigator, client: RedisDep, store: ApiStoreDep, reason: Reason,
    cameras: Cameras = None, start: Start = None, end: End = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> PlateSearchOut:
    filters = _filters(user, cameras, start, end)
    _check_cameras(request, client, user, cameras)
    if not 1 <= len(plate) <= MAX_QUERY_LEN:
        raise field_error("plate", f"1 to {MAX_QUERY_LEN} characters", "path")
    searcher = PlateSearcher(client)
    result = searcher.history(plate, filters, offset=offset, limit=limit)
    store.audit(user.username, "plate_history", {"plate": plate, "reason": reason, "cameras": cameras,
                                                 "start": start, "end": end}, result.total)
    if result.plates_matched == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"plate {plate!r} has never been read")
    return PlateSearchOut(query=plate, mode="exact", total=result.total, plates_matched=result.plates_matched,
                          complete=result.complete, has_more=result.has_more, offset=offset, limit=limit,
                          truncated=False, notes=result.notes, hits=_hits(searcher, result))
