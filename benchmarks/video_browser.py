"""The browser part of ``python -m benchmarks.video --browser``: display latency and first frame in headless Chromium.

The video wall (``#/wall``) is opened in Debian's headless Chromium (selenium) with a layout of the first cameras.
Each tile's player records, through ``requestVideoFrameCallback``, the wall-clock time at which every frame is
presented (``performance.timeOrigin + expectedDisplayTime``) with its media time; the media time maps to the frame's
RTP timestamp as in :mod:`benchmarks.video` and so to the moment the test camera sent it. Headless Chromium has no
real display: "presented" is when the compositor would show the frame (software decode, no GPU).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
GRID_FOR = {1: "1", 4: "2x2", 9: "3x3", 16: "4x4"}


def _driver(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1600,1000",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def measure_browser(base: str, username: str, password: str, cameras: list[str], log, seconds: float,
                    results_dir: Path) -> dict[str, Any]:
    """``browser_latency_p50_s`` / ``_p95_s`` (camera -> presented) and ``browser_first_frame_s`` of the wall (its
    cameras preloaded, as the API does for a saved layout: what a control-room user opening its wall gets)."""
    import tempfile

    import httpx

    token = httpx.post(f"{base}/api/auth/login", json={"username": username, "password": password},
                       timeout=30).json()["access_token"]
    grid = next(g for n, g in sorted(GRID_FOR.items()) if n >= len(cameras))
    httpx.put(f"{base}/api/live/layout", headers={"Authorization": f"Bearer {token}"}, timeout=30,
              json={"grid": grid, "tiles": cameras, "stream": "main"}).raise_for_status()
    deadline = time.time() + 60  # a saved layout's cameras are preloaded (CCTV_LIVE_PRELOAD): what a user gets
    while time.time() < deadline and not all(
            httpx.get(f"{base}/api/live/{cam}/info", headers={"Authorization": f"Bearer {token}"},
                      timeout=30).json().get("status") == "live" for cam in cameras):
        time.sleep(0.2)
    driver = _driver(Path(tempfile.mkdtemp(prefix="bench-chromium-")))
    try:
        driver.get(f"{base}/#/wall")
        driver.execute_script("sessionStorage.setItem('cctv.token', arguments[0]);", token)
        driver.get(f"{base}/#/wall")
        driver.refresh()
        deadline = time.time() + 60
        first: dict[str, float] = {}
        while time.time() < deadline and len(first) < len(cameras):
            stats = driver.execute_script(
                "return window.__wall ? window.__wall.tiles.filter(t => t.player).map(t => "
                "[t.cameraId, t.player.stats.firstFrameAt, t.player.stats.openedAt]) : []")
            for camera, first_at, opened_at in stats:
                if first_at and camera not in first:
                    first[camera] = (first_at - opened_at) / 1000
            time.sleep(0.2)
        driver.execute_script("window.__wall.tiles.forEach(t => t.player && (t.player.stats.frames = []))")
        print(f"  browser: {len(first)} tiles playing; measuring {seconds:.0f} s ...")
        time.sleep(seconds)
        frames = driver.execute_script(
            "return window.__wall.tiles.filter(t => t.player).map(t => [t.cameraId, t.player.stats.frames])")
        lags = driver.execute_script(
            "return window.__wall.tiles.filter(t => t.player && t.video.buffered.length).map(t => "
            "t.video.buffered.end(t.video.buffered.length - 1) - t.video.currentTime)")
        print(f"  browser: buffered ahead of the playhead (s): {[round(x, 3) for x in lags]}")
        driver.save_screenshot(str(results_dir / "video_browser_wall.png"))
    finally:
        driver.quit()
    latencies = []
    for camera, presented in frames:
        for wall_ms, media_time in presented:
            sent = log.sent_at(camera, media_time)
            if sent is not None:
                latencies.append(wall_ms / 1000 - sent)
    latencies.sort()

    def pct(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, round(q / 100 * (len(latencies) - 1)))] if latencies else None

    result = {"browser_latency_p50_s": pct(50), "browser_latency_p95_s": pct(95),
              "browser_latency_samples": len(latencies), "browser_tiles": len(cameras),
              "browser_first_frame_s": statistics.median(first.values()) if first else None,
              "browser_method": "camera hands frame to RTSP -> requestVideoFrameCallback expectedDisplayTime in "
                                "headless Chromium (software decode)"}
    print("  browser:", json.dumps({k: v for k, v in result.items() if k != "browser_method"}))
    return result
