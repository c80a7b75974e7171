"""Playback slots and ffmpeg processes are always given back: a client that goes away before its stream starts
(a real uvicorn server, real sockets closed 0-180 ms after the request), a player that stops reading (stall limit),
and one user cannot take every slot (CCTV_PLAYBACK_STREAMS_PER_USER)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.web.serving import served
from tests.playback_support import record

pytestmark = pytest.mark.timeout(240)

CAM = "bkk-night-01"
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"
PASSWORD = "correct horse battery"
WAIT_S = 20.0  # generous: a loaded CI machine; a working server needs well under a second


@pytest.fixture()
def api_settings(api_settings: ApiSettings) -> ApiSettings:
    """The shared settings with a per-user playback cap of 2."""
    return api_settings.model_copy(update={"playback_streams_per_user": 2})


def _ffmpeg_children() -> list[psutil.Process]:
    """ffmpeg processes of this test process still running (zombies waiting to be reaped do not count)."""
    out = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if child.name() == "ffmpeg" and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def _until(check, what: str) -> None:  # noqa: ANN001 (a predicate)
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")
        time.sleep(0.05)


def _early_close(port: int, path: str, token: str, delay_s: float) -> None:
    """Send a stream request and close the connection ``delay_s`` later, reading nothing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        time.sleep(delay_s)


def test_clients_leaving_before_the_stream_starts_leave_no_ffmpeg_and_no_slot(
        api_settings: ApiSettings, rclient: redis.Redis, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import api.routes.recordings as routes

    segments = record(rclient, api_settings.recordings_dir, CAM, shared_dir / "data" / "videos" / DASHCAM,
                      time.time() - 200)
    real_plan = routes.plan_playback

    def slow_plan(*args, **kwargs):
        time.sleep(0.2)  # the clients close while (or right after) their stream is planned
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(routes, "plan_playback", slow_plan)
    monkeypatch.setattr(routes, "MAX_STREAMS", 4)
    settings = api_settings.model_copy(update={"playback_streams_per_user": 4})
    app = create_app(settings)
    ApiStore(rclient, scrypt_n=16).put_user("op", "operator", PASSWORD, None)
    with served(app, "playback-release") as base:
        login = httpx.post(f"{base}/api/auth/login", json={"username": "op", "password": PASSWORD}, timeout=30)
        token = login.json()["access_token"]
        port = int(base.rsplit(":", 1)[1])
        path = f"/api/recordings/{CAM}/stream?t={segments[0].start + 1:.3f}&max_s=600"
        rng = random.Random(7)
        for _ in range(3):  # waves of 4 (the whole limit): each wave must give every slot back
            threads = [threading.Thread(target=_early_close, args=(port, path, token, rng.uniform(0, 0.18)))
                       for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            time.sleep(0.5)  # the requests in flight reach their response
            _until(lambda: not _ffmpeg_children(), "every ffmpeg of the abandoned streams stopped")
        r = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200, r.text  # not 429: no slot was kept
        assert r.content[4:8] == b"ftyp"
        _until(lambda: routes._slots(app).total == 0, "the slot count returned to 0")
        assert routes._slots(app).per_user == {}
        _until(lambda: not _ffmpeg_children(), "no ffmpeg left")


def test_a_stalled_reader_is_ended_and_gives_its_slot_and_ffmpeg_back() -> None:
    from api.routes.recordings import PlaybackLease, PlaybackResponse, PlaybackSlots

    async def scenario() -> tuple[float, PlaybackSlots, asyncio.subprocess.Process]:
        slots = PlaybackSlots()
        assert slots.acquire("op", 2, 32) is None
        lease = PlaybackLease(slots, "op")
        # an endless producer standing in for ffmpeg
        lease.proc = await asyncio.create_subprocess_exec("yes", stdout=asyncio.subprocess.PIPE)
        response = PlaybackResponse(lease, b"first", 0.5, {})
        sent: list[dict] = []
        never = asyncio.Event()

        async def send(message: dict) -> None:
            sent.append(message)
            if len(sent) >= 4:
                await never.wait()  # the client stopped reading: the send never completes

        async def receive() -> dict:
            await never.wait()  # the client is still connected
            return {"type": "http.disconnect"}

        scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "path": "/api/recordings/x/stream"}
        began = time.monotonic()
        await asyncio.wait_for(response(scope, receive, send), 15)
        took = time.monotonic() - began
        await asyncio.wait_for(lease.proc.wait(), 10)  # stopped, its pipe read to the end: nothing left open
        return took, slots, lease.proc

    took, slots, proc = asyncio.run(scenario())
    assert took < 10
    assert slots.total == 0 and slots.per_user == {}
    assert proc.returncode is not None


def test_one_user_cannot_take_every_playback_slot(client, tokens, rclient, api_settings, shared_dir,
                                                  monkeypatch) -> None:
    import api.routes.recordings as routes

    segments = record(rclient, api_settings.recordings_dir, CAM, shared_dir / "data" / "videos" / DASHCAM,
                      time.time() - 200)
    real_plan = routes.plan_playback

    def slow_plan(*args, **kwargs):
        time.sleep(3.0)  # every request arrives while the others hold their slots
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(routes, "plan_playback", slow_plan)
    t = segments[1].start + 1.0
    results: list[tuple[str, int, str]] = []

    def play(who: str) -> None:
        r = client.get(f"/api/recordings/{CAM}/stream", params={"t": t, "max_s": 10}, headers=tokens[who])
        results.append((who, r.status_code, r.text if r.status_code != 200 else ""))

    threads = [threading.Thread(target=play, args=(who,)) for who in ("op", "op", "op", "inv")]
    for thread in threads:
        thread.start()
        time.sleep(0.2)  # in this order: the third of op's is the one refused
    for thread in threads:
        thread.join(120)
    codes = sorted((who, code) for who, code, _ in results)
    assert codes == [("inv", 200), ("op", 200), ("op", 200), ("op", 429)], results
    refusal = next(text for _, code, text in results if code == 429)
    assert "CCTV_PLAYBACK_STREAMS_PER_USER" in refusal and "2 playback streams" in refusal
    assert routes._slots(client.app).total == 0
    monkeypatch.setattr(routes, "plan_playback", real_plan)
    r = client.get(f"/api/recordings/{CAM}/stream", params={"t": t, "max_s": 10}, headers=tokens["op"])
    assert r.status_code == 200  # given back


def test_alert_markers_sit_at_the_events_frame_time(client, tokens, rclient) -> None:
    from pipeline.events import Alert
    from pipeline.store import EventStore

    now = time.time()
    frame = now - 120.0  # the event's frame; the alert was raised (stored) 100 s later
    alert = Alert(kind="plate", watchlist_id="wl", entry_id="e1", event_id="ev-1", camera_id=CAM, label="1กอ5180",
                  created_at=now - 20.0, frame_time=frame)
    old = Alert(kind="plate", watchlist_id="wl", entry_id="e2", event_id="ev-2", camera_id=CAM, label="2กก2",
                created_at=now - 10.0)  # raised before alerts carried the frame time
    store = EventStore(rclient)
    assert store.publish_alert(alert) and store.publish_alert(old)
    r = client.get(f"/api/recordings/{CAM}/timeline", params={"start": now - 600, "end": now + 60},
                   headers=tokens["op"])
    assert r.status_code == 200, r.text
    marks = {m["event_id"]: m["time"] for m in r.json()["markers"] if m["kind"] == "alert"}
    assert marks == {"ev-1": pytest.approx(frame, abs=1e-3), "ev-2": pytest.approx(now - 10.0, abs=1e-3)}
