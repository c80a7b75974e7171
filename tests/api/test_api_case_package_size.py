"""Case packages are bounded: a case whose files hold more than ``case_package_max_bytes`` is refused (413) with a
message naming the case, its size and the limit, and no partial zip is left behind. Real Redis, real files."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.settings import ApiSettings

CAM = "bkk-night-01"
LIMIT = 2**20


@pytest.fixture()
def api_settings(api_settings: ApiSettings) -> ApiSettings:
    """The API's settings with a 1 MiB case package limit."""
    return api_settings.model_copy(update={"case_package_max_bytes": LIMIT})


@pytest.fixture()
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder packages are staged in, private to the test."""
    folder = tmp_path / "staging"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _case_with_clip(client: TestClient, rclient: redis.Redis, settings: ApiSettings, headers: dict,
                    size: int) -> str:
    """A case holding one finished export whose clip has ``size`` bytes; its id."""
    export_dir = settings.exports_root() / "bigjob"
    export_dir.mkdir(parents=True)
    clip = export_dir / "clip.mp4"
    clip.write_bytes(os.urandom(size))
    (export_dir / "clip.json").write_text("{}")
    rclient.hset("export:bigjob", mapping={"id": "bigjob", "status": "done", "progress": "1", "camera_id": CAM,
                                           "start": repr(1000.0), "end": repr(1030.0), "requester": "inv",
                                           "created_at": repr(time.time()), "path": str(clip),
                                           "manifest_path": str(export_dir / "clip.json")})
    case = client.post("/api/cases", headers=headers, json={"name": "big"}).json()
    r = client.post(f"/api/cases/{case['id']}/items", headers=headers, json={"kind": "clip", "ref": "bigjob"})
    assert r.status_code == 201, r.text
    return case["id"]


def test_an_oversize_case_package_is_refused_before_any_zip_is_written(client: TestClient, tokens: dict,
                                                                        rclient: redis.Redis,
                                                                        api_settings: ApiSettings,
                                                                        staging: Path) -> None:
    case_id = _case_with_clip(client, rclient, api_settings, tokens["inv"], LIMIT + 1)
    r = client.get(f"/api/cases/{case_id}/package", headers=tokens["inv"])
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert case_id in detail and str(LIMIT) in detail and str(LIMIT + 3) in detail  # clip + its "{}" manifest
    assert list(staging.iterdir()) == []


def test_a_case_package_within_the_limit_is_served(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                   api_settings: ApiSettings, staging: Path) -> None:
    case_id = _case_with_clip(client, rclient, api_settings, tokens["inv"], LIMIT - 1024)
    r = client.get(f"/api/cases/{case_id}/package", headers=tokens["inv"])
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert "clips/bigjob/clip.mp4" in zf.namelist() and json.loads(zf.read("manifest.json"))["missing"] == []


def test_a_file_that_grows_past_the_limit_while_packaged_leaves_no_partial_zip(
        client: TestClient, tokens: dict, rclient: redis.Redis, api_settings: ApiSettings, staging: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    case_id = _case_with_clip(client, rclient, api_settings, tokens["inv"], LIMIT + 1)
    monkeypatch.setattr("api.routes.cases._source_size", lambda src: 0)  # its size as seen before it grew
    r = client.get(f"/api/cases/{case_id}/package", headers=tokens["inv"])
    assert r.status_code == 413 and str(LIMIT) in r.json()["detail"]
    assert list(staging.iterdir()) == []


def test_the_openapi_schema_documents_the_limit(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/api/cases/{case_id}/package"]["get"]["responses"]
    assert "413" in responses and "CCTV_CASE_PACKAGE_MAX_BYTES" in responses["413"]["description"]
    field = ApiSettings.model_fields["case_package_max_bytes"]
    assert field.description and field.default == 4 * 2**30
