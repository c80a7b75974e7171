"""The wall's live player in a real headless Chromium, served by the real API: a stream the server ends because the
camera is no longer permitted (``end`` reason_code ``camera_revoked``, close 4403) stops only that tile, with the
message in the page's language, and does not sign the user out; a real end of session (4401) still does.

The server side is faked in the page (a WebSocket that sends the end message and closes), with test_web_wall's
FAKE_CLOSE; the API's side of it is tests/api/test_api_live_camera_revoked.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.web.serving import served
from tests.api.web.test_web_ui import CHROMEDRIVER, CHROMIUM
from tests.api.web.test_web_ui import browser as browser  # noqa: F401 - the same Chromium fixture
from tests.api.web.test_web_wall import FAKE_CLOSE

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]


REVOKED = ({"type": "end", "reason": "camera no longer permitted", "reason_code": "camera_revoked"}, 4403,
           "camera no longer permitted")
SESSION_ENDED = ({"type": "end", "reason": "session ended", "reason_code": "session_ended"}, 4401, "session ended")


@pytest.fixture()
def page(browser, redis_url: str, tmp_path: Path) -> Iterator[object]:  # noqa: F811
    from api.main import create_app
    from api.settings import ApiSettings

    config = tmp_path / "cameras.yaml"
    config.write_text("cameras: []\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           live_preload="none")
    with served(create_app(settings), "wall-revoked") as base:
        browser.get(base + "/")
        yield browser


def _run(driver, lang: str, case: tuple) -> dict:
    driver.execute_script(f"localStorage.setItem('cctv.lang', '{lang}');")
    driver.refresh()
    return driver.execute_async_script(FAKE_CLOSE, *case)


def test_a_revoked_camera_stops_its_tile_without_signing_out(page) -> None:
    got = _run(page, "en", REVOKED)
    assert got["signedOut"] == 0, got
    assert got["stopped"] is True, got  # the tile is not retried
    assert got["states"][-1] == ["denied", "You may no longer watch this camera (your camera access changed)",
                                 "camera no longer permitted"], got
    th = _run(page, "th", REVOKED)
    assert th["signedOut"] == 0
    assert th["states"][-1] == ["denied", "คุณไม่มีสิทธิ์ดูกล้องนี้อีกต่อไป (สิทธิ์การเข้าถึงกล้องของคุณเปลี่ยนแปลง)",
                                "camera no longer permitted"], th
    # a real end of session still signs the wall out
    ended = _run(page, "en", SESSION_ENDED)
    assert ended["signedOut"] == 1, ended
