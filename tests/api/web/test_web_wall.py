"""The video wall in a real headless Chromium against the real API, a real Redis and real RTSP test cameras: live
tiles play (the playhead advances, the picture has a size, a frame drawn to a canvas is not blank), an offline
camera says so, the newest plate read shows over its tile, the layout is saved per user, a tile enlarges, hidden
tabs stop streaming, and a camera-limited user gets no video of another camera. Screenshots go to
``test-artifacts/web/``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM, css, page_errors, shot, wait, wait_until
from tests.api.web.test_web_ui import browser as browser  # noqa: F401 - the same Chromium fixture

CLIP = "thai_bangkok_night_dashcam_bus"  # 1280x720 night traffic (sub-stream 640x360)
PASSWORD = "correct-horse-42"
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]


@dataclass
class WallServer:
    url: str
    client: redis.Redis
    app: object


@pytest.fixture(scope="module")
def wall_server(shared_dir: Path, redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WallServer]:
    """RTSP cameras (two streams of the night footage), a dead camera, the API under uvicorn, users and a plate read."""

    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.events import PlateCandidate, PlateEvent
    from pipeline.store import EventStore
    from pipeline.testcams import TestCameraServer

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    base = tmp_path_factory.mktemp("wall")
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP], aliases={"gate": CLIP}) as cams:
        config = base / "cameras.yaml"
        config.write_text("cameras:\n"
                          f"  - {{id: lobby, name: Lobby entrance, url: '{cams.url(CLIP)}',"
                          f" sub_stream: '{cams.sub_url(CLIP)}'}}\n"
                          f"  - {{id: gate, name: Gate road, url: '{cams.url('gate')}'}}\n"
                          "  - {id: dead, name: Loading dock, url: 'rtsp://127.0.0.1:9/none'}\n", encoding="utf-8")
        users = ApiStore(client, scrypt_n=2**10)
        users.put_user("op", "operator", PASSWORD)
        users.put_user("lim", "operator", PASSWORD, ["lobby"])
        now = time.time()
        event = PlateEvent(camera_id="lobby", track_id=1, started_at=now - 3, ended_at=now - 1, frame_time=now - 2,
                           plate_text="1กอ5180", province="กรุงเทพมหานคร", province_latin="Bangkok", confidence=0.93,
                           candidates=[PlateCandidate(text="1กอ5180", score=0.93)], vehicle_class="car",
                           plate_box=[10, 10, 60, 30])
        assert EventStore(client).publish_plate_event(event)
        settings = ApiSettings(redis_url=redis_server.url, recordings_dir=base / "rec", config_path=config,
                               scrypt_n=2**10, login_max_per_user=50, login_max_per_ip=200, live_linger_s=1.0,
                               live_preload_default_wall=False)  # the tests watch streams start and stop
        app = create_app(settings)
        try:
            with served(app, "uvicorn-wall-test") as url:
                yield WallServer(url=url, client=client, app=app)
        finally:
            client.close()


def sign_in(driver, server: WallServer, username: str) -> None:
    driver.get(server.url + "/#/wall")
    driver.execute_script("sessionStorage.clear(); localStorage.clear(); localStorage.setItem('cctv.lang', 'en');")
    driver.refresh()
    wait(driver, "#login-username").send_keys(username)
    css(driver, "#login-password")[0].send_keys(PASSWORD)
    css(driver, "#login-submit")[0].click()
    wait(driver, "#nav a")


TILE = '.wall-tile[data-camera-id="{}"]'
# what is full screen: "grid+exit" (the wall with its exit button), "grid" (the wall alone), "other" or "" (none)
FULL = """
const f = document.fullscreenElement, grid = document.getElementById('wall-grid');
const exit = document.getElementById('wall-exit-fullscreen');
if (!f) return '';
if (!grid || !f.contains(grid)) return 'other';
return exit && f.contains(exit) ? 'grid+exit' : 'grid';
"""
PLAYING = """
const v = document.querySelector(arguments[0] + ' video');
if (!v || !v.videoWidth || v.readyState < 2) return null;
const c = document.createElement('canvas'); c.width = 64; c.height = 36;
const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 36);
const px = g.getImageData(0, 0, 64, 36).data; let sum = 0, sq = 0, n = 0;
for (let i = 0; i < px.length; i += 4) { const y = (px[i] + px[i+1] + px[i+2]) / 3; sum += y; sq += y * y; n++; }
const mean = sum / n;
return {t: v.currentTime, w: v.videoWidth, h: v.videoHeight, mean, std: Math.sqrt(sq / n - mean * mean),
        paused: v.paused};
