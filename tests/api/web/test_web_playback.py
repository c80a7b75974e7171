"""Recorded playback in a real headless Chromium against the real API, a real Redis and real recordings.

Recordings: the Bangkok dashcam footage as the test cameras serve it (H.264, 1 s GOP) recorded as camera
bkk-night-01 in 6 s Matroska segments by stream copy, twice with a 20 s gap between, and the Hamilton clip as
bkk-night-02 five seconds later; finalised and indexed by the recorder's own finaliser. The frame the page shows
is captured through a canvas and compared with the frame ffmpeg decodes from the recording file.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from tests.api.web import test_web_ui
from tests.api.web.serving import served
from tests.api.web.test_web_ui import (
    CAMERAS_YAML,
    CHROMEDRIVER,
    CHROMIUM,
    PASSWORD,
    Server,
    css,
    fresh,
    login,
    page_errors,
    shot,
    wait,
    wait_until,
)
from tests.playback_support import camera_stream, difference, frame_at, record

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium/chromedriver absent"),
]

browser = test_web_ui.browser  # the same headless Chromium fixture (one per module)
CAM, CAM2 = "bkk-night-01", "bkk-night-02"
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"
HAMILTON = "short_hamilton_clip.mp4"
GAP = 20.0
HILUX_BOX = (578, 642, 728, 712)  # the Hilux's plate (1กอ5180) at 12 s of the dashcam footage
FRAME = 1 / 25


@dataclass
class PlaybackData:
    recordings: Path
    config_path: Path
    first: list = field(default_factory=list)
    second: list = field(default_factory=list)
    other: list = field(default_factory=list)
    plate_event: object = None
    crop: np.ndarray | None = None


@pytest.fixture(scope="module")
def pb_data(shared_dir: Path, redis_server, tmp_path_factory: pytest.TempPathFactory) -> PlaybackData:
    from pipeline.engine.snapshots import SnapshotWriter
    from pipeline.events import PlateCandidate, PlateEvent
    from pipeline.store import EventStore

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    base_dir = tmp_path_factory.mktemp("web-playback")
    data = PlaybackData(recordings=base_dir / "recordings", config_path=base_dir / "cameras.yaml")
    data.recordings.mkdir()
    data.config_path.write_text(CAMERAS_YAML, encoding="utf-8")
    videos = shared_dir / "data" / "videos"
    base = time.time() - 400  # recent: the timeline finds events by store time, up to 10 min after the window
    data.first = record(client, data.recordings, CAM, videos / DASHCAM, base, tag="a")
    data.second = record(client, data.recordings, CAM, videos / DASHCAM, data.first[-1].end + GAP, tag="b")
    data.other = record(client, data.recordings, CAM2, videos / HAMILTON, base + 5, tag="c")
    # the Hilux read at 12 s of the first recording, with its crop cut from that frame of the camera's stream
    frame = frame_at(camera_stream(videos / DASHCAM), 12.0)
    x1, y1, x2, y2 = HILUX_BOX
    data.crop = frame[y1:y2, x1:x2].copy()
    when = data.first[0].start + 12.0
    event = PlateEvent(camera_id=CAM, track_id=7, started_at=when - 1, ended_at=when + 1, frame_time=when,
                       plate_text="1กอ5180", province="กรุงเทพมหานคร", province_latin="Bangkok", confidence=0.93,
                       candidates=[PlateCandidate(text="1กอ5180", score=0.93)], vehicle_class="car",
                       plate_box=list(HILUX_BOX))
    writer = SnapshotWriter(data.recordings)
    event.crop_path = writer.save(CAM, when, event.event_id, "plate", data.crop)
    event.snapshot_path = writer.save(CAM, when, event.event_id, "frame", frame)
    assert EventStore(client).publish_plate_event(event)
    data.plate_event = event
    client.close()
    return data


@pytest.fixture(scope="module")
def server(pb_data: PlaybackData, redis_server) -> Iterator[Server]:

    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore
    from pipeline.settings import get_settings

    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=pb_data.recordings,
                           config_path=pb_data.config_path, scrypt_n=2**10, login_max_per_user=50,
                           login_max_per_ip=200)
    client = redis.Redis.from_url(redis_server.url)
    users = ApiStore(client, scrypt_n=2**10)
    for name, role, cams in (("op", "operator", None), ("inv", "investigator", None),
                             ("guard", "investigator", ["walkway-01"])):
        users.put_user(name, role, PASSWORD, cams)
    patch = pytest.MonkeyPatch()
    patch.setenv("CCTV_RECORDINGS_DIR", str(pb_data.recordings))
    get_settings.cache_clear()
    try:
        with served(create_app(settings), "uvicorn-playback-test", join_timeout_s=15) as url:
            yield Server(url=url, redis_url=redis_server.url, client=client)
    finally:
        client.close()
        patch.undo()
        get_settings.cache_clear()


def players_state(driver) -> list:
    """The players' internals (for failure messages)."""
    return driver.execute_script(
        "const r = window.__cctvPlayback; if (!r) return null;"
        "return [...r.players.values()].map((p) => ({camera: p.camera.id, gen: p.generation, pending: p.pending,"
        " loading: p.loading, next: p.next, sb: !!p.sb, start: p.el.dataset.start, state: p.el.dataset.state,"
        " t: p.video.currentTime, ready: p.video.readyState, seeking: p.video.seeking, ms: p.ms && p.ms.readyState,"
        " buffered: [...Array(p.video.buffered.length).keys()].map((i) => [p.video.buffered.start(i),"
        " p.video.buffered.end(i)]), origin: r.origin, master: r.master}))")


