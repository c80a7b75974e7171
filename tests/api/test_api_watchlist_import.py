"""Bulk CSV import and export of plate watchlists (real Redis): encodings (a real Windows-874 file), all-or-nothing
and skip modes, duplicates, dry runs, hostile files (huge bodies, a million columns, a 10 MB field, NUL bytes, mixed
line endings, formulas, bidi overrides), the audit record, the export's formula neutralisation and a round trip."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import time
from datetime import UTC, datetime

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.store import WatchlistStore, keys

pytestmark = pytest.mark.timeout(180)

HEADER = "plate,province,reason,severity,expires\r\n"


def _list(client: TestClient, adm: dict, kind: str = "plate") -> str:
    r = client.post("/api/watchlists", headers=adm, json={"kind": kind, "name": "hot list"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _import(client: TestClient, adm: dict, wid: str, data: bytes, name: str = "list.csv", **params: str):
    return client.post(f"/api/watchlists/{wid}/plates/import", headers=adm, params=params,
                       files={"file": (name, data, "text/csv")})


def _entries(client: TestClient, adm: dict, wid: str) -> list[dict]:
    return client.get(f"/api/watchlists/{wid}/entries", headers=adm).json()


def test_windows_874_file_from_thai_excel_is_imported(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    text = (HEADER + "1กข1234,กรุงเทพมหานคร,รถถูกขโมย,high,2099-12-31\r\n"
            "1กช4986,ภูเก็ต,หมายจับ 12/2569,,\r\n"
            "2ขค 5678 Chiang Mai,,,critical,2099-01-01T08:00\r\n")
    data = text.encode("cp874")
    assert b"\xa1" in data  # really Windows-874 bytes, not UTF-8
    version = WatchlistStore(rclient).version()
    r = _import(client, adm, wid, data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["updated"], body["skipped"], body["invalid"], body["rows"]) == (3, 0, 0, 0, 3)
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["dry_run"] is False
    entries = {e["plate"]: e for e in _entries(client, adm, wid)}
    assert entries["1กข1234"]["province"] == "กรุงเทพมหานคร" and entries["1กข1234"]["reason"] == "รถถูกขโมย"
    assert entries["1กข1234"]["severity"] == "high"
    assert entries["1กช4986"]["severity"] == "medium" and entries["1กช4986"]["expires_at"] is None
    assert entries["2ขค5678"]["province"] == "เชียงใหม่"  # typed with the plate, split off as the single route does
    # 08:00 Bangkok = 01:00 UTC; a date alone is valid through the end of that day (Bangkok)
    assert entries["2ขค5678"]["expires_at"] == datetime(2099, 1, 1, 1, 0, tzinfo=UTC).timestamp()
    assert entries["1กข1234"]["expires_at"] == datetime(2099, 12, 31, 16, 59, 59, tzinfo=UTC).timestamp()
    assert WatchlistStore(rclient).version() == version + 1  # one bump: the engine re-reads once
    [rec] = client.get("/api/audit?action=watchlist_import", headers=adm).json()
    params = rec["params"]
    assert params["watchlist_id"] == wid and params["file_name"] == "list.csv" and params["added"] == 3
    assert params["sha256"] == body["sha256"] and params["encoding"] == "windows-874"
    assert "1กข1234" not in json.dumps(params, ensure_ascii=False)  # counts, not every plate


def test_utf8_with_bom_and_mixed_line_endings(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    data = codecs.BOM_UTF8 + "Plate , Reason\n1กข1234,a\r\n1กข1235,b\r1กข1236,\"two\nlines? no\"\n".encode()
    r = _import(client, adm, wid, data)
    assert r.status_code == 422, r.text  # the quoted line break is a control character in a one-line reason
    [err] = r.json()["result"]["errors"]
    assert (err["line"], err["column"]) == (4, "reason")
    assert _entries(client, adm, wid) == []  # all or nothing
    data = codecs.BOM_UTF8 + "Plate , Reason\n1กข1234,a\r\n1กข1235,b\r1กข1236,c\n".encode()
    r = _import(client, adm, wid, data)
    assert r.status_code == 200 and r.json()["added"] == 3, r.text


def test_invalid_rows_refuse_the_file_or_are_skipped(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    data = (HEADER + "1กข1234,,ok,,\n"
            "   ,,no plate,,\n"
            "1กข1235,Atlantis,,,\n"
            "1กข1236,,,urgent,\n"
            "1กข1237,,,,31/12/2099\n"
            "1กข1238,,\u202eevil,,\n"
            "1กข1234,,again,,\n"
            "1กข1239,,,,2000-01-01\n").encode()
    version = WatchlistStore(rclient).version()
    r = _import(client, adm, wid, data)
    assert r.status_code == 422, r.text
    body = r.json()
    assert "nothing was written" in body["detail"] and "line 3" in body["detail"]
    got = [(e["line"], e["column"]) for e in body["result"]["errors"]]
    assert got == [(3, "plate"), (4, "province"), (5, "severity"), (6, "expires"), (7, "reason"), (8, "plate"),
                   (9, "expires")]
    assert body["result"]["invalid"] == 7 and body["errors"][0]["field"] == "line 3: plate"
    assert "U+202E" in body["result"]["errors"][4]["reason"]
    assert "line 2" in body["result"]["errors"][5]["reason"]  # the same plate as line 2
    assert _entries(client, adm, wid) == [] and WatchlistStore(rclient).version() == version
    assert client.get("/api/audit?action=watchlist_import", headers=adm).json() == []
    r = _import(client, adm, wid, data, invalid="skip")
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["invalid"]) == (1, 7)
    assert [e["plate"] for e in _entries(client, adm, wid)] == ["1กข1234"]


def test_dry_run_and_duplicates_skip_or_update(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    r = client.post(f"/api/watchlists/{wid}/plates", headers=adm, json={"plate": "1กข1234", "reason": "old",
                                                                        "cameras": ["stage-01"]})
    assert r.status_code == 201, r.text
    old = r.json()
    data = (HEADER + "1กข1234,,new,critical,\n1กข9999,,,,\n").encode()
    version = WatchlistStore(rclient).version()
    r = _import(client, adm, wid, data, dry_run="true")
    assert r.status_code == 200 and r.json()["dry_run"] is True
    assert (r.json()["added"], r.json()["skipped"]) == (1, 1)
    assert len(_entries(client, adm, wid)) == 1 and WatchlistStore(rclient).version() == version
    r = _import(client, adm, wid, data, on_duplicate="update", dry_run="true")
    assert (r.json()["added"], r.json()["updated"]) == (1, 1) and len(_entries(client, adm, wid)) == 1
    r = _import(client, adm, wid, data, on_duplicate="update")
    assert (r.json()["added"], r.json()["updated"], r.json()["skipped"]) == (1, 1, 0)
    entries = {e["plate"]: e for e in _entries(client, adm, wid)}
    kept = entries["1กข1234"]
    assert kept["entry_id"] == old["entry_id"] and kept["reason"] == "new" and kept["severity"] == "critical"
    assert kept["cameras"] == ["stage-01"] and kept["created_at"] == old["created_at"]
    r = _import(client, adm, wid, data)
    assert (r.json()["added"], r.json()["skipped"]) == (0, 2)


@pytest.mark.parametrize(("data", "code", "words"), [
    ("plate,reason\n1กข1234,x\n".encode("utf-16"), 415, "UTF-16"),
    (b"plate\n1\x00234\n", 415, "line 2, column 2"),
    ("plate\n1กข1234\n".encode() + b"\xff\xfe\n", 415, "line 3, column 1"),
    (codecs.BOM_UTF8 + b"plate\n" + b"\xe0\x80\n", 415, "line 2"),
    (b"", 422, "empty"),
    (b"registration\n1234\n", 422, "unknown column 'registration'"),
    (b"province\nx\n", 422, "no 'plate' column"),
    (b"plate,plate\n1,2\n", 422, "appears twice"),
    (("," * 1_000_000 + "plate\n").encode(), 422, "line 1: the header has 1000001 columns"),
    (b'plate,reason\n1,"abc"d\n', 422, "line 2"),
])
def test_hostile_files_are_refused_naming_where(client: TestClient, tokens: dict, data: bytes, code: int,
                                                words: str) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    r = _import(client, adm, wid, data)
    assert r.status_code == code, r.text
    assert words in r.json()["detail"], r.text
    assert _entries(client, adm, wid) == []


def test_a_huge_field_and_too_many_cells(client: TestClient, tokens: dict) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    r = _import(client, adm, wid, b'plate,reason\n1,"' + b"x" * (4 * 2**20) + b'"\n')
    assert r.status_code == 422 and "line 2" in r.json()["detail"], r.text
    r = _import(client, adm, wid, b"plate,reason\n1\xe0\xb8\x81\xe0\xb8\x821234," + b"y" * 2000 + b"\n1,2,3\n")
    assert r.status_code == 422, r.text
    errs = [(e["line"], e["column"]) for e in r.json()["result"]["errors"]]
    assert errs == [(2, "reason"), (3, None)]
    r = _import(client, adm, wid, b"plate\n" + b"1\n" * 50_001)
    assert r.status_code == 413 and "line 50002: more than 50000 rows" in r.json()["detail"], r.text
    big = b"plate\n" + b"1" * (5 * 2**20)
    r = _import(client, adm, wid, big)
    assert r.status_code == 413 and "larger than" in r.json()["detail"], r.text
    assert _entries(client, adm, wid) == []


def test_a_100_mb_body_is_refused_before_it_is_read(client: TestClient, tokens: dict) -> None:
    wid = _list(client, tokens["adm"])
    headers = {**tokens["adm"], "Content-Type": "multipart/form-data; boundary=x",
               "Content-Length": str(100 * 10**6)}
    def body():  # what little is sent: the guard answers from the declared length
        yield b"--x\r\n"

    r = client.post(f"/api/watchlists/{wid}/plates/import", headers=headers, content=body())
    assert r.status_code == 413, r.text
    assert "larger than" in r.json()["detail"]


def test_face_watchlist_and_roles(client: TestClient, tokens: dict) -> None:
    fid = _list(client, tokens["adm"], "face")
    r = _import(client, tokens["adm"], fid, HEADER.encode())
    assert r.status_code == 422 and "face watchlist" in r.json()["detail"]
    wid = _list(client, tokens["adm"])
    assert _import(client, tokens["inv"], wid, HEADER.encode()).status_code == 403


def test_export_neutralises_formulas_and_round_trips(client: TestClient, tokens: dict, rclient: redis.Redis) -> None:
    adm = tokens["adm"]
    wid = _list(client, adm)
    expires = time.time() + 86400
    for plate, reason in (("1กข1234", "=HYPERLINK(\"http://evil\")"), ("1กช4986", "-2+3"), ("2ขค5678", "@SUM(A1)"),
                          ("3กก1111", "ขโมย")):
        r = client.post(f"/api/watchlists/{wid}/plates", headers=adm,
                        json={"plate": plate, "reason": reason, "province": "ภูเก็ต", "expires_at": expires})
        assert r.status_code == 201, r.text
    r = client.get(f"/api/watchlists/{wid}/plates/export", headers=tokens["inv"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["plate", "province", "reason", "severity", "expires"]
    reasons = {row[0]: row[2] for row in rows[1:]}
    assert reasons["1กข1234"] == "'=HYPERLINK(\"http://evil\")" and reasons["1กช4986"] == "'-2+3"
    assert reasons["2ขค5678"] == "'@SUM(A1)" and reasons["3กก1111"] == "ขโมย"
    assert all(row[4].endswith("+07:00") and row[1] == "ภูเก็ต" for row in rows[1:])
    [rec] = client.get("/api/audit?action=watchlist_export", headers=adm).json()
    assert rec["params"]["watchlist_id"] == wid and rec["params"]["entries"] == 4
    version = WatchlistStore(rclient).version()
    back = _import(client, adm, wid, r.content, on_duplicate="skip")
    assert back.status_code == 200, back.text
    assert (back.json()["added"], back.json()["skipped"]) == (0, 4)
    assert WatchlistStore(rclient).version() == version  # nothing written
    other = _list(client, adm)
    assert _import(client, adm, other, r.content).json()["added"] == 4
    assert {e["reason"] for e in _entries(client, adm, other)} == set(reasons.values()) - {
        "'=HYPERLINK(\"http://evil\")", "'-2+3", "'@SUM(A1)"} | {"=HYPERLINK(\"http://evil\")", "-2+3", "@SUM(A1)"}
    assert rclient.hlen(keys.watchlist_entries(other)) == 4


def test_openapi_documents_the_import(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/api/watchlists/{watchlist_id}/plates/import"]["post"]
    assert {"200", "413", "415", "422"} <= set(op["responses"])
    assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ImportRefusedOut")
    export = doc["paths"]["/api/watchlists/{watchlist_id}/plates/export"]["get"]
    assert "text/csv" in export["responses"]["200"]["content"]