"""


def playing(driver, camera: str, min_time: float = 0.0):
    """The tile's video facts once it shows a picture beyond ``min_time`` (else None)."""
    facts = driver.execute_script(PLAYING, TILE.format(camera))
    return facts if facts and facts["t"] > min_time else None


def hub_upstreams(server: WallServer) -> dict:
    hub = getattr(server.app.state, "live_hub", None)
    return {} if hub is None else {k: s.pid for k, s in hub.sources.items() if s.pid}


def test_wall_plays_live_tiles_shows_offline_and_plate_and_saves_layout(browser, wall_server):  # noqa: F811
    sign_in(browser, wall_server, "op")
    wait(browser, "#wall-grid .wall-tile")
    assert browser.execute_script("return document.getElementById('wall-grid').dataset.grid") == "2x2"
    assert [e.get_attribute("data-camera-id") for e in css(browser, "#wall-grid .wall-tile")] == \
        ["lobby", "gate", "dead", ""]
    # live tiles play: the playhead advances, the picture has a size, a captured frame is not blank
    first = wait_until(browser, lambda d: playing(d, "lobby"), 60, "the lobby tile did not play")
    later = wait_until(browser, lambda d: playing(d, "lobby", first["t"] + 1.0), 30, "the playhead did not advance")
    assert (later["w"], later["h"]) == (640, 360)  # a 2x2 wall shows the sub-stream
    assert later["std"] > 8 and 5 < later["mean"] < 250, later  # a real night-traffic frame, not black or flat
    gate = wait_until(browser, lambda d: playing(d, "gate", 1.0), 60, "the gate tile did not play")
    assert (gate["w"], gate["h"]) == (1280, 720)  # no sub-stream: the main one
    wait(browser, f'{TILE.format("lobby")}[data-state="live"]')
    # the dead camera says so, with the reason, and keeps trying
    dead = wait(browser, f'{TILE.format("dead")}[data-state="offline"] .wall-note', timeout=60)
    assert "refused the connection" in dead.text
    # the newest plate read of the lobby camera over its tile
    overlay = wait(browser, f'{TILE.format("lobby")} .wall-overlay[data-kind="plate"]', timeout=20)
    assert "1กอ5180" in overlay.text
    shot(browser, "wall")
    # one upstream per camera stream for the whole wall
    ups = hub_upstreams(wall_server)
    assert set(ups) >= {("lobby", "sub"), ("gate", "main")} and len(set(ups.values())) == len(ups)
    # click to enlarge: the lobby tile fills the wall on the main stream, the others stop streaming
    css(browser, TILE.format("lobby"))[0].click()
    wait_until(browser, lambda d: (playing(d, "lobby") or {}).get("w") == 1280, 60, "enlarged tile not on main")
    assert css(browser, ".wall-enlarged")[0].get_attribute("data-camera-id") == "lobby"
    assert "1กอ5180" in wait(browser, '.wall-enlarged .wall-overlay[data-kind="plate"]').text
    wait_until(browser, lambda d: d.execute_script(
        f"return document.querySelector('{TILE.format('gate')}').dataset.state") == "paused", 15, "gate kept going")
    shot(browser, "wall_enlarged")
    css(browser, TILE.format("lobby"))[0].click()
    # a 3x3 layout with the gate first, saved on the server for this user
    browser.execute_script("document.querySelector('.wall-grid-btn[data-grid=\"3x3\"]').click()")
    wait(browser, "#wall-grid[data-grid='3x3']")
    select = css(browser, '.wall-tile[data-index="3"] select')[0]
    from selenium.webdriver.support.ui import Select

    Select(select).select_by_value("gate")
    css(browser, "#wall-save")[0].click()
    wait_until(browser, lambda d: json.loads(wall_server.client.get("wall:layout:op") or "{}").get("grid") == "3x3",
               15, "layout not saved")
    saved = json.loads(wall_server.client.get("wall:layout:op"))
    assert saved["tiles"][:4] == ["lobby", "gate", "dead", "gate"]
    browser.refresh()
    wait(browser, "#wall-grid[data-grid='3x3']")
    assert css(browser, '.wall-tile[data-index="3"]')[0].get_attribute("data-camera-id") == "gate"
    wait_until(browser, lambda d: playing(d, "gate", 0.5), 60, "the saved layout did not play")
    shot(browser, "wall_3x3")
    assert not page_errors(browser)


