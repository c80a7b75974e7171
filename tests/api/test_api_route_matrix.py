"""Every route x role x camera limit, with the expected and the actual status (written to var/route_matrix.md).

The routes come from the live OpenAPI schema, so a route added without a row here fails the test. Principals:
anonymous, and operator / investigator / admin each with no camera limit and limited to ``walkway-01``. Media
paths cover another camera's files, ``..`` (literal, ``%2e%2e``, double-encoded), backslashes, absolute paths, NUL,
symlinks to another camera and out of the media root, recording segments and export files.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
import redis
from fastapi.testclient import TestClient

from api.store import ApiStore

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
CLIP_BYTES = b"\x00\x00\x00\x18ftypmp42clip"  # the seeded export clip (its recorded SHA-256 is its real one)
MINE, OTHER = "walkway-01", "bkk-night-01"  # the limited users see only MINE
PRINCIPALS = ("anonymous", "op", "op_lim", "inv", "inv_lim", "adm", "adm_lim")
RANK = {"operator": 0, "investigator": 1, "admin": 2}
ROLE_OF = {"op": "operator", "op_lim": "operator", "inv": "investigator", "inv_lim": "investigator",
           "adm": "admin", "adm_lim": "admin"}
JOB, CASE = "job0inv00000001", "case0inv0000001"  # owned by 'inv', camera OTHER


@dataclass
class Row:
    """One request: ``need`` is the least role (None: public); ``ok`` the status for an allowed caller;
    ``lim`` the status for a camera-limited allowed caller; ``who`` per-principal exceptions (owner checks)."""

    method: str
    template: str
    path: str
    need: str | None
    ok: int
    lim: int | None = None
    who: dict[str, int] = field(default_factory=dict)
    kwargs: dict = field(default_factory=dict)
    note: str = ""

    def expected(self, principal: str) -> int:
        if principal == "anonymous":
            return self.ok if self.need is None else 401
        if principal in self.who:
            return self.who[principal]
        if self.need is not None and RANK[ROLE_OF[principal]] < RANK[self.need]:
            return 403
        if principal.endswith("_lim") and self.lim is not None:
            return self.lim
        return self.ok


DAY = "2026-12-01"
SNAP_MINE = f"snapshots/{MINE}/{DAY}/e2_plate.jpg"
SNAP_OTHER = f"snapshots/{OTHER}/{DAY}/e1_plate.jpg"
M = "/api/media/{relpath}"
OWNER_ONLY = {"inv_lim": 404}  # another investigator (limited) is not the owner of JOB/CASE; admins see all

ROWS = [
    Row("GET", "/api/health", "/api/health", None, 200),
    Row("POST", "/api/auth/login", "/api/auth/login", None, 422, kwargs={"json": {}}),
    Row("GET", "/api/auth/me", "/api/auth/me", "operator", 200),
    Row("POST", "/api/auth/password", "/api/auth/password", "operator", 422, kwargs={"json": {}}),
    Row("POST", "/api/auth/api-keys", "/api/auth/api-keys", "operator", 422, kwargs={"json": {}}),
    Row("GET", "/api/auth/api-keys", "/api/auth/api-keys", "operator", 200),
    Row("DELETE", "/api/auth/api-keys/{key_id}", "/api/auth/api-keys/nope", "operator", 404),
    Row("GET", "/api/api-keys", "/api/api-keys", "admin", 200),
    Row("DELETE", "/api/api-keys/{key_id}", "/api/api-keys/nope", "admin", 404),
    Row("GET", "/api/users", "/api/users", "admin", 200),
    Row("POST", "/api/users", "/api/users", "admin", 422, kwargs={"json": {}}),
    Row("GET", "/api/users/{username}", "/api/users/nobody", "admin", 404),
    Row("PATCH", "/api/users/{username}", "/api/users/nobody", "admin", 404, kwargs={"json": {}}),
    Row("DELETE", "/api/users/{username}", "/api/users/nobody", "admin", 404),
    Row("GET", "/api/plates/search", "/api/plates/search?q=1234", "operator", 200),
    Row("GET", "/api/plates/{plate}/history", "/api/plates/1234/history?reason=case-7", "investigator", 404,
        note="never read"),
    Row("GET", "/api/plates/{plate}/history", "/api/plates/1234/history", "investigator", 422, note="no reason"),
    Row("POST", "/api/faces/search", "/api/faces/search", "investigator", 422, kwargs={"data": {"reason": "x"}}),
    Row("POST", "/api/persons", "/api/persons", "admin", 422, kwargs={"data": {"name": "x"}}),
    Row("GET", "/api/persons", "/api/persons", "investigator", 200),
    Row("GET", "/api/persons/{person_id}", "/api/persons/nope", "investigator", 404),
    Row("PATCH", "/api/persons/{person_id}", "/api/persons/nope", "admin", 404, kwargs={"json": {}}),
    Row("DELETE", "/api/persons/{person_id}", "/api/persons/nope", "admin", 404),
    Row("PUT", "/api/persons/{person_id}/photos", "/api/persons/0000000000000000/photos", "admin", 422,
        kwargs={"data": {"x": "1"}}),
    Row("GET", "/api/watchlists", "/api/watchlists", "investigator", 200),
    Row("POST", "/api/watchlists", "/api/watchlists", "admin", 422, kwargs={"json": {}}),
    Row("GET", "/api/watchlists/{watchlist_id}", "/api/watchlists/nope", "investigator", 404),
    Row("PATCH", "/api/watchlists/{watchlist_id}", "/api/watchlists/nope", "admin", 404, kwargs={"json": {}}),
    Row("DELETE", "/api/watchlists/{watchlist_id}", "/api/watchlists/nope", "admin", 404),
    Row("GET", "/api/watchlists/{watchlist_id}/entries", "/api/watchlists/nope/entries", "investigator", 404),
    Row("POST", "/api/watchlists/{watchlist_id}/plates", "/api/watchlists/0000000000000000/plates", "admin", 422,
        kwargs={"json": {}}),
    Row("POST", "/api/watchlists/{watchlist_id}/persons", "/api/watchlists/0000000000000000/persons", "admin", 422,
        kwargs={"json": {}}),
    Row("POST", "/api/watchlists/{watchlist_id}/plates/import", "/api/watchlists/nope/plates/import", "admin", 404,
        kwargs={"files": {"file": ("hot.csv", b"plate\n1\xe0\xb8\x81\xe0\xb8\x821234\n", "text/csv")}}),
    Row("GET", "/api/watchlists/{watchlist_id}/plates/export", "/api/watchlists/nope/plates/export", "investigator",
        404),
    Row("PATCH", "/api/watchlists/{watchlist_id}/entries/{entry_id}", "/api/watchlists/0000000000000000/entries/0000000000000000",
        "admin", 422, kwargs={"json": {}}, note="an empty change is refused before the lookup"),
    Row("DELETE", "/api/watchlists/{watchlist_id}/entries/{entry_id}", "/api/watchlists/nope/entries/nope",
        "admin", 404),
    Row("GET", "/api/alerts", "/api/alerts", "operator", 200),
    Row("POST", "/api/alerts/acks", "/api/alerts/acks", "operator", 422, kwargs={"json": {}}),
    Row("POST", "/api/alerts/{alert_id}/ack", "/api/alerts/nope/ack", "operator", 404, kwargs={"json": {"note": "x"}}),
    Row("POST", "/api/alerts/{alert_id}/notes", "/api/alerts/nope/notes", "operator", 404,
        kwargs={"json": {"note": "x"}}),
    Row("GET", "/api/alerts/stream", "/api/alerts/stream?after=DROP", "operator", 422,
        note="a valid stream never ends; the bad cursor shows the caller got past authorisation"),
    Row("GET", "/api/cameras", "/api/cameras", "operator", 200),
    Row("GET", "/api/cameras/{camera_id}", f"/api/cameras/{MINE}", "operator", 200),
    Row("GET", "/api/cameras/{camera_id}", f"/api/cameras/{OTHER}", "operator", 200, lim=404),
    Row("GET", "/api/cameras/{camera_id}/snapshot", f"/api/cameras/{OTHER}/snapshot", "operator", 404,
        note="no snapshot yet"),
    Row("GET", "/api/cameras/{camera_id}/events", f"/api/cameras/{MINE}/events", "operator", 200),
    Row("GET", "/api/cameras/{camera_id}/events", f"/api/cameras/{OTHER}/events", "operator", 200, lim=404),
    Row("GET", "/api/cameras/{camera_id}/events", f"/api/cameras/{OTHER}/events?kind=face", "investigator", 200,
        lim=404),
    Row("GET", "/api/live/{camera_id}/info", f"/api/live/{MINE}/info", "operator", 200),
    Row("GET", "/api/live/{camera_id}/info", f"/api/live/{OTHER}/info", "operator", 200, lim=404),
    Row("GET", "/api/live/{camera_id}/info", "/api/live/GATE..x/info", "operator", 422, note="crafted camera id"),
    Row("GET", "/api/live/layout", "/api/live/layout", "operator", 200),
    Row("PUT", "/api/live/layout", "/api/live/layout", "operator", 200, kwargs={"json": {"grid": "1", "tiles": [MINE]}}),
    Row("PUT", "/api/live/layout", "/api/live/layout", "operator", 200, lim=422,
        kwargs={"json": {"grid": "2x2", "tiles": [OTHER]}}, note="another camera in a tile"),
    Row("POST", "/api/exports", "/api/exports", "investigator", 422, kwargs={"json": {}}),
    Row("GET", "/api/exports", "/api/exports", "investigator", 200),
    Row("GET", "/api/exports/{job_id}", f"/api/exports/{JOB}", "investigator", 200, who=OWNER_ONLY),
    Row("GET", "/api/exports/{job_id}/download", f"/api/exports/{JOB}/download", "investigator", 200,
        who=OWNER_ONLY),
    Row("GET", "/api/exports/{job_id}/manifest", f"/api/exports/{JOB}/manifest", "investigator", 200,
        who=OWNER_ONLY),
    Row("POST", "/api/cases", "/api/cases", "investigator", 422, kwargs={"json": {}}),
    Row("GET", "/api/cases", "/api/cases", "investigator", 200),
    Row("GET", "/api/cases/{case_id}", f"/api/cases/{CASE}", "investigator", 200, who=OWNER_ONLY),
    Row("POST", "/api/cases/{case_id}/items", f"/api/cases/{CASE}/items", "investigator", 404,
        kwargs={"json": {"kind": "plate", "ref": "nope"}}, note="unknown event"),
    Row("GET", "/api/cases/{case_id}/package", f"/api/cases/{CASE}/package", "investigator", 200, who=OWNER_ONLY),
    Row("DELETE", "/api/cases/{case_id}/items/{kind}/{ref}", f"/api/cases/{CASE}/items/clip/{JOB}", "investigator",
        404, note="the seeded case has no items (owner: no such item; others: no such case)"),
    Row("POST", "/api/cases/{case_id}/close", "/api/cases/nope/close", "investigator", 404,
        note="unknown case (closing the seeded one would change the rows after it)"),
    Row("GET", "/api/audit", "/api/audit", "admin", 200),
    Row("GET", "/api/notifications", "/api/notifications", "admin", 200),
    Row("POST", "/api/notifications/{name}/test", "/api/notifications/nope/test", "admin", 404,
        note="no webhook of that name in the demo cameras.yaml"),
    Row("GET", "/api/evidence/public-key", "/api/evidence/public-key", "operator", 200,
        note="any signed-in user: the public half only"),
    Row("GET", "/api/recordings/{camera_id}/timeline",
        f"/api/recordings/{MINE}/timeline?start=1733050000&end=1733053600", "operator", 200),
    Row("GET", "/api/recordings/{camera_id}/timeline",
        f"/api/recordings/{OTHER}/timeline?start=1733050000&end=1733053600", "operator", 200, lim=404),
    Row("GET", "/api/recordings/{camera_id}/stream", f"/api/recordings/{MINE}/stream?t=1733050000", "operator", 404,
        note="no recording then"),
    Row("GET", "/api/recordings/{camera_id}/stream", f"/api/recordings/{OTHER}/stream?t=nope", "operator", 422,
        lim=404, note="the camera limit is checked before the time"),
    # media: only event images of cameras the caller sees; nothing through .., encodings, links, recordings, exports
    Row("GET", M, f"/api/media/{SNAP_MINE}", "operator", 200, note="own camera's snapshot"),
    Row("GET", M, f"/api/media/{SNAP_OTHER}", "operator", 200, lim=404, note="another camera's snapshot"),
    Row("GET", M, f"/api/media/crops/{MINE}/c.jpg", "operator", 200, note="crop"),
    Row("GET", M, f"/api/media/x/%2e%2e/{SNAP_OTHER}", "operator", 404, note="%2e%2e segment"),
    Row("GET", M, f"/api/media/snapshots/{MINE}/%2e%2e/{OTHER}/{DAY}/e1_plate.jpg", "operator", 404,
        note="%2e%2e into another camera"),
    Row("GET", M, f"/api/media/snapshots/{MINE}/..%2f{OTHER}/{DAY}/e1_plate.jpg", "operator", 404,
        note="..%2f"),
    Row("GET", M, f"RAW:/api/media/snapshots/{MINE}/../{OTHER}/{DAY}/e1_plate.jpg", "operator", 404,
        note="literal .. (raw path)"),
    Row("GET", M, f"/api/media/x/%252e%252e/{SNAP_OTHER}", "operator", 404, note="double-encoded dots"),
    Row("GET", M, f"/api/media/snapshots/{MINE}/..%5c{OTHER}%5c{DAY}%5ce1_plate.jpg", "operator", 404,
        note="backslashes"),
    Row("GET", M, "/api/media/%2Fetc%2Fpasswd", "operator", 404, note="absolute path"),
    Row("GET", M, f"/api/media/{SNAP_MINE}%00.png", "operator", 404, note="NUL"),
    Row("GET", M, f"/api/media/snapshots/{MINE}/link.jpg", "operator", 200, lim=404,
        note="symlink to another camera's file"),
    Row("GET", M, f"/api/media/snapshots/{MINE}/out.jpg", "operator", 404, note="symlink out of the media root"),
    Row("GET", M, f"/api/media/{MINE}/{DAY}/seg_000.mp4", "operator", 404, note="recording segment (own camera)"),
    Row("GET", M, f"/api/media/{OTHER}/{DAY}/seg_000.mp4", "operator", 404, note="recording segment"),
    Row("GET", M, f"/api/media/exports/{JOB}/clip.mp4", "operator", 404, note="export clip"),
    Row("GET", M, "/api/media/secret.txt", "operator", 404, note="file at the media root"),
    # last: it ends the caller's session
    Row("POST", "/api/auth/logout", "/api/auth/logout", "operator", 204),
]


def _seed(root: Path, rclient: redis.Redis, export_root: Path) -> None:
    for rel in (SNAP_MINE, SNAP_OTHER, f"crops/{MINE}/c.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\xff\xd8\xff" + rel.encode())
    os.symlink(root / SNAP_OTHER, root / f"snapshots/{MINE}/link.jpg")
    outside = root.parent / "outside-secret.txt"
    outside.write_text("secret")
    os.symlink(outside, root / f"snapshots/{MINE}/out.jpg")
    for cam in (MINE, OTHER):
        (root / cam / DAY).mkdir(parents=True, exist_ok=True)
        (root / cam / DAY / "seg_000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (root / "secret.txt").write_text("secret")
    job_dir = export_root / JOB
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "clip.mp4").write_bytes(CLIP_BYTES)
    (job_dir / "clip.json").write_text("{}")
    now = time.time()
    rclient.hset(f"export:{JOB}", mapping={
        "id": JOB, "status": "done", "progress": "1", "camera_id": OTHER, "start": "1.0", "end": "2.0",
        "requester": "inv", "created_at": repr(now), "path": str(job_dir / "clip.mp4"),
        "manifest_path": str(job_dir / "clip.json"), "sha256": hashlib.sha256(CLIP_BYTES).hexdigest(), "size": "20", "duration": "1.0"})
    rclient.zadd("exports", {JOB: now})
    rclient.hset(f"case:{CASE}", mapping={"id": CASE, "name": "c", "description": "", "created_by": "inv",
                                          "created_at": repr(now)})
    rclient.zadd("cases", {CASE: now})


async def _raw_asgi(app, method: str, path: str, headers: dict) -> int:
    """Status of a request whose path reaches the app exactly as given (as uvicorn passes a literal '..')."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    status: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def _request(client: TestClient, row: Row, headers: dict) -> int:
    if row.path.startswith("RAW:"):  # httpx would remove a literal '..' segment before sending
        return anyio.run(_raw_asgi, client.app, row.method, row.path[4:], headers)
    return client.request(row.method, row.path, headers=headers, **row.kwargs).status_code


