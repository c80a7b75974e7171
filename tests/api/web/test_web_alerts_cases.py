"""The alert wall and the case list in a real headless Chromium against the real API and a real Redis.

- Alert cards name the camera (its configured name), also on the first page load, when the cards are drawn before
  the camera list has arrived.
- A case shows whether it is open (under legal hold) or closed, in English and Thai; a closed case is not offered
  under "Add to case"; an open one can be closed from the page (after a confirmation).

Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

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
SCAN = 100
"""CCTV_ALERT_FILTER_SCAN of the served API."""
OTHERS = 250
"""Alerts of bkk-night-01 raised after the one walkway-01 alert: more than two scans read."""
CAMERAS_YAML = """\
version: 1
cameras:
  - id: bkk-night-01
    name: Bangkok night traffic A
    url: rtsp://127.0.0.1:8554/a
    analytics: {plates: true, faces: false}
  - id: walkway-01
    name: Covered walkway
    url: rtsp://127.0.0.1:8554/b
    analytics: {plates: false, faces: true}
"""


@pytest.fixture(scope="module")
def server(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, redis.Redis]]:
    """The API under uvicorn with an operator, an investigator, two alerts and an export job that is done."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.events import Alert
    from pipeline.store import EventStore

    work = tmp_path_factory.mktemp("web_alerts_cases")
    (work / "rec").mkdir()
    config = work / "cameras.yaml"
    config.write_text(CAMERAS_YAML)
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    users = ApiStore(client, scrypt_n=2**10)
    for name, role, cameras in (("op", "operator", None), ("inv", "investigator", None),
                                ("oplim", "operator", ["walkway-01"])):
        users.put_user(name, role, PASSWORD, cameras)
    # a walkway alert, then more alerts of the other camera than one filtered scan reads (alert_filter_scan), then
    # a newer walkway alert
    for camera, label in (("walkway-01", "Somchai"), *(("bkk-night-01", f"1กข{n:04d}") for n in range(OTHERS)),
                          ("walkway-01", "Somsak")):
        assert EventStore(client).publish_alert(Alert(kind="plate", watchlist_id="w1", entry_id="e1", event_id=label,
                                                      camera_id=camera, label=label, severity="high"))
    now = time.time()
    client.hset("export:jobdone1", mapping={"id": "jobdone1", "status": "done", "progress": "1",
                                            "camera_id": "bkk-night-01", "start": repr(now - 120),
                                            "end": repr(now - 60), "requester": "inv", "created_at": repr(now),
                                            "sha256": "ab" * 32})
    client.zadd("exports", {"jobdone1": now})
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=work / "rec", config_path=config,
                           scrypt_n=2**10, login_max_per_user=50, login_max_per_ip=200, alert_filter_scan=SCAN)
    try:
        with served(create_app(settings), "uvicorn-web-alerts-cases", join_timeout_s=15) as url:
            yield url, client
    finally:
        client.close()


def _signed_in(browser, url: str, user: str, lang: str = "en") -> None:
    login(browser, SimpleNamespace(url=url), user, PASSWORD, lang=lang)  # login reads the server's url
    wait(browser, "#nav a[data-view='alerts']")


def test_alert_cards_name_the_camera_on_the_first_load(browser, server) -> None:
    url, _ = server
    _signed_in(browser, url, "op")
    wait(browser, "#alert-list .alert-card")
    wait_until(browser, lambda d: {e.text for e in css(d, "#alert-list .alert-camera")}
               == {"Camera: Bangkok night traffic A", "Camera: Covered walkway"},
               message="alert cards still show camera ids instead of the cameras' names")
    shot(browser, "alerts_camera_names")