def test_hidden_tab_stops_streaming(browser, wall_server):  # noqa: F811
    sign_in(browser, wall_server, "lim")
    wait_until(browser, lambda d: playing(d, "lobby", 0.5), 60, "the lobby tile did not play")
    viewers = lambda: wall_server.app.state.live_hub.sources[("lobby", "main")].viewers  # noqa: E731
    assert len(viewers()) == 1
    browser.execute_script("Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
                           "document.dispatchEvent(new Event('visibilitychange'));")
    wait_until(browser, lambda d: not viewers(), 15, "a hidden tab kept its live stream")
    browser.execute_script("Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
                           "document.dispatchEvent(new Event('visibilitychange'));")
    wait_until(browser, lambda d: len(viewers()) == 1, 15, "the stream did not resume when the tab came back")


def test_camera_limited_user_gets_no_other_camera(browser, wall_server):  # noqa: F811
    sign_in(browser, wall_server, "lim")
    wait(browser, "#wall-grid .wall-tile")
    # only the permitted camera is on the wall and in the choices
    assert [e.get_attribute("data-camera-id") for e in css(browser, "#wall-grid .wall-tile")] == ["lobby"]
    options = [o.get_attribute("value") for o in css(browser, ".wall-tile select option")]
    assert options == ["", "lobby"]
    # a page script of this user asking for another camera directly is refused, with no video
    result = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket(`ws://${location.host}/api/live/gate/ws`);
        ws.binaryType = 'arraybuffer'; let binary = 0;
        ws.onopen = () => ws.send(JSON.stringify({token: sessionStorage.getItem('cctv.token')}));
        ws.onmessage = (e) => { if (typeof e.data !== 'string') binary += 1; };
        ws.onclose = (e) => done({code: e.code, reason: e.reason, binary});
    """)
    assert result["code"] == 4404 and result["binary"] == 0 and "gate" in result["reason"]
    # the page's own player pointed at another camera ends "denied" with the server's reason, and stops retrying
    states = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/views/wall.js').then((m) => {
          const states = [];
          const player = new m.LivePlayer(document.createElement('video'), 'gate', 'main', {
            onState: (s, info) => { states.push([s, info.reason || '']);
                                    if (s === 'denied') { done(states.slice()); player.destroy(); } } });
          player.start();
        });
    """)
    assert states[-1][0] == "denied" and "gate" in states[-1][1], states
    wait_until(browser, lambda d: playing(d, "lobby", 0.5), 60, "the limited user's own camera did not play")
    assert "1กอ5180" in wait(browser, '.wall-overlay[data-kind="plate"]', timeout=20).text
    shot(browser, "wall_limited")


