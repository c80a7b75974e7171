"""An acknowledgement made on another screen reaches every alert the wall shows, also one older than the newest
page the wall polled before (real headless Chromium, real API under uvicorn, real Redis).

Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM, css, login, shot, wait, wait_until
from tests.api.web.test_web_ui import browser as browser  # noqa: PLC0414 - the module's browser fixture

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]

PASSWORD = "correct-horse-42"
NEWER = 320
"""Alerts raised after the old one: more than the wall's first page (300)."""
REFRESH_WAIT_S = 90
"""How long the wall may take to show the acknowledgement: several of its 15 s polling periods (a loaded CI)."""
CAMERAS_YAML = """\
version: 1
cameras:
  - id: bkk-night-01
    name: Bangkok night traffic A
    url: rtsp://127.0.0.1:8554/a
    analytics: {plates: true, faces: false}
"""


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, redis.Redis]]:
    """The API under uvicorn with two operators, one old alert ("Old 0001") and :data:`NEWER` newer ones."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.events import Alert
    from pipeline.store import EventStore

    work = tmp_path_factory.mktemp("web_alert_ack_refresh")
    (work / "rec").mkdir()
    config = work / "cameras.yaml"
    config.write_text(CAMERAS_YAML)
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    users = ApiStore(client, scrypt_n=2**10)
    for name in ("op", "op2"):
        users.put_user(name, "operator", PASSWORD, None)
    for label in ("Old 0001", *(f"1กข{n:04d}" for n in range(NEWER))):
        assert EventStore(client).publish_alert(Alert(kind="plate", watchlist_id="w1", entry_id="e1", event_id=label,
                                                      camera_id="bkk-night-01", label=label, severity="high"))
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=work / "rec", config_path=config,
                           scrypt_n=2**10, login_max_per_user=50, login_max_per_ip=200)
    try:
        with served(create_app(settings), "uvicorn-web-alert-ack-refresh", join_timeout_s=15) as url:
            yield url, client
    finally:
        client.close()


def _old_card(browser):
    cards = [c for c in css(browser, "#alert-list .alert-card") if "Old 0001" in c.text]
    return cards[0] if cards else None


def test_an_old_alert_acknowledged_on_another_screen_is_shown_acknowledged(browser, server) -> None:
    """op's wall shows the old alert (through "Older alerts"); op2 acknowledges it through the API; op's wall shows
    it acknowledged (by op2, with the note) within its polling, without a reload."""
    url, _ = server
    login(browser, SimpleNamespace(url=url), "op", PASSWORD)
    wait(browser, "#alert-list .alert-card")
    assert _old_card(browser) is None  # beyond the first page
    wait_until(browser, lambda d: (b := css(d, "#alerts-older")) and b[0].is_enabled() and b[0],
               message="the Older alerts button stays disabled").click()
    card = wait_until(browser, _old_card, timeout=30, message="the old alert is not shown after Older alerts")
    assert "acked" not in card.get_attribute("class")
    alert_id = card.get_attribute("data-alert-id")
    with httpx.Client(base_url=url, timeout=30) as http:
        token = http.post("/api/auth/login", json={"username": "op2", "password": PASSWORD}).json()["access_token"]
        r = http.post(f"/api/alerts/{alert_id}/ack", json={"note": "checked on camera"},
                      headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    wait_until(browser, lambda d: (c := _old_card(d)) is not None and "acked" in c.get_attribute("class"),
               timeout=REFRESH_WAIT_S, message="the acknowledgement made on another screen never reached the wall")
    card = _old_card(browser)
    assert card.find_element("css selector", ".alert-ack").get_attribute("data-ack-by") == "op2"
    assert "checked on camera" in card.text
    browser.execute_script("arguments[0].scrollIntoView()", card)
    shot(browser, "alerts_old_ack_refreshed")
