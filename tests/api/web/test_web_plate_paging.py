"""The plate search page in headless Chromium: "More" while new reads arrive, a busy plate's timeline, a hit's frame.

An operator reads the first page while cameras keep reading plates; the next page must continue where the first
ended (no row twice, none skipped). A plate seen more often than a timeline shows must show its newest sightings,
and say that older ones are left out. A hit's full frame (a real dashcam frame saved by the engine's
SnapshotWriter) opens from its row. Screenshots go to ``test-artifacts/web/``.
"""

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
    DASHCAM,
    PASSWORD,
    Server,
    browser,
    css,
    ffmpeg_frame,
    image_loaded,
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
  - id: bkk-night-02
    name: Bangkok night traffic B
    url: rtsp://127.0.0.1:8554/b
    analytics: {plates: true, faces: false}
"""
BUSY = "9ขข9999"
BUSY_SIGHTINGS = 520
FRAMED = "1กอ5180"


def _events(plates_times: list[tuple[str, float]], camera: str) -> list:
    from pipeline.events import PlateEvent

    return [PlateEvent(camera_id=camera, track_id=i, started_at=t - 1, ended_at=t, frame_time=t, plate_text=plate,
                       province="กรุงเทพมหานคร", confidence=0.9) for i, (plate, t) in enumerate(plates_times)]


@pytest.fixture(scope="module")
def server(redis_server, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API under uvicorn on a freshly flushed Redis holding 60 reads of ``1กข....``, a busy plate and one read
    with its crop and full frame."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.engine.snapshots import SnapshotWriter
    from pipeline.store import EventStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    base: Path = tmp_path_factory.mktemp("web-plates")
    (base / "recordings").mkdir()
    (base / "cameras.yaml").write_text(CAMERAS_YAML, encoding="utf-8")
    now = time.time()
    store = EventStore(client)
    store.publish_plate_events(_events([(f"1กข{1000 + i}", now - 5000 + 10 * i) for i in range(60)], "bkk-night-01"))
    store.publish_plate_events(_events([(BUSY, now - 90_000 + 60 * i) for i in range(BUSY_SIGHTINGS)],
                                       "bkk-night-02"))
    frame = ffmpeg_frame(shared_dir / "data" / "videos" / DASHCAM, 12.0)
    framed = _events([(FRAMED, now - 100)], "bkk-night-01")[0]
    writer = SnapshotWriter(base / "recordings")
    framed.crop_path = writer.save("bkk-night-01", framed.frame_time, framed.event_id, "plate", frame[642:712, 578:728])
    framed.snapshot_path = writer.save("bkk-night-01", framed.frame_time, framed.event_id, "frame", frame)
    assert store.publish_plate_event(framed)
    ApiStore(client, scrypt_n=2**10).put_user("inv", "investigator", PASSWORD)
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=base / "recordings",
                           config_path=base / "cameras.yaml", scrypt_n=2**10, login_max_per_user=50,
                           login_max_per_ip=200)
    try:
        with served(create_app(settings), "uvicorn-web-plates", join_timeout_s=15) as url:
            yield Server(url=url, redis_url=redis_server.url, client=client)
    finally:
        client.close()


def _rows(driver) -> list[str]:
    return [tr.get_attribute("data-plate") for tr in css(driver, "#plate-table tbody tr")]


def test_more_continues_where_the_page_ended_while_reads_arrive(browser, server):
    login(browser, server, "inv")
    wait(browser, "#nav a")
    browser.get(server.url + "/#/plates")
    wait(browser, "#plate-query").send_keys("1กข")
    css(browser, "#plate-search")[0].click()
    wait_until(browser, lambda d: len(_rows(d)) == 50, message="the first page did not show 50 rows")
    from pipeline.store import EventStore

    now = time.time()
    EventStore(server.client).publish_plate_events(
        _events([(f"1กข{5000 + i}", now + i) for i in range(7)], "bkk-night-02"))
    css(browser, "#plate-results .more")[0].click()
    wait_until(browser, lambda d: len(_rows(d)) >= 60 and not css(d, "#plate-results .more"),
               message="the second page did not end the list")
    rows = _rows(browser)
    shot(browser, "plates_more_while_reads_arrive")
    assert rows == [f"1กข{1000 + i}" for i in range(59, -1, -1)], rows
    assert "60" in css(browser, "#plate-status")[0].text  # the count of the search shown, not of what followed


def test_a_busy_plate_timeline_shows_its_newest_sightings(browser, server):
    login(browser, server, "inv")
    wait(browser, "#nav a")
    browser.get(server.url + "/#/plates")
    wait(browser, "#plate-query").send_keys(BUSY)
    css(browser, "#plate-reason")[0].send_keys("case 2026/91")
    css(browser, "#plate-search")[0].click()
    wait_until(browser, lambda d: len(_rows(d)) == 50, message="no results")
    newest = css(browser, "#plate-table tbody tr td")[4].text
    css(browser, "#plate-table tbody tr")[0].click()
    timeline = wait(browser, "#plate-timeline")
    assert timeline.get_attribute("data-count") == "500"
    first_row_time = css(browser, "#plate-timeline tbody tr td")[2].text  # the list is newest first
    assert first_row_time == newest
    note = wait(browser, "#plate-timeline-partial").text
    assert "500" in note and str(BUSY_SIGHTINGS) in note
    browser.execute_script("arguments[0].scrollIntoView({block: 'start', behavior: 'instant'}); window.scrollBy(0, -160)",
                           timeline)  # below the fixed header
    shot(browser, "plates_busy_timeline")


def test_a_hits_full_frame_opens_from_its_row(browser, server):
    login(browser, server, "inv")
    wait(browser, "#nav a")
    browser.get(server.url + "/#/plates?q=" + FRAMED)
    wait(browser, "#plate-table")
    rows = css(browser, f'#plate-table tbody tr[data-plate="{FRAMED}"]')
    assert len(rows) == 1
    rows[0].find_element("css selector", ".frame-link").click()
    wait(browser, "#plate-frame-panel")
    wait_until(browser, lambda d: image_loaded(d, "#plate-frame"), message="the frame did not load")
    size = browser.execute_script("const i = document.getElementById('plate-frame'); return [i.naturalWidth, i.naturalHeight]")
    assert size[0] > 640, size  # the whole dashcam frame, not the crop
    assert css(browser, "#plate-frame-panel a.play-link")  # and from there to the recording at that moment
    assert not css(browser, "#plate-timeline")  # opening the frame is not opening the plate's history
    shot(browser, "plates_hit_frame")
