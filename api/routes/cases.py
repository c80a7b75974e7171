"""Cases: several clips and related plate/face events packaged into one zip with a manifest of hashes."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import redis
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.deps import ApiStoreDep, Investigator, RedisDep, SettingsDep, User
from api.routes.exports import get_job
from api.schemas.misc import CaseCreate, CaseItemCreate, CaseOut
from pipeline.events import FaceEvent, PlateEvent
from pipeline.store import codec, keys

router = APIRouter(prefix="/api/cases", tags=["cases"])


def _case(client: redis.Redis, case_id: str, user: User) -> dict:
    raw = client.hgetall(f"case:{case_id}")
    case = {k.decode(): v.decode() for k, v in raw.items()}
    if not case or (case["created_by"] != user.username and not user.may("admin")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"case {case_id!r} not found")
    items = client.hgetall(f"case:{case_id}:items")
    case["items"] = sorted((json.loads(v) for v in items.values()), key=lambda i: i["added_at"])
    return case


def _out(case: dict) -> CaseOut:
    return CaseOut(id=case["id"], name=case["name"], description=case["description"],
                   created_by=case["created_by"], created_at=float(case["created_at"]), items=case["items"])


def _event(client: redis.Redis, kind: str, event_id: str) -> PlateEvent | FaceEvent | None:
    index, stream, model = ((keys.PLATE_EVENTS, keys.PLATE_STREAM, PlateEvent) if kind == "plate"
                            else (keys.FACE_EVENTS, keys.FACE_STREAM, FaceEvent))
    raw = client.hget(index, event_id)
    if raw is None:
        return None
    parts = raw.decode().split("\t")
    sid = parts[-1].split("|")[0]
    entries = client.xrange(stream, sid, sid)
    return codec.decode(model, entries[0][1]) if entries else None


@router.post("", response_model=CaseOut, status_code=201, summary="Open a case")
def create_case(body: CaseCreate, user: Investigator, client: RedisDep, store: ApiStoreDep) -> CaseOut:
    case_id = uuid.uuid4().hex[:16]
    client.hset(f"case:{case_id}", mapping={"id": case_id, "name": body.name, "description": body.description,
                                            "created_by": user.username, "created_at": repr(time.time())})
    client.zadd("cases", {case_id: time.time()})
    store.audit(user.username, "case_create", {"case_id": case_id, "name": body.name})
    return _out(_case(client, case_id, user))


@router.get("", response_model=list[CaseOut], summary="Your cases, newest first")
def list_cases(user: Investigator, client: RedisDep) -> list[CaseOut]:
    out = []
    for cid in client.zrevrange("cases", 0, 499):
        try:
            out.append(_out(_case(client, cid.decode(), user)))
        except HTTPException:
            continue
    return out


@router.get("/{case_id}", response_model=CaseOut, summary="One case")
def get_case(case_id: str, user: Investigator, client: RedisDep) -> CaseOut:
    return _out(_case(client, case_id, user))


@router.post("/{case_id}/items", response_model=CaseOut, status_code=201, summary="Add a clip or an event")
def add_item(case_id: str, body: CaseItemCreate, user: Investigator, client: RedisDep,
             store: ApiStoreDep) -> CaseOut:
    _case(client, case_id, user)
    if body.kind == "clip":
        get_job(client, body.ref, user)
    else:
        event = _event(client, body.kind, body.ref)
        if event is None or not user.sees(event.camera_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{body.kind} event {body.ref!r} not found")
    item = {"kind": body.kind, "ref": body.ref, "added_by": user.username, "added_at": time.time()}
    client.hset(f"case:{case_id}:items", f"{body.kind}:{body.ref}", json.dumps(item))
    store.audit(user.username, "case_add", {"case_id": case_id, **body.model_dump()})
    return _out(_case(client, case_id, user))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@router.get("/{case_id}/package", summary="Download the case as a zip with a SHA-256 manifest")
def package_case(case_id: str, user: Investigator, client: RedisDep, store: ApiStoreDep,
                 settings: SettingsDep) -> FileResponse:
    case = _case(client, case_id, user)
    files: list[tuple[str, Path | bytes]] = []
    for item in case["items"]:
        if item["kind"] == "clip":
            job = get_job(client, item["ref"], user)
            for field in ("path", "manifest_path"):
                if job.get(field) and Path(job[field]).is_file():
                    files.append((f"clips/{item['ref']}/{Path(job[field]).name}", Path(job[field])))
            continue
        event = _event(client, item["kind"], item["ref"])
        if event is None:
            continue
        data = event.model_dump(mode="json", exclude={"embedding"})
        files.append((f"events/{item['kind']}-{item['ref']}.json", json.dumps(data, ensure_ascii=False).encode()))
        for rel in (event.snapshot_path, event.crop_path):
            path = (settings.recordings_dir / rel).resolve() if rel else None
            if path and path.is_relative_to(settings.recordings_dir.resolve()) and path.is_file():
                files.append((f"media/{rel}", path))
    tmp = tempfile.NamedTemporaryFile(suffix=".zip", delete=False)
    manifest = {"case": {k: case[k] for k in ("id", "name", "description", "created_by", "created_at")},
                "packaged_by": user.username, "packaged_at": time.time(), "files": []}
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, src in files:
            if isinstance(src, Path):
                zf.write(src, name)
                digest = _sha256(src)
            else:
                zf.writestr(name, src)
                digest = hashlib.sha256(src).hexdigest()
            manifest["files"].append({"path": name, "sha256": digest})
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    tmp.close()
    store.audit(user.username, "case_package", {"case_id": case_id}, len(files))
    return FileResponse(tmp.name, media_type="application/zip", filename=f"case-{case_id}.zip",
                        background=BackgroundTask(Path(tmp.name).unlink, missing_ok=True))