def test_route_matrix(client: TestClient, rclient: redis.Redis, api_settings) -> None:
    store = ApiStore(rclient, scrypt_n=16)
    headers: dict[str, dict] = {"anonymous": {}}
    for name in PRINCIPALS[1:]:
        store.put_user(name, ROLE_OF[name], PASSWORD, [MINE] if name.endswith("_lim") else None)
        r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    # after the users: a case older than its owner's user record was opened by an earlier user of that name
    _seed(api_settings.recordings_dir, rclient, api_settings.exports_root())

    operations = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}
    covered = {(r.method, r.template) for r in ROWS}
    assert operations - covered == set(), "routes without a row in the matrix: add them to ROWS"
    assert covered - operations == set(), "rows of routes that no longer exist"

    lines = ["# Route x role x camera limit", "",
             f"Generated by `{Path(__file__).relative_to(REPO)}`. `_lim`: limited to camera `{MINE}`; the other "
             f"camera is `{OTHER}`. Each cell: actual status (expected in brackets when they differ).", "",
             "| method | path | " + " | ".join(PRINCIPALS) + " | note |",
             "|---|---|" + "---|" * len(PRINCIPALS) + "---|"]
    mismatches = []
    for row in ROWS:
        cells = []
        for principal in PRINCIPALS:
            expected, actual = row.expected(principal), _request(client, row, headers[principal])
            cells.append(str(actual) if actual == expected else f"**{actual}** ({expected})")
            if actual != expected:
                mismatches.append((row.method, row.path, principal, expected, actual))
        shown = row.path[4:] if row.path.startswith("RAW:") else row.path
        lines.append(f"| {row.method} | `{shown}` | " + " | ".join(cells) + f" | {row.note} |")
    lines += ["", f"{len(ROWS)} requests x {len(PRINCIPALS)} principals = {len(ROWS) * len(PRINCIPALS)} checks, "
              f"{len(operations)} operations of the OpenAPI schema, mismatches: {len(mismatches)}.", ""]
    out = REPO / "var" / "route_matrix.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    assert mismatches == [], json.dumps(mismatches, ensure_ascii=False, indent=1)


