"""The control-room page in a real headless Chromium against the real API:

- in Thai, the API's refusals are said in Thai (a 422 names the field by its Thai label, a closed case, a missing
  case), with the server's own English words only in small print under them;
- a camera added while the wall is open (a pushed configuration) is offered by the tiles' chooser without a reload,
  and the tile that plays goes on playing (the same player, no re-render)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM, css, login, shot, wait, wait_until
from tests.api.web.test_web_ui import browser as browser  # noqa: F401 - the same Chromium fixture
from tests.api.web.test_web_wall import PASSWORD, WallServer, playing, sign_in
from tests.api.web.test_web_wall_recover import recover_server as recover_server  # noqa: F401 - its fixture

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]


@pytest.fixture()
def page_server(redis_url: str, tmp_path: Path) -> Iterator[WallServer]:
    """The API under uvicorn with one (unreachable) camera and an investigator."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore

    client = redis.Redis.from_url(redis_url)
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: yard, name: Yard, url: 'rtsp://127.0.0.1:9/none'}\n", encoding="utf-8")
    ApiStore(client, scrypt_n=2**10).put_user("inv", "investigator", PASSWORD)
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config,
                           scrypt_n=2**10, login_max_per_user=50, login_max_per_ip=200, live_preload="none",
                           live_preload_default_wall=False)
    try:
        with served(create_app(settings), "uvicorn-web-errors") as url:
            yield WallServer(url=url, client=client, app=None)
    finally:
        client.close()


# the page's own modules: call the API as the page does and show the error as the page does
REFUSALS = """
const done = arguments[arguments.length - 1];
(async () => {
  const { api, ROUTES } = await import('/api.js');
  const { toast, errorContent } = await import('/dom.js');
  const out = {};
  const fail = async (name, call) => {
    try { await call(); out[name] = null; } catch (err) {
      out[name] = { status: err.status, code: err.code, message: err.message, server: err.serverText };
      toast(errorContent(err), 'error', 60000);
    }
  };
  const made = await api(ROUTES.cases, { method: 'POST', body: { name: 'คดีทดสอบ' } });
  await api(`${ROUTES.case(made.id)}/close`, { method: 'POST' });
  await fail('closed', () => api(ROUTES.caseItems(made.id), { method: 'POST', body: { kind: 'plate', ref: 'x' } }));
  await fail('missing', () => api(ROUTES.case('no-such-case')));
  return out;
})().then(done, (e) => done({ error: String(e) }));
"""


def test_thai_page_says_api_refusals_in_thai(browser, page_server):  # noqa: F811
    login(browser, page_server, "inv", lang="th")
    wait(browser, "#nav a")
    browser.get(page_server.url + "/#/plates")
    box = wait(browser, "#plate-query")
    box.send_keys("*")
    css(browser, "#plate-search")[0].click()
    err = wait(browser, "#plate-results .error-box")
    small = err.find_element("css selector", ".err-server")
    # the field's Thai label and a Thai "not valid"; the server's English words only in the small print
    assert "คำค้นหา" in err.text and "ไม่ถูกต้อง" in err.text, err.text
    assert small.text.startswith("q:"), small.text
    assert err.text.replace(small.text, "").strip().startswith("คำค้นหา"), err.text
    got = browser.execute_async_script(REFUSALS)
    assert "error" not in got, got
    assert got["closed"]["status"] == 409 and got["closed"]["code"] == "case_closed", got
    assert got["closed"]["message"] == "คดีนี้ปิดแล้ว เพิ่มหรือนำรายการออกไม่ได้", got
    assert "is closed" in got["closed"]["server"], got
    assert got["missing"]["status"] == 404 and got["missing"]["message"] == "ไม่พบข้อมูล อาจถูกลบไปแล้ว", got
    wait_until(browser, lambda d: len(css(d, "#toasts .toast-error .err-server")) >= 2, 15, "no error toasts")
    shot(browser, "thai_errors")


def test_a_camera_added_while_the_wall_is_open_is_offered_without_a_reload(browser, recover_server):  # noqa: F811
    from api.routes.live import _wake_preload

    app = recover_server.app
    sign_in(browser, recover_server, "op")
    wait_until(browser, lambda d: playing(d, "yard", 0.5), 60, "the yard tile did not play")
    browser.execute_script("window.__wall.tiles[0].player.__marked = true;")
    options = "return [...document.querySelectorAll('.wall-tile .wall-select')[0].options].map((o) => o.value);"
    assert "gate" not in browser.execute_script(options)
    before = app.state.camera_config
    yard = before.cameras[0]
    app.state.camera_config = before.model_copy(update={"cameras": [
        yard, yard.model_copy(update={"id": "gate", "name": "Gate"})]})
    _wake_preload(app)
    # the tab shown again (as when the operator comes back to it): the page asks for the camera list at once
    browser.execute_script("document.dispatchEvent(new Event('visibilitychange'));")
    wait_until(browser, lambda d: "gate" in d.execute_script(options), 30, "the new camera is not offered")
    # the playing tile was not rebuilt: the same player, still playing, still on yard
    assert browser.execute_script("return window.__wall.tiles[0].player.__marked === true;")
    assert browser.execute_script("return window.__wall.tiles[0].cameraId;") == "yard"
    now = browser.execute_script("return document.querySelector('.wall-tile video').currentTime;")
    wait_until(browser, lambda d: playing(d, "yard", now + 0.5), 30, "the yard tile stopped playing")
    labels = browser.execute_script(
        "return [...document.querySelectorAll('.wall-tile .wall-select')[0].options].map((o) => o.textContent);")
    assert "Gate" in labels
    shot(browser, "wall_new_camera")
