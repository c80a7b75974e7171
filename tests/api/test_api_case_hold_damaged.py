"""Legal hold of old open cases (from before holds existed) with a damaged item: what it refers to is unknown, so
all recording is held (hold more, not less), as for a damaged stored hold item.

Real files under a real recordings folder, real Redis, the real retention functions."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from pipeline.store import holds
from tests.api.test_api_case_hold import CAM, T0, _event, _indexed, _retention, _segment, _stored

pytestmark = pytest.mark.timeout(180)


def _old_case(rclient: redis.Redis, case_id: str, items: dict[str, bytes]) -> None:
    """An open case written by a version without legal holds (no ``hold:case:{id}``)."""
    rclient.hset(f"case:{case_id}", mapping={"id": case_id, "name": case_id, "description": "",
                                             "created_by": "inv", "created_at": repr(T0)})
    rclient.zadd("cases", {case_id: T0})
    rclient.hset(f"case:{case_id}:items", mapping=items)


def test_a_damaged_item_of_an_old_case_holds_all_recording_and_what_its_key_names(
        rclient: redis.Redis, api_settings: ApiSettings, caplog: pytest.LogCaptureFixture) -> None:
    """The record of ``plate:<id>`` is unreadable: at start its case holds all recording of every camera (a segment
    far from any event survives retention) and the event its key names, with its files; the warning names the
    case."""
    rec = api_settings.recordings_dir
    event = _event(rclient, rec, "7กข4444", T0)
    far = _segment(rclient, rec, T0 + 7200, T0 + 7260)
    _old_case(rclient, "oldbroken", {f"plate:{event.event_id}": b"{not json"})
    with caplog.at_level(logging.WARNING, logger="api.routes.cases"), TestClient(create_app(api_settings)):
        pass
    assert any("oldbroken" in r.getMessage() and "holding all recording" in r.getMessage() for r in caplog.records)
    held = holds.held(rclient)
    assert held.everything and held.camera_wholly(CAM) and f"plate:{event.event_id}" in held.events
    _retention(rclient, rec)
    assert _indexed(rclient, far) and (rec / far.path).is_file()
    assert _stored(rclient, event) and (rec / event.crop_path).is_file()
    holds.rebuild(rclient)  # the marker survives a rebuild (another case closing)
    assert holds.held(rclient).everything


def test_a_damaged_export_job_of_an_old_case_holds_all_recording_instead_of_stopping_the_start(
        rclient: redis.Redis, api_settings: ApiSettings) -> None:
    """A readable clip item whose export job lost a field used to raise at start (the API did not start); now the
    case holds all recording."""
    rec = api_settings.recordings_dir
    far = _segment(rclient, rec, T0 + 7200, T0 + 7260)
    rclient.hset("export:job1", mapping={"status": "done", "start": repr(T0), "end": repr(T0 + 60)})  # no camera
    _old_case(rclient, "oldclip", {"clip:job1": json.dumps({"kind": "clip", "ref": "job1", "added_by": "inv",
                                                            "added_at": T0}).encode()})
    with TestClient(create_app(api_settings)):
        pass
    assert holds.held(rclient).everything
    _retention(rclient, rec)
    assert _indexed(rclient, far)


def test_closing_the_case_lifts_the_hold_of_its_damaged_item(client: TestClient, tokens: dict,
                                                             rclient: redis.Redis, api_settings: ApiSettings) -> None:
    """Holding all recording is not for ever: closing the case lets retention delete it again."""
    rec = api_settings.recordings_dir
    far = _segment(rclient, rec, T0 + 7200, T0 + 7260)
    _old_case(rclient, "oldbroken", {"face:gone": b"\xff\xfe"})
    with TestClient(create_app(api_settings)):
        pass
    assert holds.held(rclient).everything
    assert client.post("/api/cases/oldbroken/close", headers=tokens["adm"]).status_code == 200
    assert not holds.held(rclient).everything
    _retention(rclient, rec)
    assert not _indexed(rclient, far)
