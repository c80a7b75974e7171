"""Hostile text in alert acknowledgements and follow-up notes, and in case names and descriptions.

These texts are shown on alert cards, the case list, case packages and the audit table: a bidi override (U+202E)
shows them reversed (a note "ok 1กข1234" can read as another plate) and control characters (ESC, NUL, backspace)
fake or hide text, so they are refused with 422 naming the field. Thai, line breaks and tabs pass."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from tests.api.test_api_alert_ack_once import publish

pytestmark = pytest.mark.timeout(120)

HOSTILE = ["sent patrol \u202e4321กข1", "done\x1b[2J", "nul\x00here", "back\x08space", "iso\u2066late\u2069"]


def _field(reply, name: str) -> bool:
    """Whether a 422 names the body field ``name``."""
    return reply.status_code == 422 and any(e["field"] == name for e in reply.json()["errors"])


@pytest.mark.parametrize("note", HOSTILE)
def test_an_acknowledgement_note_with_control_or_bidi_characters_is_refused(client: TestClient, tokens: dict,
                                                                          rclient: redis.Redis, note: str) -> None:
    alert = publish(rclient)
    r = client.post(f"/api/alerts/{alert.alert_id}/ack", headers=tokens["op"], json={"note": note})
    assert _field(r, "note"), r.text
    assert rclient.hget("alerts:acks", alert.alert_id) is None  # nothing acknowledged: a clean retry may follow
    ok = client.post(f"/api/alerts/{alert.alert_id}/ack", headers=tokens["op"],
                     json={"note": "ส่งสายตรวจแล้ว\nรถจอดที่ซอย 5\tรอ"})
    assert ok.status_code == 200 and ok.json()["note"] == "ส่งสายตรวจแล้ว\nรถจอดที่ซอย 5\tรอ"


@pytest.mark.parametrize("note", HOSTILE)
def test_a_follow_up_note_with_control_or_bidi_characters_is_refused(client: TestClient, tokens: dict,
                                                                     rclient: redis.Redis, note: str) -> None:
    alert = publish(rclient)
    assert client.post(f"/api/alerts/{alert.alert_id}/ack", headers=tokens["op"], json={}).status_code == 200
    r = client.post(f"/api/alerts/{alert.alert_id}/notes", headers=tokens["inv"], json={"note": note})
    assert _field(r, "note"), r.text
    ok = client.post(f"/api/alerts/{alert.alert_id}/notes", headers=tokens["inv"], json={"note": "รถออกไปแล้ว"})
    assert ok.status_code == 200 and [n["note"] for n in ok.json()["notes"]] == ["รถออกไปแล้ว"]


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("text", HOSTILE)
def test_a_case_name_or_description_with_control_or_bidi_characters_is_refused(client: TestClient, tokens: dict,
                                                                               field: str, text: str) -> None:
    body = {"name": "คดีลักรถ 2567/118", field: text}
    r = client.post("/api/cases", headers=tokens["inv"], json=body)
    assert _field(r, field), r.text
    assert client.get("/api/cases", headers=tokens["inv"]).json() == []


def test_a_case_name_is_one_line_and_a_description_free_text(client: TestClient, tokens: dict) -> None:
    assert _field(client.post("/api/cases", headers=tokens["inv"], json={"name": "two\nlines"}), "name")
    assert _field(client.post("/api/cases", headers=tokens["inv"], json={"name": "   "}), "name")
    r = client.post("/api/cases", headers=tokens["inv"],
                    json={"name": "คดีลักรถ 2567/118", "description": "รถหาย\nพบที่ปากซอย\tเวลา 21:00"})
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "รถหาย\nพบที่ปากซอย\tเวลา 21:00"
