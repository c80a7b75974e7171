"""Signed case packages: the manifest is signed with the service's Ed25519 key, carries the chain of custody, and
``python -m pipeline verify-package`` (a real subprocess, no service) accepts a genuine package and refuses the
audit's forgery (a byte of the clip flipped, both SHA-256s rewritten), a manifest edited without the key and a
package signed by another key when the published fingerprint is given. The private key appears in no log, API
answer or package. Real Redis, real files, real zips, real keys."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from tests.api.test_api_case_hold import _event

REPO = Path(__file__).resolve().parents[2]
CAM = "bkk-night-01"
JOB = "jobsigned0000001"
START = 1_733_300_000.0


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The evidence signing key of this test, in a private secrets folder of its own (generated on first use)."""
    path = tmp_path / "secrets" / "evidence-signing.key"
    monkeypatch.setenv("CCTV_EVIDENCE_KEY_FILE", str(path))
    monkeypatch.delenv("CCTV_EVIDENCE_SIGNING_KEY", raising=False)
    return path


def _clip(rclient: redis.Redis, settings: ApiSettings, job_id: str = JOB, with_manifest_hash: bool = True) -> Path:
    """A finished export of CAM with a real clip and a manifest in the export format; the clip manifest's path."""
    folder = settings.exports_root() / job_id
    folder.mkdir(parents=True)
    clip = folder / f"{CAM}_clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    manifest = folder / f"{CAM}_clip.json"
    manifest.write_text(json.dumps({"camera_id": CAM, "window": {"start": "2024-12-04T08:13:20.000Z",
                                                                 "end": "2024-12-04T08:13:50.000Z",
                                                                 "start_epoch": START, "end_epoch": START + 30},
                                    "created": "2024-12-04T08:20:00.000Z", "requester": "inv", "file": clip.name,
                                    "size_bytes": clip.stat().st_size, "sha256": digest}, indent=2))
    job = {"id": job_id, "status": "done", "progress": "1", "camera_id": CAM, "start": repr(START),
           "end": repr(START + 30), "requester": "inv", "created_at": repr(time.time()), "path": str(clip),
           "manifest_path": str(manifest), "sha256": digest}
    if with_manifest_hash:
        job["manifest_sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    rclient.hset(f"export:{job_id}", mapping=job)
    rclient.zadd("exports", {job_id: time.time()})
    return manifest


def _case(client: TestClient, rclient: redis.Redis, settings: ApiSettings, headers: dict, **clip: bool) -> str:
    """A case holding the clip :data:`JOB` and a plate event; its id."""
    _clip(rclient, settings, **clip)
    event = _event(rclient, settings.recordings_dir, "1กก1234", START + 10)
    case_id = client.post("/api/cases", headers=headers, json={"name": "robbery 7/2567"}).json()["id"]
    for kind, ref in (("clip", JOB), ("plate", event.event_id)):
        r = client.post(f"/api/cases/{case_id}/items", headers=headers, json={"kind": kind, "ref": ref})
        assert r.status_code == 201, r.text
    return case_id


def _download(client: TestClient, headers: dict, case_id: str, to: Path) -> Path:
    r = client.get(f"/api/cases/{case_id}/package", headers=headers)
    assert r.status_code == 200, r.text
    to.write_bytes(r.content)
    return to


def _verify(package: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline verify-package`` as a real subprocess, without the service's settings or key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_EVIDENCE")}
    return subprocess.run([sys.executable, "-m", "pipeline", "verify-package", str(package), *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def _entries(package: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(package) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rezip(entries: dict[str, bytes], to: Path) -> Path:
    with zipfile.ZipFile(to, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return to


def _published(client: TestClient, headers: dict) -> str:
    r = client.get("/api/evidence/public-key", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["fingerprint"]


@pytest.fixture()
def package(client: TestClient, tokens: dict, rclient: redis.Redis, api_settings: ApiSettings,
            tmp_path: Path) -> Path:
    """A genuine package of a case with a clip and a plate event."""
    return _download(client, tokens["inv"], _case(client, rclient, api_settings, tokens["inv"]),
                     tmp_path / "case.zip")


# -- (a) a genuine package verifies ------------------------------------------------------------------------------

def test_a_genuine_package_verifies_against_the_published_key(package: Path, client: TestClient, tokens: dict,
                                                              tmp_path: Path) -> None:
    fingerprint = _published(client, tokens["op"])  # any signed-in user may fetch it
    names = set(_entries(package))
    assert {"manifest.json", "manifest.sig", "public-key.pem", "public-key.fingerprint"} <= names
    result = _verify(package, "--public-key", fingerprint)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTACT" in result.stdout and fingerprint in result.stdout and "NOT AUTHENTICATED" not in result.stdout
    pem = tmp_path / "published.pem"
    pem.write_text(client.get("/api/evidence/public-key", headers=tokens["inv"]).json()["public_key_pem"])
    assert _verify(package, "--public-key", str(pem)).returncode == 0
    unpinned = _verify(package)
    # without the published key the package is only self-consistent: never a plain "intact" exit 0
    assert unpinned.returncode == 3 and "NOT AUTHENTICATED" in unpinned.stdout and fingerprint in unpinned.stdout


def test_the_public_key_route_needs_a_signed_in_user(client: TestClient) -> None:
    assert client.get("/api/evidence/public-key").status_code == 401


# -- (b) the audit's forgery -------------------------------------------------------------------------------------

def test_the_audits_forgery_is_refused(package: Path, client: TestClient, tokens: dict, tmp_path: Path) -> None:
    """One byte of the clip flipped, its SHA-256 rewritten in the clip manifest and in the package manifest (and
    the clip manifest's own hash there too): every hash agrees, but the signature does not."""
    fingerprint = _published(client, tokens["inv"])
    assert _verify(package, "--public-key", fingerprint).returncode == 0
    entries = _entries(package)
    clip_name = next(n for n in entries if n.endswith(".mp4"))
    clip_manifest_name = next(n for n in entries if n.startswith("clips/") and n.endswith(".json"))
    clip = bytearray(entries[clip_name])
    clip[100] ^= 0x01
    entries[clip_name] = bytes(clip)
    clip_manifest = json.loads(entries[clip_manifest_name])
    clip_manifest["sha256"] = hashlib.sha256(clip).hexdigest()
    entries[clip_manifest_name] = json.dumps(clip_manifest, indent=2).encode()
    manifest = json.loads(entries["manifest.json"])
    for entry in manifest["files"]:
        entry["sha256"] = hashlib.sha256(entries[entry["path"]]).hexdigest()
    entries["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    forged = _rezip(entries, tmp_path / "forged.zip")
    for args in (("--public-key", fingerprint), ()):
        result = _verify(forged, *args)
        assert result.returncode == 1, result.stdout
        assert "FAILED: the signature of manifest.json is not valid" in result.stdout
    only_clip = dict(_entries(package), **{clip_name: bytes(clip)})  # the clip flipped, nothing rewritten
    result = _verify(_rezip(only_clip, tmp_path / "flipped.zip"), "--public-key", fingerprint)
    assert result.returncode == 1 and f"FAILED: {clip_name}: SHA-256" in result.stdout


# -- (c) a manifest edited and re-hashed without the key ---------------------------------------------------------

def test_a_manifest_edited_without_the_key_is_refused(package: Path, client: TestClient, tokens: dict,
                                                      tmp_path: Path) -> None:
    fingerprint = _published(client, tokens["inv"])
    entries = _entries(package)
    manifest = json.loads(entries["manifest.json"])
    manifest["packaged_by"] = "someone-else"
    manifest["items"][0]["added_by"] = "someone-else"
    entries["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    edited = _rezip(entries, tmp_path / "edited.zip")
    result = _verify(edited, "--public-key", fingerprint)
    assert result.returncode == 1 and "signature of manifest.json is not valid" in result.stdout
    assert _verify(edited).returncode == 1
    unsigned = {k: v for k, v in _entries(package).items() if k != "manifest.sig"}
    result = _verify(_rezip(unsigned, tmp_path / "unsigned.zip"))
    assert result.returncode == 1 and "manifest.sig" in result.stdout


def test_extra_and_missing_files_are_refused(package: Path, tmp_path: Path) -> None:
    entries = _entries(package)
    result = _verify(_rezip(entries | {"clips/planted.mp4": b"x"}, tmp_path / "extra.zip"))
    assert result.returncode == 1 and "FAILED: clips/planted.mp4: in the package but not in the signed manifest" \
        in result.stdout
    gone = next(n for n in entries if n.startswith("media/"))
    result = _verify(_rezip({k: v for k, v in entries.items() if k != gone}, tmp_path / "short.zip"))
    assert result.returncode == 1 and f"FAILED: {gone}: listed in the signed manifest but missing" in result.stdout
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert _verify(tmp_path / "junk.zip").returncode == 1


# -- (d) another key ---------------------------------------------------------------------------------------------

def test_a_package_signed_by_another_key_is_refused_against_the_published_one(
        client: TestClient, tokens: dict, rclient: redis.Redis, api_settings: ApiSettings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    published = _published(client, tokens["inv"])
    pem = tmp_path / "published.pem"
    pem.write_text(client.get("/api/evidence/public-key", headers=tokens["inv"]).json()["public_key_pem"])
    case_id = _case(client, rclient, api_settings, tokens["inv"])
    monkeypatch.setenv("CCTV_EVIDENCE_KEY_FILE", str(tmp_path / "other" / "evidence-signing.key"))
    other = _download(client, tokens["inv"], case_id, tmp_path / "other.zip")  # a well-formed package, other key
    assert _published(client, tokens["inv"]) != published
    for pin in (published, str(pem)):
        result = _verify(other, "--public-key", pin)
        assert result.returncode == 1, result.stdout
        assert "FAILED: the package's public key" in result.stdout and published in result.stdout
    assert _verify(other, "--public-key", "sha256:not-hex").returncode == 2


# -- (e) chain of custody ----------------------------------------------------------------------------------------

def test_the_manifest_carries_the_chain_of_custody(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                   api_settings: ApiSettings, tmp_path: Path) -> None:
    case_id = _case(client, rclient, api_settings, tokens["inv"])
    assert client.get(f"/api/cases/{case_id}", headers=tokens["inv"]).status_code == 200  # viewed
    assert client.get(f"/api/exports/{JOB}", headers=tokens["inv"]).status_code == 200  # its export viewed
    assert client.post(f"/api/cases/{case_id}/close", headers=tokens["adm"]).status_code == 200
    package = _download(client, tokens["inv"], case_id, tmp_path / "closed.zip")
    raw = _entries(package)["manifest.json"]
    manifest = json.loads(raw)
    case = manifest["case"]
    assert case["created_by"] == "inv" and case["closed_by"] == "adm" and case["status"] == "closed"
    assert isinstance(case["closed_at"], float) and case["closed_at"] >= case["created_at"]
    items = {i["kind"]: i for i in manifest["items"]}
    assert set(items) == {"clip", "plate"} and all(i["added_by"] == "inv" for i in items.values())
    export = items["clip"]["export"]
    assert (export["requester"], export["camera_id"], export["window"]["start"], export["window"]["end"]) == \
        ("inv", CAM, START, START + 30)
    assert export["window"]["start_iso"] == "2024-12-04T08:13:20.000Z" and export["created_at_iso"]
    audit = manifest["audit"]
    actions = [(r["user"], r["action"]) for r in audit["records"]]
    for expected in (("inv", "case_create"), ("inv", "case_add"), ("inv", "query"), ("adm", "case_close")):
        assert expected in actions, actions
    assert any(JOB in json.dumps(r["params"]) and r["action"] == "query" for r in audit["records"])
    assert audit["complete"] and audit["omitted"] == 0
    times = [v for k, v in _walk(manifest) if k.endswith("_iso") and v is not None]
    assert times and all(t.endswith("Z") for t in times), times
    assert manifest["signing"]["algorithm"] == "Ed25519"
    record = client.get("/api/audit?action=case_package&limit=10", headers=tokens["adm"]).json()[-1]
    assert record["params"]["manifest_sha256"] == hashlib.sha256(raw).hexdigest()
    assert record["params"]["key_fingerprint"] == manifest["signing"]["public_key_fingerprint"]
    assert record["params"]["package_id"] == manifest["package_id"]
    signature = base64.b64decode(_entries(package)["manifest.sig"])
    assert record["params"]["signature_sha256"] == hashlib.sha256(signature).hexdigest()


def _walk(value: object, key: str = "") -> list[tuple[str, object]]:
    """Every (key, value) pair of a JSON document, nested ones too."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in [(k, v), *_walk(v, k)]]
    if isinstance(value, list):
        return [pair for v in value for pair in _walk(v, key)]
    return []


# -- defect 3: a clip manifest edited on the server --------------------------------------------------------------

def test_a_clip_manifest_edited_on_the_server_is_listed_as_altered(client: TestClient, tokens: dict,
                                                                   rclient: redis.Redis, api_settings: ApiSettings,
                                                                   tmp_path: Path) -> None:
    case_id = _case(client, rclient, api_settings, tokens["inv"])
    clip_manifest = next((api_settings.exports_root() / JOB).glob("*.json"))
    edited = json.loads(clip_manifest.read_text()) | {"requester": "someone-else"}
    clip_manifest.write_text(json.dumps(edited, indent=2))
    package = _download(client, tokens["inv"], case_id, tmp_path / "p.zip")
    altered = json.loads(_entries(package)["manifest.json"])["altered"]
    assert [(a["item"], a["path"]) for a in altered] == [(f"clip:{JOB}", f"clips/{JOB}/{clip_manifest.name}")]
    assert "manifest" in altered[0]["reason"] and altered[0]["export_sha256"] != altered[0]["sha256"]
    result = _verify(package, "--public-key", _published(client, tokens["inv"]))
    assert result.returncode == 0 and "altered" in result.stdout  # intact as issued; the alteration is reported


def test_a_job_without_a_manifest_hash_is_not_compared(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                       api_settings: ApiSettings, tmp_path: Path) -> None:
    case_id = _case(client, rclient, api_settings, tokens["inv"], with_manifest_hash=False)
    clip_manifest = next((api_settings.exports_root() / JOB).glob("*.json"))
    clip_manifest.write_text(clip_manifest.read_text() + "\n")
    package = _download(client, tokens["inv"], case_id, tmp_path / "p.zip")
    assert json.loads(_entries(package)["manifest.json"])["altered"] == []


# -- (f) the private key stays private ---------------------------------------------------------------------------

def test_the_private_key_appears_in_no_log_answer_or_package(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                             api_settings: ApiSettings, key_file: Path,
                                                             tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    case_id = _case(client, rclient, api_settings, tokens["inv"])
    answers = [client.get("/api/evidence/public-key", headers=tokens["inv"]).content]
    package = _download(client, tokens["inv"], case_id, tmp_path / "p.zip")
    answers.append(client.get("/api/audit?limit=1000", headers=tokens["adm"]).content)
    answers.append(client.get("/openapi.json").content)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and oct(key_file.parent.stat().st_mode & 0o777) == "0o700"
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key_file.read_bytes(), None)
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    body = "".join(line for line in key_file.read_text().splitlines() if not line.startswith("-----"))
    forms = [body.encode(), raw.hex().encode(), base64.b64encode(raw), raw]
    haystacks = [caplog.text.encode(), *answers, package.read_bytes(), *_entries(package).values()]
    assert "generated a new evidence signing key" in caplog.text  # the logs were captured
    assert not [form for form in forms for hay in haystacks if form in hay]
    cli = subprocess.run([sys.executable, "-m", "pipeline", "evidence-key"], capture_output=True, text=True,
                         cwd=REPO, env=os.environ | {"CCTV_EVIDENCE_KEY_FILE": str(key_file)}, timeout=120)
    assert cli.returncode == 0 and "kept" in cli.stdout, cli.stderr
    assert body not in cli.stdout + cli.stderr and "PRIVATE" not in cli.stdout + cli.stderr
    assert json.loads(answers[0])["fingerprint"] in cli.stdout


def test_a_key_file_others_may_read_is_refused(client: TestClient, tokens: dict, key_file: Path) -> None:
    assert client.get("/api/evidence/public-key", headers=tokens["inv"]).status_code == 200
    key_file.chmod(0o644)
    r = client.get("/api/evidence/public-key", headers=tokens["inv"])
    assert r.status_code == 503 and "PRIVATE" not in r.text


def test_the_package_is_the_bytes_the_manifest_signs(package: Path) -> None:
    """The signature covers exactly the manifest's bytes in the zip (checked with the package's own key here)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    entries = _entries(package)
    key = load_pem_public_key(entries["public-key.pem"])
    key.verify(base64.b64decode(entries["manifest.sig"]), entries["manifest.json"])  # raises when it does not
    with zipfile.ZipFile(io.BytesIO(package.read_bytes())) as zf:
        assert zf.testzip() is None
