"""The per-user limit of live alert streams in a real headless Chromium against the real API: a page whose alert
WebSocket the server refuses with 4429 (the user already has CCTV_ALERT_STREAMS_PER_USER streams open) says so in
the connection indicator and once in a toast, in English and Thai, and retries slowly instead of in a fast loop; it
connects again once a stream is free."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM, css, page_errors, shot, wait, wait_until
from tests.api.web.test_web_ui import browser as browser  # noqa: F401 - the same Chromium fixture

PASSWORD = "correct-horse-42"
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]


@dataclass
class LimitServer:
    url: str
    app: object


@pytest.fixture(scope="module")
def limit_server(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitServer]:
    """The API under uvicorn with one live alert stream per user."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    base = tmp_path_factory.mktemp("stream-limits")
    config = base / "cameras.yaml"
    config.write_text("cameras:\n  - {id: dock, name: Dock, url: 'rtsp://127.0.0.1:9/none'}\n", encoding="utf-8")
    ApiStore(client, scrypt_n=2**10).put_user("busy", "operator", PASSWORD)
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=base / "rec", config_path=config,
                           scrypt_n=2**10, login_max_per_user=50, login_max_per_ip=200, alert_streams_per_user=1,
                           live_preload_default_wall=False)
    app = create_app(settings)
    try:
        with served(app, "uvicorn-stream-limits") as url:
            yield LimitServer(url=url, app=app)
    finally:
        client.close()


def open_streams(server: LimitServer, username: str) -> int:
    slots = getattr(server.app.state, "alert_slots", None)
    return 0 if slots is None else slots.per_user.get(username, 0)


HOLD = """
// another tab's alert stream: a WebSocket of the same user that keeps the one slot
const ws = new WebSocket(`ws://${location.host}/api/alerts/ws`);
ws.onopen = () => ws.send(JSON.stringify({token: sessionStorage.getItem('cctv.token')}));
window.__hold = ws;
"""
COUNT_AND_START = """
// count the page's alert WebSocket attempts from now on, then start its feed again
const Real = window.WebSocket;
window.__alertSockets = 0;
window.WebSocket = class extends Real {
  constructor(url, protocols) { super(url, protocols); if (String(url).includes('/api/alerts/ws')) window.__alertSockets += 1; }
};
window.__cctvFeed.start();
"""


def seconds_left(driver) -> int | None:
    match = re.search(r"(\d+)", css(driver, "#conn")[0].text)
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("lang", ["en", "th"])
def test_alert_stream_limit_is_explained_and_retried_slowly(browser, limit_server, lang):  # noqa: F811
    browser.get(limit_server.url + "/#/alerts")
    browser.execute_script("sessionStorage.clear(); localStorage.clear(); localStorage.setItem('cctv.lang', arguments[0]);",
                           lang)
    browser.refresh()
    wait(browser, "#login-username").send_keys("busy")
    css(browser, "#login-password")[0].send_keys(PASSWORD)
    css(browser, "#login-submit")[0].click()
    wait(browser, "#conn[data-state='live']", timeout=30)
    wait_until(browser, lambda d: open_streams(limit_server, "busy") == 1, 30, "the page's alert stream is not open")
    # the page's own stream stops; "another tab" takes the user's only slot
    browser.execute_script("window.__cctvFeed.stop();")
    wait_until(browser, lambda d: open_streams(limit_server, "busy") == 0, 30, "the page's stream was not released")
    browser.execute_script(HOLD)
    wait_until(browser, lambda d: open_streams(limit_server, "busy") == 1, 30, "the other tab's stream did not open")
    browser.execute_script(COUNT_AND_START)
    # the server refuses the page's stream (4429): the indicator says why, a toast explains what to do
    conn = wait(browser, "#conn[data-state='limited']", timeout=30)
    text = wait_until(browser, lambda d: conn.text, 10, "the indicator is empty")
    toast = wait_until(browser, lambda d: [e.text for e in css(d, "#toasts .toast") if "ALERT_STREAMS_PER_USER" in e.text],
                       15, "no toast about the limit of live alert streams")
    assert len(toast) == 1, toast
    if lang == "en":
        assert "too many" in text and "retry in" in text, text
        assert "(1)" in toast[0] and "Close one of them" in toast[0], toast
    else:
        assert "เปิดไว้มากเกินไป" in text and "ลองใหม่ใน" in text, text
        assert "(1)" in toast[0] and "ผู้ดูแลระบบ" in toast[0], toast
        assert not re.search(r"[A-Za-z]", text), text  # no English in the Thai indicator
    assert "CCTV_ALERT_STREAMS_PER_USER" in conn.get_attribute("title")
    shot(browser, f"alert_stream_limit_{lang}")
    # a slow retry: the countdown starts at 30 s or more and, four seconds on, the page has not tried again
    first = seconds_left(browser)
    assert first is not None and first >= 30, text
    wait_until(browser, lambda d: (seconds_left(d) or 99) <= first - 4, 20, "the retry countdown does not run")
    assert browser.execute_script("return window.__alertSockets") <= 2
    assert css(browser, "#conn")[0].get_attribute("data-state") == "limited"
    assert len([e for e in css(browser, "#toasts .toast") if "ALERT_STREAMS_PER_USER" in e.text]) == 1  # once
    # the other tab closes: the next try (made now instead of in half a minute) connects and the page is live again
    browser.execute_script("window.__hold.close();")
    wait_until(browser, lambda d: open_streams(limit_server, "busy") == 0, 30, "the other tab's stream stayed open")
    browser.execute_script("const f = window.__cctvFeed; clearTimeout(f.timer); clearInterval(f.countdown); f.connect();")
    wait(browser, "#conn[data-state='live']", timeout=30)
    assert open_streams(limit_server, "busy") == 1
    assert not css(browser, "#conn")[0].get_attribute("title")
    assert not page_errors(browser)