def test_every_media_download_and_refusal_is_audited(client: TestClient, rclient: redis.Redis, tokens: dict,
                                                     api_settings) -> None:
    _seed(api_settings.recordings_dir, rclient, api_settings.exports_root())
    assert client.get(f"/api/media/{SNAP_OTHER}", headers=tokens["inv"]).status_code == 200
    assert client.get(f"/api/media/{SNAP_OTHER}", headers=tokens["limited"]).status_code == 404
    assert client.get(f"/api/media/x/%2e%2e/{SNAP_OTHER}", headers=tokens["limited"]).status_code == 404
    assert client.get(f"/api/media/{SNAP_OTHER}").status_code == 401
    audit = client.get("/api/audit?limit=1000", headers=tokens["adm"]).json()
    media = [a for a in audit if a["params"].get("path", "").startswith(("snapshots", "x/", "/api/media"))]
    got = {(a["user"], a["action"], a["status"]) for a in media}
    assert ("inv", "media", 200) in got and ("limited", "media_refused", 404) in got
    assert ("limited", "refused", 404) in got  # refused before the handler ran (dot segment)
    assert ("-", "refused", 401) in got
    assert all(a["ip"] for a in media)


@pytest.mark.parametrize("relpath", ["a/../b", "a/./b", "a//b", "a\\b", "/etc/passwd", "a\x00b", ""])
def test_safe_path_refuses_odd_paths(tmp_path: Path, relpath: str) -> None:
    from fastapi import HTTPException

    from api.routes.media import safe_path

    (tmp_path / "a").mkdir()
    (tmp_path / "b").write_text("x")
    with pytest.raises(HTTPException) as exc:
        safe_path(tmp_path, relpath)
    assert exc.value.status_code == 404