def test_thai_wall_translates_the_offline_reason(browser, wall_server):  # noqa: F811
    """The Thai wall shows a dead camera's reason in Thai (from the server's reason code), the English text only as
    the note's title; an unknown code falls back to the server's text."""
    sign_in(browser, wall_server, "op")
    browser.execute_script("localStorage.setItem('cctv.lang', 'th');")
    browser.refresh()
    dead = wait(browser, f'{TILE.format("dead")}[data-state="offline"] .wall-note', timeout=60)
    wait_until(browser, lambda d: dead.text == "กล้องปฏิเสธการเชื่อมต่อ (กล้องเปิดอยู่หรือไม่ และพอร์ตถูกต้องหรือไม่)",
               20, f"the dead camera's reason is not in Thai: {dead.text!r}")
    assert "refused" not in dead.text and "refused the connection" in dead.get_attribute("title")
    shot(browser, "wall_th")
    texts = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/views/wall.js').then((m) => done([
          m.reasonText({code: 'no_video', reason: 'no video from the camera for 10 s'}),
          m.reasonText({code: 'some_future_code', reason: 'a reason this page does not know'}),
          m.reasonText({reason: 'old server without codes'})]));
    """)
    assert texts == ["ไม่มีภาพจากกล้อง", "a reason this page does not know", "old server without codes"]
    assert not page_errors(browser)


def test_wall_tiles_work_by_keyboard(browser, wall_server):  # noqa: F811
    """Tab reaches a tile (named after its camera), Enter enlarges it, Escape returns to the wall with the focus
    kept, Space does as Enter; F and the full-screen button show the wall full screen, with an exit button in its
    corner (reached by Shift+Tab from the first tile, shown on a mouse move, hidden again after a while) that leaves
    it; the full-screen look survives a layout change."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, wall_server, "op")
    wait(browser, f"#wall-grid {TILE.format('lobby')}")
    active_tile = "const a = document.activeElement; return a && a.classList.contains('wall-tile') ? a.dataset.cameraId : null;"
    browser.execute_script("document.getElementById('wall-save').focus();")
    for _ in range(3):  # past the toolbar's last buttons to the first tile
        if browser.execute_script(active_tile):
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.execute_script(active_tile) == "lobby", "Tab does not reach the first tile"
    tile = browser.switch_to.active_element
    assert "Lobby entrance" in (tile.get_attribute("aria-label") or "")
    tile.send_keys(Keys.ENTER)
    wait(browser, f".wall-enlarged{TILE.format('lobby')}", timeout=20)
    assert "Escape" in tile.get_attribute("aria-label")
    shot(browser, "wall_keyboard_enlarged")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_until(browser, lambda d: not css(d, ".wall-enlarged") and not css(d, ".wall-has-enlarged"), 20,
               "Escape did not return to the wall")
    assert browser.execute_script(active_tile) == "lobby", "the focus left the tile"
    browser.switch_to.active_element.send_keys(Keys.SPACE)
    wait(browser, f".wall-enlarged{TILE.format('lobby')}", timeout=20)
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_until(browser, lambda d: not css(d, ".wall-enlarged"), 20, "Escape did not return to the wall")
    shot(browser, "wall_keyboard_focus")
    # full screen by F: the full-screen element holds the grid and an exit button (a mouse user's way out)
    assert css(browser, "#wall-fullscreen")[0].text == "Full screen"
    exit_shown = lambda d: bool(css(d, "#wall-exit-fullscreen")) and css(d, "#wall-exit-fullscreen")[0].is_displayed()  # noqa: E731
    assert not exit_shown(browser), "the exit button shows outside full screen"
    browser.switch_to.active_element.send_keys("f")
    wait_until(browser, lambda d: d.execute_script(FULL) == "grid+exit", 20,
               "F did not show the wall full screen with its exit button")
    wait(browser, ".wall-fullscreen #wall-grid")
    # keyboard: Shift+Tab from the first tile reaches the exit button, shown while focused; Enter leaves
    browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    wait_until(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "wall-exit-fullscreen", 20,
               "Shift+Tab from the first tile does not reach the exit button")
    exit_button = css(browser, "#wall-exit-fullscreen")[0]
    assert exit_button.text.endswith("Exit full screen") and exit_button.get_attribute("title")
    wait_until(browser, exit_shown, 20, "the focused exit button is not shown")
    shot(browser, "wall_fullscreen_focus")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until(browser, lambda d: d.execute_script(FULL) == "", 20, "the exit button (Enter) did not leave full screen")
    wait_until(browser, lambda d: not exit_shown(d), 20, "the exit button shows after leaving full screen")
    assert browser.switch_to.active_element.get_attribute("id") == "wall-fullscreen", "the focus was lost"
    assert css(browser, "#wall-fullscreen")[0].get_attribute("aria-pressed") == "false"
    # mouse: the toolbar button (after a click on the title: no keyboard focus left, which would keep the exit
    # button shown while focused); a layout change in full screen keeps the full-screen look
    css(browser, ".view-head h1")[0].click()
    css(browser, "#wall-fullscreen")[0].click()
    wait_until(browser, lambda d: d.execute_script(FULL) == "grid+exit", 20, "the button did not show full screen")
    wait_until(browser, lambda d: css(d, "#wall-fullscreen")[0].get_attribute("aria-pressed") == "true"
               and css(d, ".wall-fullscreen #wall-grid"), 20, "the page does not follow into full screen")
    before = browser.execute_script("return document.getElementById('wall-grid').dataset.grid")
    other = "4x4" if before != "4x4" else "3x3"
    browser.execute_script("document.querySelector(`.wall-grid-btn[data-grid='${arguments[0]}']`).click()", other)
    wait(browser, f"#wall-grid[data-grid='{other}']")
    classes = browser.execute_script("return [...document.getElementById('wall-grid').classList]")
    assert f"wall-grid-{other.replace('x', '-')}" in classes and f"wall-grid-{before.replace('x', '-')}" not in classes
    assert browser.execute_script(FULL) == "grid+exit" and css(browser, ".wall-fullscreen #wall-grid")
    fills = "const r = document.getElementById('wall-grid').getBoundingClientRect(); return [r.width, r.height, innerWidth, innerHeight];"
    width, height, inner_w, inner_h = browser.execute_script(fills)
    assert width > inner_w - 40 and height > inner_h - 40, (width, height, inner_w, inner_h)  # the grid fills the screen
    # untouched, the exit button fades out (not over the video); a mouse move shows it, a click on it leaves
    wait_until(browser, lambda d: not exit_shown(d), 20, "the exit button stays over the video without a mouse move")
    shot(browser, "wall_fullscreen_idle")
    browser.execute_script("""window.__exitShown = false; const stage = document.querySelector('.wall-fullscreen');
        new MutationObserver(() => { if (stage.classList.contains('wall-controls-shown')) window.__exitShown = true; })
          .observe(stage, {attributes: true, attributeFilter: ['class']});""")  # shown for seconds: seen at once
    ActionChains(browser).move_to_element(css(browser, "#wall-grid .wall-tile")[0]).perform()
    wait_until(browser, lambda d: d.execute_script("return window.__exitShown"), 20,
               "a mouse move over the wall does not show the exit button")
    ActionChains(browser).move_to_element(css(browser, "#wall-exit-fullscreen")[0]).perform()
    wait_until(browser, exit_shown, 20, "the hovered exit button is not shown")
    shot(browser, "wall_fullscreen_mouse")
    css(browser, "#wall-exit-fullscreen")[0].click()
    wait_until(browser, lambda d: d.execute_script(FULL) == "", 20, "a click on the exit button did not leave full screen")
    # the page follows on the fullscreenchange event, dispatched after fullscreenElement is already null
    wait_until(browser, lambda d: css(d, "#wall-fullscreen")[0].get_attribute("aria-pressed") == "false"
               and not css(d, ".wall-fullscreen") and not exit_shown(d), 20,
               "the page still shows full screen after leaving it")
    shot(browser, "wall_fullscreen_left")
    browser.execute_script("localStorage.setItem('cctv.lang', 'th');")
    browser.refresh()
    wait(browser, f"#wall-grid {TILE.format('lobby')}")
    assert css(browser, "#wall-fullscreen")[0].text == "เต็มจอ"
    label = css(browser, TILE.format("lobby"))[0].get_attribute("aria-label")
    assert label == "Lobby entrance: กด Enter เพื่อขยาย", label
    browser.execute_script("document.querySelector(arguments[0]).focus();", TILE.format("lobby"))
    shot(browser, "wall_keyboard_th")
    browser.switch_to.active_element.send_keys("f")
    wait_until(browser, lambda d: d.execute_script(FULL) == "grid+exit", 20, "F did not show the Thai wall full screen")
    ActionChains(browser).move_to_element(css(browser, "#wall-exit-fullscreen")[0]).perform()
    wait_until(browser, exit_shown, 20, "the hovered exit button is not shown")
    assert css(browser, "#wall-exit-fullscreen")[0].text.endswith("ออกจากเต็มจอ")
    shot(browser, "wall_fullscreen_th")
    css(browser, "#wall-exit-fullscreen")[0].click()
    wait_until(browser, lambda d: d.execute_script(FULL) == "", 20, "a click on the exit button did not leave full screen")
    assert not page_errors(browser)


