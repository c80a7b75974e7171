"""A downloaded export is the bytes that were checked: the file is opened once, hashed through that open file and
served from it, so a clip swapped at its path between the check and the response is not what is sent (the response
still matches its ``X-Content-SHA256``), Range requests included, and a clip written in place while it is sent is
cut off (and audited) instead of being sent whole.

Real Redis, real recordings, real exports by ffmpeg (see :mod:`tests.api.test_api_export_integrity`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.store import ApiStore
from pipeline.recording.index import Segment
from tests.api.test_api_export_integrity import HEADER, _altered_audit, _exported, _files, segments  # noqa: F401

pytestmark = pytest.mark.timeout(300)


def _after_the_check(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> list[bool]:
    """Run ``act`` once, when the download is audited: after the clip was checked, before its response is sent."""
    real = ApiStore.audit
    done: list[bool] = []

    def audit(self: ApiStore, user: str, action: str, params: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        real(self, user, action, params, *args, **kwargs)
        if action == "export_download" and not done:
            done.append(True)
            act()

    monkeypatch.setattr(ApiStore, "audit", audit)
    return done


def _swap(mp4: Path) -> bytes:
    """Put another file (the clip with one byte changed) at the clip's path, as ``rename`` does; the clip's bytes."""
    original = mp4.read_bytes()
    forged = bytearray(original)
    forged[len(forged) // 2] ^= 0xFF
    other = mp4.with_name("forged.tmp")
    other.write_bytes(bytes(forged))
    os.replace(other, mp4)
    return original


@pytest.mark.parametrize("ranged", [False, True], ids=["whole", "range"])
def test_a_clip_swapped_after_the_check_is_not_what_is_sent(client: TestClient, tokens: dict, rclient: redis.Redis,
                                                            segments: list[Segment],  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch, ranged: bool) -> None:
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 5)
    mp4, _ = _files(rclient, job["id"])
    original = mp4.read_bytes()
    middle = len(original) // 2
    done = _after_the_check(monkeypatch, lambda: _swap(mp4))
    headers = {**tokens["inv"], **({"Range": f"bytes={middle - 100}-{middle + 99}"} if ranged else {})}
    clip = client.get(f"/api/exports/{job['id']}/download", headers=headers)
    assert done and mp4.read_bytes() != original  # really swapped between the check and the response
    assert clip.headers[HEADER] == job["sha256"] == hashlib.sha256(original).hexdigest()
    if ranged:
        assert clip.status_code == 206, clip.status_code
        assert clip.headers["content-range"] == f"bytes {middle - 100}-{middle + 99}/{len(original)}"
        assert clip.content == original[middle - 100:middle + 100]
    else:
        assert clip.status_code == 200 and clip.content == original
    assert _altered_audit(rclient) == []


def test_a_range_of_an_intact_clip_is_served(client: TestClient, tokens: dict, rclient: redis.Redis,
                                             segments: list[Segment]) -> None:  # noqa: F811
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 3)
    mp4, _ = _files(rclient, job["id"])
    data = mp4.read_bytes()
    clip = client.get(f"/api/exports/{job['id']}/download", headers={**tokens["inv"], "Range": "bytes=-64"})
    assert clip.status_code == 206 and clip.content == data[-64:] and clip.headers[HEADER] == job["sha256"]
    both = client.get(f"/api/exports/{job['id']}/download", headers={**tokens["inv"], "Range": "bytes=0-7,16-31"})
    assert both.status_code == 206 and both.headers["content-type"].startswith("multipart/byteranges")
    assert data[0:8] in both.content and data[16:32] in both.content


def test_a_clip_written_in_place_while_it_is_sent_is_cut_off_and_audited(
        client: TestClient, tokens: dict, rclient: redis.Redis, segments: list[Segment],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    job = _exported(client, tokens["inv"], segments[0].start + 1, segments[0].start + 5)
    mp4, _ = _files(rclient, job["id"])
    original = mp4.read_bytes()

    def write_in_place() -> None:
        with mp4.open("r+b") as fh:  # the same file (inode), not a new one at its path
            fh.seek(len(original) // 2)
            fh.write(bytes([original[len(original) // 2] ^ 0xFF]))

    done = _after_the_check(monkeypatch, write_in_place)
    try:
        clip = client.get(f"/api/exports/{job['id']}/download", headers=tokens["inv"])
    except Exception:  # noqa: BLE001 - the server cut the response off (the test client re-raises its error)
        sent = None
    else:
        sent = clip.content
    assert done
    assert sent is None or len(sent) < len(original), "the altered clip was sent whole"
    [entry] = _altered_audit(rclient)
    assert entry["params"]["job_id"] == job["id"] and entry["params"]["while_sending"] in (True, "True", "true", 1)