def until(driver, predicate, timeout: float = 15, message: str = ""):
    """wait_until, with the players' internals in the failure message."""
    try:
        return wait_until(driver, predicate, timeout, message)
    except BaseException as exc:
        raise AssertionError(f"{message}: players {players_state(driver)}") from exc


def full_shot(driver, name: str) -> None:
    """A screenshot tall enough for the players, the controls and the timeline."""
    driver.set_window_size(1600, 1300)
    try:
        time.sleep(0.5)  # the layout settles (no condition to poll for a resize)
        shot(driver, name)
    finally:
        driver.set_window_size(1600, 1000)


def tile(camera: str) -> str:
    return f'#pb-players .pb-tile[data-camera="{camera}"]'


def position(driver, camera: str) -> float | None:
    """The real time the camera's player shows (from its currentTime and the day's origin)."""
    value = driver.execute_script("const p = window.__cctvPlayback && window.__cctvPlayback.players.get(arguments[0]);"
                                  "return p ? p.position() : null;", camera)
    return None if value is None else float(value)


def settled(driver, camera: str) -> bool:
    """The camera's player is paused on a decoded frame (not seeking)."""
    return bool(driver.execute_script(
        "const v = document.querySelector(`#pb-players video[data-camera='${arguments[0]}']`);"
        "return !!v && v.readyState >= 2 && !v.seeking && v.paused && v.videoWidth > 0;", camera))


def capture(driver, camera: str) -> np.ndarray:
    """The frame the camera's <video> shows, drawn into a canvas at the video's own size."""
    url = driver.execute_script(
        "const v = document.querySelector(`#pb-players video[data-camera='${arguments[0]}']`);"
        "const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;"
        "c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png');", camera)
    image = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.std() > 5, "the captured frame is blank"
    return image


def recording_frame(data: PlaybackData, real: float) -> np.ndarray:
    """The frame ffmpeg decodes from the recorded segment file holding real time ``real``."""
    seg = next(s for s in data.first + data.second if s.start <= real < s.end)
    return frame_at(data.recordings / seg.path, real - seg.start)