FAKE_CLOSE = """
// (states: the tile's states, signedOut: onUnauthorized calls, stopped: no retry planned)
const [endMsg, closeCode, closeReason, done] = arguments;
import('/views/wall.js').then((m) => {
  const Real = window.WebSocket;
  class Fake extends EventTarget {  // a server that ends the stream at once: (end message,) then close
    constructor() { super(); this.readyState = 0;
      setTimeout(() => { this.dispatchEvent(new Event('open'));
        if (endMsg) this.dispatchEvent(new MessageEvent('message', {data: JSON.stringify(endMsg)}));
        const e = new Event('close'); e.code = closeCode; e.reason = closeReason; this.dispatchEvent(e); }, 0); }
    send() {}
    close() {}
  }
  window.WebSocket = Fake;
  const states = [];
  let signedOut = 0;
  const player = new m.LivePlayer(document.createElement('video'), 'gate', 'main', {
    onState: (s, info) => { if (s !== 'connecting' && s !== 'paused') states.push([s, m.reasonText(info), info.reason || '']); },
    onUnauthorized: () => { signedOut += 1; } });
  player.start();
  window.WebSocket = Real;
  setTimeout(() => { const stopped = player.stopped; player.destroy(); done({states, signedOut, stopped}); }, 300);
});
"""


