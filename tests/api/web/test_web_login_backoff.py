"""The sign-in back-off in a real headless Chromium: a Thai page says how long to wait in Thai (from the server's
Retry-After), never the server's English detail."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM, css, page_errors, shot, wait, wait_until
from tests.api.web.test_web_ui import browser as browser  # noqa: F401 - the same Chromium fixture

PASSWORD = "correct-horse-42"
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]


@pytest.fixture(scope="module")
def backoff_url(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API under uvicorn where one wrong password makes the next attempt wait a minute."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    base = tmp_path_factory.mktemp("login-backoff")
    config = base / "cameras.yaml"
    config.write_text("cameras:\n  - {id: dock, name: Dock, url: 'rtsp://127.0.0.1:9/none'}\n", encoding="utf-8")
    ApiStore(client, scrypt_n=2**10).put_user("slowpoke", "operator", PASSWORD)
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=base / "rec", config_path=config,
                           scrypt_n=2**10, login_max_per_user=1, login_max_per_ip=200, login_backoff_base_s=60,
                           live_preload_default_wall=False)
    try:
        with served(create_app(settings), "uvicorn-login-backoff") as url:
            yield url
    finally:
        client.close()


def attempt(driver, password: str) -> str:
    """Submit the sign-in form and return the error box's text once it shows."""
    driver.execute_script("document.getElementById('login-error').hidden = true;")
    field = css(driver, "#login-password")[0]
    field.clear()
    field.send_keys(password)
    css(driver, "#login-submit")[0].click()
    box = wait(driver, "#login-error")
    return wait_until(driver, lambda d: box.text, 15, "no sign-in error shown")


def test_thai_login_backoff_says_the_wait_in_thai(browser, backoff_url):  # noqa: F811
    browser.get(backoff_url + "/#/alerts")
    browser.execute_script("sessionStorage.clear(); localStorage.clear(); localStorage.setItem('cctv.lang', 'th');")
    browser.refresh()
    wait(browser, "#login-username").send_keys("slowpoke")
    assert attempt(browser, "wrong-1") == "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง"
    text = attempt(browser, "wrong-2")  # within the minute's wait: 429 with Retry-After
    assert re.fullmatch(r"เข้าสู่ระบบผิดหลายครั้งเกินไป กรุณาลองใหม่ใน (\d+) วินาที", text), text
    assert 50 <= int(re.search(r"\d+", text).group()) <= 60
    assert not re.search(r"[A-Za-z]", text)  # no English server text in the Thai page
    shot(browser, "login_backoff_th")
    assert not page_errors(browser)
