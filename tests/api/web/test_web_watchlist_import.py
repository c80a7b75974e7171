"""Importing a police hot list (a Windows-874 CSV as Thai Excel saves it) on the watchlists page, in headless
Chromium: pick the file, preview the counts and the first invalid rows (a dry run: nothing written), confirm, and see
the entries listed; the page offers an "Export CSV" link. English and Thai.

Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

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
    page_errors,
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
HOT_LIST = ("plate,province,reason,severity,expires\r\n"
            "1กข1234,กรุงเทพมหานคร,รถถูกขโมย,high,2099-12-31\r\n"
            "1กช4986,ภูเก็ต,หมายจับ,,\r\n"
            "2ขค5678,,,urgent,\r\n"
            ",,ไม่มีทะเบียน,,\r\n")


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API under uvicorn on a freshly flushed Redis with an admin."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    base: Path = tmp_path_factory.mktemp("web-watchlist-import")
    (base / "recordings").mkdir()
    (base / "cameras.yaml").write_text(CAMERAS_YAML, encoding="utf-8")
    ApiStore(client, scrypt_n=2**10).put_user("adm", "admin", PASSWORD)
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=base / "recordings",
                           config_path=base / "cameras.yaml", scrypt_n=2**10, login_max_per_user=50,
                           login_max_per_ip=200)
    try:
        with served(create_app(settings), "uvicorn-web-watchlist-import", join_timeout_s=15) as url:
            yield Server(url=url, redis_url=redis_server.url, client=client)
    finally:
        client.close()


def _entries(driver) -> int:
    return len(css(driver, "#wl-entries tbody tr"))


@pytest.mark.parametrize("lang", ["en", "th"])
def test_import_a_thai_excel_hot_list_with_preview(browser, server, tmp_path: Path, lang: str) -> None:
    from pipeline.store import WatchlistStore

    wl = WatchlistStore(server.client)
    listed = wl.create_watchlist("plate", f"Police hot list {lang}")
    path = tmp_path / "hotlist.csv"
    path.write_bytes(HOT_LIST.encode("cp874"))
    login(browser, server, "adm", lang=lang)
    wait(browser, "#nav a")
    browser.get(f"{server.url}/#/watchlists/{listed['id']}")
    wait(browser, "#wl-export")
    wait(browser, "#wl-import").click()
    wait(browser, "#wl-import-file", visible=False).send_keys(str(path))
    css(browser, "#wl-import-skip-invalid")[0].click()
    css(browser, "dialog [data-role=submit]")[0].click()
    counts = wait(browser, "#wl-import-counts")
    expected = {"en": "4 rows: 2 to add, 0 to update, 0 already listed, 2 invalid",
                "th": "4 แถว: เพิ่ม 2 ปรับปรุง 0 มีอยู่แล้ว 0 ไม่ถูกต้อง 2"}[lang]
    assert counts.text == expected
    lines = [tr.text.split()[0] for tr in css(browser, "#wl-import-errors tbody tr")]
    assert lines == ["4", "5"]
    assert wl.list_entries(listed["id"]) == []  # a preview writes nothing
    shot(browser, f"watchlist_import_preview_{lang}")
    css(browser, "dialog [data-role=submit]")[0].click()
    wait_until(browser, lambda d: _entries(d) == 2, message="the imported entries were not listed")
    assert sorted(e["plate"] for e in wl.list_entries(listed["id"])) == ["1กข1234", "1กช4986"]
    shot(browser, f"watchlist_import_done_{lang}")
    assert not page_errors(browser)
