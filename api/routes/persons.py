"""Enrolled persons (for face watchlists): enrol from photos, list, update, delete."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, ApiStoreDep, Investigator, RedisDep, SettingsDep
from api.ids import PersonId
from api.images import load_image
from api.schemas.faces import PersonName, PersonOut, PersonUpdate
from api.schemas.text import FreeText
from pipeline.store import WatchlistStore

router = APIRouter(prefix="/api/persons", tags=["persons"])


def _not_found(person_id: str) -> HTTPException:
    """The 404 of an unknown (or concurrently deleted) person."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"person {person_id!r} not found")


def _out(p: dict) -> PersonOut:
    return PersonOut(id=p["id"], name=p.get("name", ""), notes=p.get("notes", ""), photos=int(p.get("count", 0)),
                     created_at=float(p["created_at"]) if p.get("created_at") else None,
                     updated_at=float(p["updated_at"]) if p.get("updated_at") else None)


async def _embed_photos(request: Request, photos: list[UploadFile], settings) -> np.ndarray:
    if not photos:
        raise HTTPException(422, "photos: at least one photo is needed")
    if len(photos) > settings.max_photos:
        raise HTTPException(422, f"photos: at most {settings.max_photos} photos")
    service = request.app.state.faces
    embeddings = []
    for i, upload in enumerate(photos):
        field = f"photos[{i}] ({upload.filename or 'unnamed'})"
        image = await load_image(upload, field, settings.max_upload_bytes, settings.max_image_pixels)
        embeddings.append(await run_in_threadpool(service.one_face, image, field, True))
    return np.stack(embeddings)


@router.post("", response_model=PersonOut, status_code=201, summary="Enrol a person from one or more photos")
async def enrol_person(
    request: Request, admin: Admin, client: RedisDep, store: ApiStoreDep, settings: SettingsDep,
    name: Annotated[PersonName, Form()],
    photos: Annotated[list[UploadFile], File(description="Photos each showing exactly one face.")],
    notes: Annotated[FreeText, Form(max_length=2000)] = "",
) -> PersonOut:
    embeddings = await _embed_photos(request, photos, settings)
    person = WatchlistStore(client).create_person(name, embeddings, notes=notes, created_by=admin.username)
    store.audit(admin.username, "person_enrol", {"person_id": person["id"], "name": name, "photos": len(photos)})
    return _out(person)


@router.get("", response_model=list[PersonOut], summary="List enrolled persons")
def list_persons(_: Investigator, client: RedisDep) -> list[PersonOut]:
    return [_out(p) for p in WatchlistStore(client).list_persons()]


@router.get("/{person_id}", response_model=PersonOut, summary="One person")
def get_person(_: Investigator, person_id: PersonId, client: RedisDep) -> PersonOut:
    person = WatchlistStore(client).get_person(person_id)
    if person is None:
        raise _not_found(person_id)
    return _out(person)


@router.patch("/{person_id}", response_model=PersonOut, summary="Rename or annotate a person")
def update_person(body: PersonUpdate, admin: Admin, person_id: PersonId, client: RedisDep,
                  store: ApiStoreDep) -> PersonOut:
    person = WatchlistStore(client).update_person(person_id, name=body.name, notes=body.notes)
    if person is None:  # unknown, or deleted concurrently: the update is never written (no nameless ghost)
        raise _not_found(person_id)
    store.audit(admin.username, "person_update", {"person_id": person_id, **body.model_dump(exclude_none=True)})
    return _out(person)


@router.put("/{person_id}/photos", response_model=PersonOut, summary="Replace a person's enrolment photos")
async def replace_photos(request: Request, admin: Admin, person_id: PersonId, client: RedisDep, store: ApiStoreDep,
                         settings: SettingsDep, photos: Annotated[list[UploadFile], File()]) -> PersonOut:
    wl = WatchlistStore(client)
    if wl.get_person(person_id) is None:  # before the costly embedding
        raise _not_found(person_id)
    embeddings = await _embed_photos(request, photos, settings)
    person = await run_in_threadpool(wl.update_person, person_id, embeddings=embeddings)
    if person is None:  # deleted while the photos were embedded: their embeddings are not written back
        raise _not_found(person_id)
    store.audit(admin.username, "person_photos", {"person_id": person_id, "photos": len(photos)})
    return _out(person)


@router.delete("/{person_id}", status_code=204, summary="Delete a person (and their watchlist entries)")
def delete_person(admin: Admin, person_id: PersonId, client: RedisDep, store: ApiStoreDep) -> None:
    wl = WatchlistStore(client)
    person = wl.get_person(person_id)  # read first: the audit record keeps who was deleted
    if person is None or not wl.delete_person(person_id):
        raise _not_found(person_id)
    store.audit(admin.username, "person_delete", {"person_id": person_id, "name": person.get("name", "")})
