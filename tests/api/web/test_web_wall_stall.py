"""The wall's live player in a real headless Chromium against the real API and a real RTSP test camera whose stream
stalls (its source process stopped: the RTSP connection stays open, no packet comes): the tile must not present the
frozen last frame as live video while the server waits out its stall timeout. It says "offline" with the reason
"no video", its last frame dimmed, and becomes live again by itself when the camera sends again."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM, shot, wait, wait_until
from tests.api.web.test_web_ui import browser as browser  # noqa: F401 - the same Chromium fixture
from tests.api.web.test_web_wall import PASSWORD, TILE, WallServer, playing, sign_in

CLIP = "thai_bangkok_night_dashcam_bus"
SERVER_STALL_S = 120  # the server's stall and RTSP read timeouts: far beyond the waits of this test
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]


@dataclass
class StallServer(WallServer):
    cams: object


@pytest.fixture()
def stall_server(shared_dir: Path, redis_url: str, tmp_path: Path) -> Iterator[StallServer]:
    """One RTSP camera, the API under uvicorn (the server notices a stall only after SERVER_STALL_S: its stall timeout
    and ffmpeg's RTSP read timeout) and an operator."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.testcams import TestCameraServer

    client = redis.Redis.from_url(redis_url)
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP], aliases={"yard": CLIP},
                          sub_streams=False) as cams:
        config = tmp_path / "cameras.yaml"
        config.write_text(f"ingest: {{stall_timeout_s: {SERVER_STALL_S}, connect_timeout_s: {SERVER_STALL_S}}}\n"
                          f"cameras:\n  - {{id: yard, name: Yard, url: '{cams.url('yard')}'}}\n", encoding="utf-8")
        ApiStore(client, scrypt_n=2**10).put_user("op", "operator", PASSWORD)
        settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config,
                               scrypt_n=2**10, login_max_per_user=50, login_max_per_ip=200, live_linger_s=1.0,
                               live_preload="none", live_stale_s=60)  # the page's own check, not the server's
        app = create_app(settings)
        try:
            with served(app, "uvicorn-wall-stall") as url:
                yield StallServer(url=url, client=client, app=app, cams=cams)
        finally:
            client.close()


def _state(driver) -> tuple[str, str, float]:
    """(tile state, note text, the video's computed opacity) of the yard tile."""
    return tuple(driver.execute_script(
        "const t = document.querySelector(arguments[0]); const v = t.querySelector('video');"
        "return [t.dataset.state, t.querySelector('.wall-note').textContent, +getComputedStyle(v).opacity];",
        TILE.format("yard")))


def test_a_stalled_camera_is_not_shown_as_live_and_recovers(browser, stall_server):  # noqa: F811
    sign_in(browser, stall_server, "op")
    wait_until(browser, lambda d: playing(d, "yard", 0.5), 60, "the yard tile did not play")
    wait(browser, f'{TILE.format("yard")}[data-state="live"]')
    assert _state(browser)[2] == 1.0
    source = stall_server.cams._sources["yard"]  # noqa: SLF001 - the test camera's own source process
    pid = source.process.pid
    os.kill(pid, signal.SIGSTOP)  # the camera hangs: its RTSP session stays open, no packet comes
    try:
        stalled = wait_until(browser, lambda d: _state(d)[0] == "offline" and _state(d), 40,
                             "a stalled camera's frozen frame stayed under a live badge")
        assert stalled[1] == "No video from the camera", stalled
        assert stalled[2] < 0.5, stalled  # the last frame is dimmed
        # the server had not yet noticed (its stall timeout is far away): the page found it by itself
        assert stall_server.app.state.live_hub.sources[("yard", "main")].status == "live"
        shot(browser, "wall_stalled_camera")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(browser, lambda d: _state(d)[0] == "live", 60, "the tile did not become live again by itself")
    before = playing(browser, "yard")
    wait_until(browser, lambda d: playing(d, "yard", (before or {"t": 0})["t"] + 1.0), 30,
               "the playhead did not advance after the camera came back")
    assert _state(browser)[2] == 1.0


SILENT_SERVER = """
// a server that accepts the stream, says live, then sends nothing more (a half-open connection after a network
// cut); returns the player's states and how many sockets it opened
const done = arguments[0];
import('/views/wall.js').then((m) => {
  const Real = window.WebSocket;
  let sockets = 0;
  class Fake extends EventTarget {
    constructor() { super(); sockets += 1; this.readyState = 0;
      setTimeout(() => { this.dispatchEvent(new Event('open'));
        this.dispatchEvent(new MessageEvent('message', {data: JSON.stringify(
          {type: 'status', status: 'live', reason: '', reason_code: '', mode: 'remux'})})); }, 0); }
    send() {}
    close() {}
  }
  window.WebSocket = Fake;
  const states = [];
  const player = new m.LivePlayer(document.createElement('video'), 'gate', 'main', {
    onState: (s, info) => { if (s !== 'paused') states.push([s, info.code || '']); } });
  player.stallMs = 300;
  player.reconnectMs = 900;
  player.start();
  const until = Date.now() + 20000;
  const check = () => {
    if (sockets >= 2 || Date.now() > until) {
      player.destroy(); window.WebSocket = Real; done({states, sockets});
    } else setTimeout(check, 100);
  };
  check();
});
"""


@pytest.fixture()
def page(browser, redis_url: str, tmp_path: Path) -> Iterator[object]:  # noqa: F811
    from api.main import create_app
    from api.settings import ApiSettings

    config = tmp_path / "cameras.yaml"
    config.write_text("cameras: []\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           live_preload="none")
    with served(create_app(settings), "wall-silent") as base:
        browser.get(base + "/")
        yield browser


def test_a_live_stream_that_goes_silent_is_reported_then_reconnected(page) -> None:
    """No fragment after "live": offline ("no video") after the stall time, a new connection after the longer one
    (a dead, half-open connection never closes by itself)."""
    page.set_script_timeout(40)
    got = page.execute_async_script(SILENT_SERVER)
    assert got["sockets"] >= 2, got
    assert ["live", ""] in got["states"], got
    assert got["states"][got["states"].index(["live", ""]) + 1] == ["offline", "no_video"], got
    assert got["states"].count(["connecting", ""]) >= 2, got