def assert_shows_recording_at(driver, data: PlaybackData, camera: str, real: float) -> dict[int, float]:
    """The captured frame matches the recording's frame at ``real`` within one frame interval, and not frames a
    second away (so the comparison can tell instants apart)."""
    shown = capture(driver, camera)
    near = {k: difference(shown, recording_frame(data, real + k * FRAME)) for k in (-1, 0, 1)}
    far = {k: difference(shown, recording_frame(data, real + k)) for k in (-1, 1)}
    assert min(near.values()) < 3.0, (near, far)
    assert min(near.values()) * 2 < min(far.values()), (near, far)
    return near


def test_playback_seeks_to_the_instant_and_shows_its_frame(browser, server, pb_data):
    """Opened paused at an instant between keyframes, the page shows the recording's frame at that instant (canvas
    capture vs ffmpeg, within one frame); a second camera shows the same instant; step, +10 s and play (4x) across
    segments and the gap work."""
    assert browser.execute_script("return MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.64001f\"')"), \
        "this Chromium cannot play H.264 through Media Source Extensions"
    login(browser, server, "inv")
    wait(browser, "#nav a")
    target = pb_data.first[1].start + 2.52  # between keyframes, in the second segment
    browser.get(f"{server.url}/#/playback?camera={CAM},{CAM2}&t={target:.3f}&play=0")
    wait(browser, tile(CAM))
    until(browser, lambda d: settled(d, CAM) and settled(d, CAM2), 60, "the players never showed a frame")
    state = browser.execute_script(
        "return [...window.__cctvPlayback.players.values()].map((p) => [p.camera.id, p.position(), p.el.dataset.start,"
        " p.el.dataset.state, window.__cctvPlayback.origin, p.video.buffered.length ? p.video.buffered.start(0) : null,"
        " p.video.buffered.length ? p.video.buffered.end(0) : null])")
    assert position(browser, CAM) == pytest.approx(target, abs=0.002), (target, state)
    assert position(browser, CAM2) == pytest.approx(target, abs=0.3)  # the same instant, side by side
    assert float(css(browser, tile(CAM))[0].get_attribute("data-start")) == pytest.approx(
        pb_data.first[1].start + 2.0, abs=0.002)  # the stream began at the keyframe before the instant
    near = assert_shows_recording_at(browser, pb_data, CAM, target)
    print("frame differences around the instant:", near)
    clock = css(browser, f"{tile(CAM)} .pb-clock")[0].text
    assert time.strftime("%H:%M:%S", time.localtime(target)) in clock
    full_shot(browser, "playback")

    # one frame forward
    css(browser, "#pb-step")[0].click()
    until(browser, lambda d: settled(d, CAM) and abs(position(d, CAM) - (target + FRAME)) < 0.002, 20,
               "the step did not move one frame")
    assert_shows_recording_at(browser, pb_data, CAM, target + FRAME)
    # +10 s
    css(browser, "#pb-fwd10")[0].click()
    until(browser, lambda d: settled(d, CAM) and abs(position(d, CAM) - (target + FRAME + 10)) < 0.01, 30,
               "+10 s did not move ten seconds")
    assert_shows_recording_at(browser, pb_data, CAM, target + FRAME + 10)
    # play at 4x: crosses segment boundaries and the gap into the second recording
    css(browser, "#pb-speed option[value='4']")[0].click()
    css(browser, "#pb-play")[0].click()
    until(browser, lambda d: (position(d, CAM) or 0) > pb_data.second[0].start + 1, 60,
               "playback never crossed the gap into the second recording")
    assert css(browser, tile(CAM))[0].get_attribute("data-state") == "playing"
    css(browser, "#pb-play")[0].click()
    # segment boundaries and the continuation were crossed without waiting for data (the gap was jumped)
    stalls, trace = browser.execute_script("const p = window.__cctvPlayback.players.get(arguments[0]);"
                                           "return [p.stalls, p.trace];", CAM)
    assert stalls == 0, "\n".join(trace)
    assert not page_errors(browser)


