"""The wall in a real headless Chromium against the real API and a real RTSP test camera:

- a camera disabled while its tile plays is "No access" (the server's ``end`` ``removed``, close 4404), and when it
  is enabled again the tile asks again by itself (every DENIED_RETRY_MS, shortened here) and plays, without a reload;
- a frozen camera (its source process stopped: the RTSP connection stays open, no video) is reported offline by the
  server itself (CCTV_LIVE_STALE_S), so a wall opened meanwhile never shows its old frames as live."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
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


@pytest.fixture()
def recover_server(shared_dir: Path, redis_url: str, tmp_path: Path) -> Iterator[WallServer]:
    """One RTSP camera, the API under uvicorn (preload loop on, so that a test can hand it a new configuration as a
    pushed one; a stale bound of 1 s, a stall timeout of SERVER_STALL_S) and an operator."""
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
                               live_preload="layouts", live_preload_default_wall=False, live_stale_s=1.0)
        app = create_app(settings)
        try:
            with served(app, "uvicorn-wall-recover") as url:
                server = WallServer(url=url, client=client, app=app)
                server.cams = cams  # type: ignore[attr-defined]
                yield server
        finally:
            client.close()


def _state(driver) -> tuple[str, str]:
    """(state, note text) of the yard tile."""
    return tuple(driver.execute_script(
        "const t = document.querySelector(arguments[0]);"
        "return t ? [t.dataset.state, t.querySelector('.wall-note').textContent] : ['', ''];", TILE.format("yard")))


def test_a_re_enabled_camera_plays_again_without_a_reload(browser, recover_server):  # noqa: F811
    from api.routes.live import _wake_preload

    app = recover_server.app
    sign_in(browser, recover_server, "op")
    wait_until(browser, lambda d: playing(d, "yard", 0.5), 60, "the yard tile did not play")
    browser.execute_script("window.__wall.tiles[0].player.deniedRetryMs = 1500;")  # 30 s in the page
    before = app.state.camera_config
    disabled = before.model_copy(update={"cameras": [c.model_copy(update={"enabled": False}) for c in before.cameras]})
    app.state.camera_config = disabled
    _wake_preload(app)  # the preload loop hands the new configuration to the hub (as a pushed one)
    wait(browser, f'{TILE.format("yard")}[data-state="denied"]', timeout=30)
    time.sleep(4)  # several quiet retries are refused meanwhile: the tile stays "No access"
    assert _state(browser)[0] == "denied", _state(browser)
    shot(browser, "wall_camera_disabled")
    app.state.camera_config = before
    _wake_preload(app)
    wait_until(browser, lambda d: _state(d)[0] == "live", 60, "the re-enabled camera's tile stayed refused")
    now = playing(browser, "yard")
    wait_until(browser, lambda d: playing(d, "yard", (now or {"t": 0})["t"] + 1.0), 60,
               "the re-enabled camera's video did not play")
    shot(browser, "wall_camera_enabled_again")


def test_a_wall_opened_on_a_frozen_camera_never_shows_it_live(browser, recover_server):  # noqa: F811
    sign_in(browser, recover_server, "op")
    wait_until(browser, lambda d: playing(d, "yard", 0.5), 60, "the yard tile did not play")
    source = recover_server.app.state.live_hub.sources[("yard", "main")]
    pid = recover_server.cams._sources["yard"].process.pid  # noqa: SLF001 - the test camera's own source process
    os.kill(pid, signal.SIGSTOP)  # the camera hangs: its RTSP session stays open, no packet comes
    try:
        wait_until(browser, lambda d: _state(d)[0] == "offline", 40, "the frozen camera's tile stayed live")
        assert source.status == "offline" and source.reason_code == "no_video"  # the server said so, not the page
        assert source.pid is not None  # long before the server's stall timeout
        shot(browser, "wall_frozen_camera_server_offline")
        browser.refresh()  # a wall opened now: a newcomer to the frozen stream
        seen = []
        deadline = time.monotonic() + 10  # beyond the page's own 4 s check: what the server alone says
        while time.monotonic() < deadline:
            state = _state(browser)[0]
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.1)
        assert "live" not in seen and "offline" in seen, seen
        assert _state(browser) == ("offline", "No video from the camera"), _state(browser)
        shot(browser, "wall_frozen_camera_newcomer")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(browser, lambda d: _state(d)[0] == "live", 60, "the tile did not become live again by itself")
    now = playing(browser, "yard")
    wait_until(browser, lambda d: playing(d, "yard", (now or {"t": 0})["t"] + 1.0), 60,
               "the playhead did not advance after the camera came back")