def test_thai_wall_translates_the_end_and_close_reasons(browser, wall_server):  # noqa: F811
    """The server's "end" message and its close codes come with English text only: the Thai wall shows them in Thai
    (by the end message's reason_code, else the close code), the English text only as the note's title. A camera
    removed from the configuration while watched ends its tile in Thai. (Last in the module: it removes a camera.)"""
    from api.routes.live import _wake_preload

    sign_in(browser, wall_server, "op")
    browser.execute_script("localStorage.setItem('cctv.lang', 'th');")
    browser.refresh()
    wait(browser, f'{TILE.format("dead")}[data-state="offline"]', timeout=60)
    app = wall_server.app
    before = app.state.camera_config
    try:  # the dead camera leaves the configuration while the wall watches it
        app.state.camera_config = before.model_copy(update={"cameras": [c for c in before.cameras if c.id != "dead"]})
        _wake_preload(app)  # the preload loop hands the new configuration to the hub (as a pushed one)
        note = wait(browser, f'{TILE.format("dead")}[data-state="denied"] .wall-note', timeout=30)
        wait_until(browser, lambda d: note.text == "กล้องถูกนำออกจากการตั้งค่าหรือถูกปิดใช้งาน", 20,
                   f"the removed camera's reason is not in Thai: {note.text!r}")
        assert note.get_attribute("title") == "camera removed"
        shot(browser, "wall_th_removed")
    finally:
        app.state.camera_config = before
        _wake_preload(app)
    cases = [
        ({"type": "end", "reason": "session ended", "reason_code": "session_ended"}, 4401, "session ended"),
        (None, 4403, "live video needs the operator role"),
        (None, 4404, "camera 'gate' not found"),
        (None, 4422, "malformed camera id or stream (main or sub)"),
        (None, 4429, "too many live video streams"),
    ]
    got = [browser.execute_async_script(FAKE_CLOSE, *case)["states"] for case in cases]
    assert got[0] == [["offline", "เซสชันของคุณสิ้นสุดแล้ว หรือคุณไม่มีสิทธิ์ดูกล้องนี้อีกต่อไป", "session ended"],
                      ["denied", "เซสชันของคุณสิ้นสุดแล้ว หรือคุณไม่มีสิทธิ์ดูกล้องนี้อีกต่อไป", "session ended"]]
    assert all(len(states) == 1 for states in got[1:]), got
    assert [states[-1][:2] for states in got[1:]] == [
        ["denied", "บทบาทของคุณไม่มีสิทธิ์ดูวิดีโอสด"], ["denied", "ไม่พบกล้องนี้ หรือคุณไม่มีสิทธิ์ดูกล้องนี้"],
        ["denied", "กล้องหรือสตรีมไม่ถูกต้อง"], ["offline", "เปิดวิดีโอสดมากเกินไป กรุณาปิดบางรายการแล้วลองใหม่"]]
    assert [states[-1][2] for states in got[1:]] == [reason for _end, _code, reason in cases[1:]]