def test_timeline_shows_the_gap_and_markers(browser, server, pb_data):
    """In Thai: the 20 s gap is drawn where it is, the plate read is a marker that plays from just before it."""
    login(browser, server, "inv", lang="th")
    wait(browser, "#nav a")
    middle = (pb_data.first[-1].end + pb_data.second[0].start) / 2
    browser.get(f"{server.url}/#/playback?camera={CAM}&t={middle:.3f}&play=0")
    wait(browser, f'#pb-timeline .gap[data-camera="{CAM}"]', visible=False)
    drawn = fresh(browser, lambda d: d.execute_script(
        "const pick = (sel) => [...document.querySelectorAll(sel)].map((el) => ({start: Number(el.dataset.start),"
        " end: Number(el.dataset.end), width: el.getBoundingClientRect().width}));"
        "return {gaps: pick(`#pb-timeline .gap[data-camera='${arguments[0]}']`),"
        " recs: pick(`#pb-timeline .rec[data-camera='${arguments[0]}']`)};", CAM))
    assert len(drawn["gaps"]) == 1 and len(drawn["recs"]) == 2, drawn
    gap = drawn["gaps"][0]
    assert gap["start"] == pytest.approx(pb_data.first[-1].end, abs=0.01)
    assert gap["end"] == pytest.approx(pb_data.second[0].start, abs=0.01)
    assert gap["width"] > 10, "the 20 s gap is not visible at the 10 min zoom"
    marker = f'#pb-timeline .marker-plate[data-event-id="{pb_data.plate_event.event_id}"]'
    wait(browser, marker, visible=False)
    # in the gap the player says there is nothing, then the marker plays from just before the read
    until(browser, lambda d: d.find_element("css selector", tile(CAM)).get_attribute("data-state") in
               ("none", "paused", "playing"), 30, "the player did not settle")
    full_shot(browser, "playback_gap_thai")
    fresh(browser, lambda d: d.find_element("css selector", marker).click())
    when = pb_data.plate_event.frame_time
    until(browser, lambda d: (position(d, CAM) or 0) >= when - 5.1, 30, "the marker did not open the event")


def test_plate_search_play_opens_footage_of_the_vehicle(browser, server, pb_data):
    login(browser, server, "op")
    wait(browser, "#nav a")
    browser.get(f"{server.url}/#/plates?q=1กอ5180")
    link = wait(browser, f'#plate-table tr[data-event-id="{pb_data.plate_event.event_id}"] a.play-link')
    when = pb_data.plate_event.frame_time
    link.click()
    until(browser, lambda d: d.execute_script("return document.getElementById('view').dataset.view") ==
               "playback")
    assert f"camera={CAM}" in browser.current_url
    # it plays from a few seconds before the read and reaches it
    until(browser, lambda d: (position(d, CAM) or 0) >= when, 60, "playback never reached the plate read")
    css(browser, "#pb-play")[0].click()
    browser.execute_script("window.__cctvPlayback.seekAll(arguments[0], {play: false})", when)
    until(browser, lambda d: settled(d, CAM) and abs(position(d, CAM) - when) < 0.002, 30)
    shown = capture(browser, CAM)
    score = cv2.minMaxLoc(cv2.matchTemplate(shown, pb_data.crop, cv2.TM_CCOEFF_NORMED))[1]
    assert score > 0.8, f"the Hilux's plate is not in the frame played at the read (match {score:.2f})"
    full_shot(browser, "playback_from_plate_search")


