"""Recorded playback at the live edge, in a real headless Chromium against the real API and real recordings: a
player that reaches the newest indexed segment says it is waiting for new recording (not a frozen "playing"), keeps
asking for what follows and plays on once newer segments are indexed; the clock shows ms before the time zone."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.api.web import test_web_ui
from tests.api.web.serving import served
from tests.api.web.test_web_ui import CAMERAS_YAML, CHROMEDRIVER, CHROMIUM, PASSWORD, Server, login, shot, wait_until
from tests.playback_support import record

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]

browser = test_web_ui.browser  # the same headless Chromium fixture (one per module)
CAM = "bkk-night-01"
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"


@pytest.fixture()
def edge_server(shared_dir: Path, redis_server, tmp_path: Path) -> Iterator[tuple[Server, Path, list]]:
    """The API with one 24 s recording of CAM that ended 16 s ago (the newest indexed footage)."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    recordings, config = tmp_path / "recordings", tmp_path / "cameras.yaml"
    recordings.mkdir()
    config.write_text(CAMERAS_YAML, encoding="utf-8")
    segments = record(client, recordings, CAM, shared_dir / "data" / "videos" / DASHCAM, time.time() - 40, tag="a")
    ApiStore(client, scrypt_n=2**10).put_user("op", "operator", PASSWORD, None)
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=recordings, config_path=config, scrypt_n=2**10,
                           login_max_per_user=50, login_max_per_ip=200)
    try:
        with served(create_app(settings), "uvicorn-playback-edge", join_timeout_s=15) as url:
            yield Server(url=url, redis_url=redis_server.url, client=client), recordings, segments
    finally:
        client.close()


def _player(driver) -> dict:
    return driver.execute_script(
        "const p = window.__cctvPlayback && window.__cctvPlayback.players.get(arguments[0]);"
        "return p ? {state: p.el.dataset.state, status: p.status.hidden ? '' : p.status.textContent,"
        " pos: p.position(), clock: p.clock.textContent, trace: p.trace.slice(-8)} : null;", CAM)


def test_live_edge_waits_visibly_and_plays_on_when_newer_footage_is_indexed(browser, edge_server, shared_dir):
    server, recordings, first = edge_server
    login(browser, server, "op")
    start = first[-2].start  # the last two segments (about 10 s) are left to play
    browser.get(f"{server.url}/#/playback?camera={CAM}&t={start:.3f}&play=1")
    wait_until(browser, lambda d: (_player(d) or {}).get("state") == "playing", 30, "playback started")
    clock = wait_until(browser, lambda d: (_player(d) or {}).get("clock"), 10, "the clock shows")
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} (UTC|GMT[+-]?[\d:]*)$", clock), clock  # ms before the zone
    edge = wait_until(browser, lambda d: (p := _player(d)) and p["state"] == "edge" and p, 40,
                      "the player says it waits at the live edge")
    assert "waiting for new recording" in edge["status"], edge
    assert edge["pos"] == pytest.approx(first[-1].end, abs=1.0), edge
    shot(browser, "playback-live-edge")
    # newer footage is indexed right after the old one: the player asks again on its own and plays on
    record(server.client, recordings, CAM, shared_dir / "data" / "videos" / DASHCAM, first[-1].end, tag="b")
    wait_until(browser, lambda d: (p := _player(d)) and p["pos"] and p["pos"] > first[-1].end + 2
               and p["state"] == "playing", 60, "playback went on into the newer recording")
    assert not (_player(browser) or {}).get("status")
