"""Footage held by a worker host that is down: the export and the recorded-playback routes answer 503 with
Retry-After and name the host (never a 500); the live-host paths are in tests/cluster/test_recordings_across_hosts.py
and tests/pipeline/recording/test_segments_across_hosts.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.recording.index import Segment, add_segment, index_key, register_host
from pipeline.settings import Settings

CAM = "bkk-night-01"  # a camera of cameras.yaml


@pytest.fixture()
def footage_on_a_dead_host(rclient: redis.Redis, redis_url: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> Iterator[Segment]:
    with socket.socket() as sock:  # a port nothing listens on: the worker host is down
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    rclient.delete(index_key(CAM))
    segment = Segment(f"{CAM}/2026-12-01/10/{CAM}_20261201T100000.000Z.mkv", 1_764_583_200.0, 1_764_583_260.0,
                      5_000_000, host="worker-9")
    add_segment(rclient, CAM, segment)
    register_host(rclient, "worker-9", f"http://127.0.0.1:{dead}")
    settings = Settings(redis_url=redis_url, host_name="api-1", internal_token="t" * 32,
                        recordings_dir=tmp_path / "rec")
    monkeypatch.setattr("pipeline.recording.locate.get_settings", lambda: settings)
    yield segment
    rclient.delete(index_key(CAM))


def test_export_of_footage_on_a_dead_host_is_503_naming_it(client: TestClient, tokens: dict,
                                                          footage_on_a_dead_host: Segment) -> None:
    seg = footage_on_a_dead_host
    r = client.post("/api/exports", json={"camera_id": CAM, "start": seg.start + 5, "end": seg.start + 20},
                    headers=tokens["inv"])
    assert r.status_code == 503, r.text
    assert "'worker-9'" in r.json()["detail"] and "cannot be reached" in r.json()["detail"]
    assert r.headers["retry-after"] == "30"


def test_playback_of_footage_on_a_dead_host_is_503_naming_it(client: TestClient, tokens: dict,
                                                            footage_on_a_dead_host: Segment) -> None:
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": footage_on_a_dead_host.start + 5, "max_s": 30},
                   headers=tokens["op"])
    assert r.status_code == 503, r.text
    assert "'worker-9'" in r.json()["detail"] and r.headers["retry-after"] == "30"