def test_camera_limited_user_gets_no_playback_of_another_camera(browser, server, pb_data):
    login(browser, server, "guard")
    wait(browser, "#nav a")
    t = pb_data.first[1].start + 1
    browser.get(f"{server.url}/#/playback?camera={CAM}&t={t:.3f}")
    err = wait(browser, "#pb-problem .error-box")
    assert CAM in err.text
    assert not css(browser, tile(CAM))
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(`/api/recordings/${arguments[0]}/stream?t=${arguments[1]}`, {headers: {Authorization: "
        "`Bearer ${sessionStorage.getItem('cctv.token')}`}}).then((r) => done(r.status), (e) => done(String(e)));",
        CAM, t)
    assert status == 404
    # whereas the investigator's sessions were audited with camera and range
    records = [(f[b"user"].decode(), json.loads(f[b"params"])) for _, f in server.client.xrange("audit")
               if f[b"action"] == b"playback"]
    assert any(user == "inv" and p["camera_id"] == CAM and p["from"] <= p["to"] for user, p in records)
    assert not any(user == "guard" for user, _ in records)


def test_export_dialog_opens_with_the_in_and_out_points(browser, server, pb_data):
    """Mark in, +10 s, mark out, export: the dialog holds the camera and the window, and the job asks for exactly
    that window (the export route of the evidence screen)."""
    login(browser, server, "inv")
    wait(browser, "#nav a")
    start = pb_data.first[0].start + 3.0
    browser.get(f"{server.url}/#/playback?camera={CAM}&t={start:.3f}&play=0")
    until(browser, lambda d: settled(d, CAM) and abs(position(d, CAM) - start) < 0.002, 60, "no frame")
    css(browser, "#pb-in")[0].click()
    css(browser, "#pb-fwd10")[0].click()
    until(browser, lambda d: settled(d, CAM) and abs(position(d, CAM) - (start + 10)) < 0.01, 30, "+10 s")
    css(browser, "#pb-out")[0].click()
    assert "In" in css(browser, "#pb-inout")[0].text
    css(browser, "#pb-export")[0].click()
    camera = wait(browser, "dialog #export-dialog-camera")
    assert camera.get_attribute("value") == CAM
    before = set(server.client.zrange("exports", 0, -1))
    css(browser, 'dialog [data-role="submit"]')[0].click()
    until(browser, lambda d: set(server.client.zrange("exports", 0, -1)) - before, 30, "no export job was created")
    job_id = (set(server.client.zrange("exports", 0, -1)) - before).pop().decode()
    job = {k.decode(): v.decode() for k, v in server.client.hgetall(f"export:{job_id}").items()}
    assert job["camera_id"] == CAM and job["requester"] == "inv"
    assert float(job["start"]) == pytest.approx(start, abs=0.01)
    assert float(job["end"]) == pytest.approx(start + 10, abs=0.01)


def test_playback_without_a_time_opens_on_the_newest_recording(browser, server, pb_data):
    """Opened with no time, when nothing was recorded five minutes ago (the recordings end over five minutes
    back), the page starts at the newest recording of the camera, not on a black "no recording" tile."""
    assert pb_data.second[-1].end < time.time() - 300  # the old default instant has no recording
    login(browser, server, "inv")
    wait(browser, "#nav a")
    browser.get(f"{server.url}/#/playback?camera={CAM}&play=0")
    wait(browser, tile(CAM))
    until(browser, lambda d: settled(d, CAM), 60, "the player never showed a frame")
    assert css(browser, tile(CAM))[0].get_attribute("data-state") != "none"
    assert position(browser, CAM) == pytest.approx(pb_data.second[0].start, abs=0.05)
    assert capture(browser, CAM) is not None  # a real, non-blank frame
    full_shot(browser, "playback_default_newest")
    assert not page_errors(browser)


def test_play_button_pause_icon_is_drawn_not_a_missing_glyph(browser, server, pb_data):
    """The play button shows a CSS-drawn pause icon while playing (the pause sign U+23F8 is not in the page's
    fonts) and a play icon while paused."""
    login(browser, server, "inv")
    wait(browser, "#nav a")
    browser.get(f"{server.url}/#/playback?camera={CAM}&t={pb_data.first[0].start + 1:.3f}")
    button = wait(browser, "#pb-play[data-playing='true']")
    assert "⏸" not in button.text and "Pause" in button.text
    size = browser.execute_script("const r = document.querySelector('#pb-play .pb-icon-pause').getBoundingClientRect();"
                                  "return [r.width, r.height];")
    assert size[0] > 4 and size[1] > 4, size
    shot(browser, "playback_pause_icon")
    button.click()
    button = wait(browser, "#pb-play[data-playing='false']")
    assert css(browser, "#pb-play .pb-icon-play") and "Play" in button.text