def test_older_alerts_reach_a_limited_operators_alert_behind_other_cameras_alerts(browser, server) -> None:
    """oplim sees walkway-01 only; its older alert lies behind more alerts of another camera than one scan reads:
    the wall shows the newer one, and "Older alerts" goes on where each scan stopped (not "No older alerts" after
    the first scan found none) until the older one is shown."""
    url, _ = server
    _signed_in(browser, url, "oplim")
    wait(browser, "#alert-list .alert-card")
    assert [e.text for e in css(browser, "#alert-list .alert-label")] == ["Somsak"]
    for _ in range(OTHERS // SCAN + 3):
        if len(css(browser, "#alert-list .alert-card")) > 1:
            break
        button = wait_until(browser, lambda d: (b := css(d, "#alerts-older")) and b[0].is_enabled() and b[0],
                            message="the Older alerts button stays disabled")
        if button.text != "Older alerts":
            break
        button.click()
        wait_until(browser, lambda d: len(css(d, "#alert-list .alert-card")) > 1
                   or css(d, "#alerts-older")[0].is_enabled() or css(d, "#alerts-older")[0].text != "Older alerts",
                   message="no answer to Older alerts")
    labels = [e.text for e in css(browser, "#alert-list .alert-label")]
    assert labels == ["Somsak", "Somchai"], labels
    shot(browser, "alerts_limited_older")


def test_the_acknowledgement_dialog_takes_as_long_a_note_as_the_api(browser, server) -> None:
    """The acknowledgement is final (a second one is refused): its note field must not cut a note the API would
    take (NOTE_MAX_CHARS), as the follow-up note field does not either."""
    from api.schemas.alerts import NOTE_MAX_CHARS

    url, _ = server
    _signed_in(browser, url, "op")
    wait(browser, "#alert-list .alert-card button[data-action='ack']").click()
    note = wait(browser, "dialog textarea[name='note']")
    assert note.get_attribute("maxlength") == str(NOTE_MAX_CHARS)
    css(browser, "dialog [data-role='cancel']")[0].click()


def _case_row(browser, name: str):
    rows = [li for li in css(browser, "#case-list li[data-case-id]") if name in li.text]
    return rows[0] if rows else None


@pytest.mark.parametrize("lang, open_text, closed_text, close_label", [
    ("en", "Open · legal hold", "Closed", "Close case"),
    ("th", "เปิดอยู่ · ระงับการลบหลักฐาน", "ปิดคดีแล้ว", "ปิดคดี"),
])
def test_cases_show_open_or_closed_and_only_open_ones_take_clips(browser, server, lang: str, open_text: str,
                                                                closed_text: str, close_label: str) -> None:
    url, client = server
    _signed_in(browser, url, "inv", lang)
    browser.get(url + "/#/evidence")
    wait(browser, "#case-new")
    names = (f"Open case {lang}", f"Closed case {lang}")
    for name in names:
        css(browser, "#case-new")[0].click()
        wait(browser, "#case-name").send_keys(name)
        css(browser, 'dialog [data-role="submit"]')[0].click()
        wait_until(browser, lambda d, n=name: _case_row(d, n) is not None, message=f"case {name} not listed")
    closed_row = _case_row(browser, names[1])
    assert closed_row.find_element("css selector", ".case-state").text == open_text
    button = closed_row.find_element("css selector", "button.case-close")
    assert button.text == close_label
    border = browser.execute_script("return getComputedStyle(arguments[0]).borderTopColor", button)
    assert border != "rgba(0, 0, 0, 0)", "the close button has no border: it looks like plain text"
    button.click()
    wait_until(browser, lambda d: d.switch_to.alert, message="no confirmation before closing")
    browser.switch_to.alert.accept()
    wait_until(browser, lambda d: (r := _case_row(d, names[1])) is not None and r.get_attribute("data-status")
               == "closed", message="the closed case is not shown as closed")
    case_id = _case_row(browser, names[1]).get_attribute("data-case-id")
    assert client.hget(f"case:{case_id}", "status") == b"closed"
    closed_row = _case_row(browser, names[1])
    assert closed_row.find_element("css selector", ".case-state").text.startswith(closed_text)
    assert not closed_row.find_elements("css selector", "button.case-close")
    open_row = _case_row(browser, names[0])
    assert open_row.find_element("css selector", ".case-state").text == open_text
    options = wait_until(browser, lambda d: [o.text for o in css(d, '.export-item[data-export-id="jobdone1"] '
                                                                    'select.case-select option')][1:] or None,
                         message="no case offered for the finished export")
    assert names[0] in options and names[1] not in options, options
    browser.execute_script("document.getElementById('case-list').scrollIntoView()")
    shot(browser, f"cases_open_closed_{lang}")
    assert not [k for k in (browser.find_element("id", "view").text.split()) if k.startswith("evidence.")]
