"""Plate search typed with the English keyboard layout still on, in headless Chromium: ``1d-1234`` finds nothing and
the page offers "Did you mean 1กข1234?" (English and Thai) as a link that runs that search.

Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.api.web.serving import served
from tests.api.web.test_web_ui import (
    CHROMEDRIVER,
    CHROMIUM,
    PASSWORD,
    Server,
    browser,
    css,
    login,
    shot,
    wait,
    wait_until,
)

__all__ = ["browser"]  # the Chromium fixture, shared with the page's other tests

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]

CAMERAS_YAML = """\
version: 1
cameras:
  - id: bkk-night-01
    name: Bangkok night traffic A
    url: rtsp://127.0.0.1:8554/a
    analytics: {plates: true, faces: false}
"""


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API under uvicorn on a freshly flushed Redis holding one read of 1กข1234."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.events import PlateEvent
    from pipeline.store import EventStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    base: Path = tmp_path_factory.mktemp("web-plate-layout")
    (base / "recordings").mkdir()
    (base / "cameras.yaml").write_text(CAMERAS_YAML, encoding="utf-8")
    now = time.time()
    assert EventStore(client).publish_plate_event(PlateEvent(
        camera_id="bkk-night-01", track_id=1, started_at=now - 61, ended_at=now - 60, frame_time=now - 60,
        plate_text="1กข1234", province="กรุงเทพมหานคร", confidence=0.9))
    ApiStore(client, scrypt_n=2**10).put_user("op", "operator", PASSWORD)
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=base / "recordings",
                           config_path=base / "cameras.yaml", scrypt_n=2**10, login_max_per_user=50,
                           login_max_per_ip=200)
    try:
        with served(create_app(settings), "uvicorn-web-plate-layout", join_timeout_s=15) as url:
            yield Server(url=url, redis_url=redis_server.url, client=client)
    finally:
        client.close()


def _rows(driver) -> list[str]:
    return [tr.get_attribute("data-plate") for tr in css(driver, "#plate-table tbody tr")]


@pytest.mark.parametrize("lang, text", [("en", "Did you mean 1กข1234?"), ("th", "หมายถึง 1กข1234 ใช่ไหม?")])
def test_a_query_typed_on_the_english_layout_offers_the_thai_plate(browser, server, lang: str, text: str) -> None:
    login(browser, server, "op", lang=lang)
    wait(browser, "#nav a")
    browser.get(server.url + "/#/plates")
    wait(browser, "#plate-query").send_keys("1d-1234")
    css(browser, "#plate-search")[0].click()
    link = wait(browser, "#plate-did-you-mean")
    assert link.find_element("xpath", "..").text == text
    assert not _rows(browser)  # the query as typed found nothing: it was not rewritten
    shot(browser, f"plates_did_you_mean_{lang}")
    link.click()
    wait_until(browser, lambda d: _rows(d) == ["1กข1234"], message="the suggestion did not search 1กข1234")
    assert css(browser, "#plate-query")[0].get_attribute("value") == "1กข1234"
    assert not css(browser, "#plate-did-you-mean")
