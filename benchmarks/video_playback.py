"""Recorded playback benchmark (issue 15): time from a seek to the first frame.

    python -m benchmarks.video_playback [--seeks 20] [--loops 20] [--no-browser] [--json OUT] [--png OUT]

Real parts: the 720p Bangkok sample as the test cameras serve it (H.264, 25 fps, a keyframe every second) recorded
``--loops`` times back to back as camera ``cam00`` in 6 s Matroska segments by stream copy and indexed by the
recorder's own finaliser, the API as its own process (``uvicorn api.main:create_app``, :class:`benchmarks.video.
ApiProcess`) with a private redis-server, and seeks to random instants of the recording (each far from the last,
so nothing is served from a buffer).

- ``seek_api_headers_s`` / ``seek_api_first_fragment_s``: request -> response headers, and -> the first complete
  fMP4 fragment (``moof`` + ``mdat``: a decodable keyframe) at an HTTP client. Server side: keyframe lookup
  (ffprobe, cached per segment), ffmpeg concat remux start.
- ``seek_api_cpu_s``: CPU seconds the API process and its ffmpeg remuxers spend per seek (independent of how
  loaded the host is, unlike the wall times).
- ``seek_browser_s``: in headless Chromium on the playback page, ``seekAll(t)`` until the player shows the frame
  at ``t`` (video ``seeked`` with a decoded frame; a new MediaSource, the stream fetched with the bearer token,
  the init segment and fragments appended, the decoder run from the keyframe to ``t``). When measured this is
  ``seek_first_frame_s``; without selenium/Chromium (``--no-browser``) ``seek_first_frame_s`` is the server part
  (first fragment) and ``seek_first_frame_method`` says so.

:func:`benchmarks.video.measure_seek_first_frame` runs this with fewer seeks for ``python -m benchmarks.video``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import save_results
from pipeline.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
VIDEO = "thai_bangkok_night_dashcam_bus.mp4"
CAMERA = "cam00"
GOAL_S = 1.0


def record(client, recordings: Path, video: Path, loops: int, real_start: float) -> list:
    """The camera stream of ``video`` recorded ``loops`` times back to back (segment muxer, stream copy, 6 s
    segments), finalised and indexed by the recorder's :class:`SegmentFinalizer`; returns the segments."""
    from pipeline.recording.recorder import SegmentFinalizer, incoming_dir
    from pipeline.testcams import cached_transcode

    source = cached_transcode(video, "h264")
    folder = incoming_dir(recordings, CAMERA)
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder.parent / "list.csv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(source),
                    "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_time", "6", "-segment_format", "matroska",
                    "-reset_timestamps", "1", "-segment_list", str(listing), "-segment_list_type", "csv",
                    str(folder / f"{CAMERA}_%04d.mkv")], check=True, timeout=600)
    finalizer = SegmentFinalizer(client, recordings, CAMERA)
    segments = []
    for line in listing.read_text().splitlines():
        segments.append(finalizer.on_list_line(line, arrival=real_start + float(line.rsplit(",", 1)[1])))
    return [s for s in segments if s is not None]


def first_fragment_end(data: bytes) -> bool:
    """Whether ``data`` (the start of an fMP4 stream) holds a complete ``moof`` followed by its ``mdat``."""
    pos, seen_moof = 0, False
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size < 8 or pos + size > len(data):
            return False
        if kind == b"moof":
            seen_moof = True
        elif kind == b"mdat" and seen_moof:
            return True
        pos += size
    return False


def api_seeks(base: str, token: str, instants: list[float]) -> list[dict[str, float]]:
    """Per seek: seconds to the response headers and to the first complete fragment."""
    import httpx

    out = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for i, t in enumerate(instants):
            t0 = time.perf_counter()
            with client.stream("GET", f"/api/recordings/{CAMERA}/stream", params={"t": f"{t:.3f}"}) as r:
                headers = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"seek to {t}: HTTP {r.status_code} {r.read()[:300]!r}")
                data = b""
                for chunk in r.iter_bytes():
                    data += chunk
                    if first_fragment_end(data):
                        break
                fragment = time.perf_counter() - t0
            out.append({"t": t, "headers_s": headers, "first_fragment_s": fragment})
            print(f"  api seek {i + 1}/{len(instants)}: headers {headers:.3f} s, first fragment {fragment:.3f} s")
    return out


def browser_seeks(base: str, username: str, password: str, instants: list[float]) -> list[float] | str:
    """Seconds from ``seekAll(t)`` to the frame at ``t`` shown, in headless Chromium; a reason string when the
    browser cannot run."""
    chromium, chromedriver = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and chromedriver.exists()):
        return "chromium/chromedriver not installed"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return "selenium not installed"
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1600,1000", "--lang=en-GB",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
    times: list[float] = []
    try:
        driver.set_script_timeout(60)
        driver.get(base + "/#/alerts")
        driver.execute_script("localStorage.setItem('cctv.lang', 'en')")
        driver.refresh()
        wait = WebDriverWait(driver, 30, poll_frequency=0.1)
        wait.until(lambda d: d.find_element("id", "login-username").is_displayed())
        driver.find_element("id", "login-username").send_keys(username)
        driver.find_element("id", "login-password").send_keys(password)
        driver.find_element("id", "login-submit").click()
        wait.until(lambda d: d.find_elements("css selector", "#nav a"))
        driver.get(f"{base}/#/playback?camera={CAMERA}&t={instants[0] - 60:.3f}&play=0")
        wait.until(lambda d: d.execute_script("const r = window.__cctvPlayback; const p = r && r.players.get("
                                              "arguments[0]); return p && p.el.dataset.state === 'paused';", CAMERA))
        for i, t in enumerate(instants):
            elapsed = driver.execute_async_script(
                "const done = arguments[arguments.length - 1]; const r = window.__cctvPlayback;"
                "const t0 = performance.now();"
                "const p = r.players.get(arguments[1]);"
                "const timer = setTimeout(() => done({stuck: [p.generation, p.pending, p.loading, p.el.dataset.state,"
                " p.video.currentTime, p.video.readyState, p.video.seeking, p.ms.readyState, !!p.sb,"
                " [...Array(p.video.buffered.length).keys()].map((i) => [p.video.buffered.start(i),"
                " p.video.buffered.end(i)]), r.origin]}), 30000);"
                "r.seekAll(arguments[0], {play: false}).then(() => { clearTimeout(timer);"
                " done(Math.abs(p.position() - arguments[0]) < 0.01 && p.video.readyState >= 2"
                "      ? (performance.now() - t0) / 1000 : {position: p.position(), ready: p.video.readyState,"
                "      state: p.el.dataset.state, t: p.video.currentTime, pending: p.pending, trace: p.trace}); });", t, CAMERA)
            if not isinstance(elapsed, (int, float)):
                raise RuntimeError(f"the player did not show the instant {t}: {elapsed}")
            times.append(float(elapsed))
            print(f"  browser seek {i + 1}/{len(instants)}: {elapsed:.3f} s to the frame")
    finally:
        driver.quit()
    return times


def pick_instants(segments: list, count: int, seed: int = 7) -> list[float]:
    """Random instants alternately in the first and the last 120 s of the recording (so each seek lands far from
    anything a previous stream request buffered)."""
    rng = random.Random(seed)
    lo, hi = segments[0].start + 1, segments[-1].end - 5
    if hi - lo < 400:
        raise ValueError("the recording is too short for far seeks: record more --loops")
    return [round(rng.uniform(lo, lo + 120) if i % 2 == 0 else rng.uniform(hi - 120, hi), 3) for i in range(count)]


def measure(seeks: int = 20, loops: int = 20, browser: bool = True) -> dict[str, Any]:
    """Record, start the API, seek; the result fields (see the module docstring)."""
    import redis

    from benchmarks.ingest import RedisProcess
    from benchmarks.video import PASSWORD, ApiProcess

    videos = Path(os.environ.get("CCTV_VIDEOS_DIR", PROJECT_ROOT.parent / "shared" / "data" / "videos"))
    redis_proc = RedisProcess()
    workdir = Path(tempfile.mkdtemp(prefix="bench-playback-"))
    try:
        client = redis.Redis.from_url(redis_proc.url)
        print(f"recording {loops} x the sample as {CAMERA} (6 s segments, stream copy) ...")
        segments = record(client, workdir / "rec", videos / VIDEO, loops, time.time() - 3600)
        print(f"  {len(segments)} segments, {segments[-1].end - segments[0].start:.0f} s")
        api = ApiProcess(redis_proc.url, f"cameras:\n  - {{id: {CAMERA}, name: 'Bench playback', "
                                         f"url: 'rtsp://127.0.0.1:9/none'}}\n", workdir)
        try:
            instants = pick_instants(segments, seeks)
            print(f"{seeks} seeks through the API ...")
            cpu0 = process_cpu(api.proc.pid)
            api_runs = api_seeks(api.base, api.token, instants)
            cpu_per_seek = (process_cpu(api.proc.pid) - cpu0) / len(instants)
            browser_runs: list[float] | str = "not asked (--no-browser)"
            if browser:
                print(f"{seeks} seeks in headless Chromium ...")
                browser_runs = browser_seeks(api.base, "bench", PASSWORD, pick_instants(segments, seeks, seed=11))
        finally:
            api.stop()
    finally:
        redis_proc.stop()
    result = summarise(api_runs, browser_runs, len(segments))
    result["seek_api_cpu_s"] = cpu_per_seek
    return result


def process_cpu(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (the ffmpeg remuxers of ended streams)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarise(api_runs: list[dict[str, float]], browser_runs: list[float] | str, segments: int) -> dict[str, Any]:
    headers = [r["headers_s"] for r in api_runs]
    fragments = [r["first_fragment_s"] for r in api_runs]
    measured = isinstance(browser_runs, list) and browser_runs
    out = {
        "seek_api_headers_s": statistics.median(headers),
        "seek_api_first_fragment_s": statistics.median(fragments),
        "seek_api_first_fragment_p95_s": pct(fragments, 95),
        "seek_browser_s": statistics.median(browser_runs) if measured else None,
        "seek_browser_p95_s": pct(browser_runs, 95) if measured else None,
        "seek_browser_note": None if measured else browser_runs,
        "seeks": len(api_runs),
        "segments": segments,
        "goal_s": GOAL_S,
        "api_runs": api_runs,
        "browser_runs": browser_runs if measured else [],
    }
    out["seek_first_frame_s"] = out["seek_browser_s"] if measured else out["seek_api_first_fragment_s"]
    out["seek_first_frame_method"] = ("headless Chromium: seekAll(t) -> the frame at t shown (MSE, new stream)"
                                      if measured else "server part only: request -> first complete fMP4 fragment")
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'measure':>32} {'p50 s':>8} {'p95 s':>8}")
    rows = [("API: headers", result["seek_api_headers_s"], None),
            ("API: first fragment", result["seek_api_first_fragment_s"], result["seek_api_first_fragment_p95_s"]),
            ("browser: seek -> frame shown", result["seek_browser_s"], result["seek_browser_p95_s"])]
    for name, p50, p95 in rows:
        fmt = lambda v: f"{v:8.3f}" if v is not None else f"{'-':>8}"  # noqa: E731
        print(f"{name:>32} {fmt(p50)} {fmt(p95)}")
    if result.get("seek_api_cpu_s") is not None:
        print(f"{'API CPU per seek (load-free)':>32} {result['seek_api_cpu_s']:8.3f}  (API process + its ffmpeg, "
              f"CPU seconds; the wall times above depend on the host's load)")
    print(f"{'seek_first_frame_s':>32} {result['seek_first_frame_s']:8.3f}  ({result['seek_first_frame_method']}; "
          f"goal < {GOAL_S} s)")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    series = [("API first fragment", [r["first_fragment_s"] for r in result["api_runs"]])]
    if result["browser_runs"]:
        series.append(("browser: frame shown", result["browser_runs"]))
    ax.boxplot([s[1] for s in series])
    ax.set_xticks(range(1, len(series) + 1), [s[0] for s in series])
    ax.axhline(GOAL_S, color="grey", ls="--", label=f"goal {GOAL_S} s")
    ax.set_ylabel("seconds after the seek")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Recorded playback: seek -> first frame ({result['seeks']} random seeks)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeks", type=int, default=20, help="random seeks (API and browser each)")
    parser.add_argument("--loops", type=int, default=20, help="times the 24 s sample is recorded back to back")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium part")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "video_playback.json")
    parser.add_argument("--png", type=Path, default=RESULTS_DIR / "video_playback.png")
    args = parser.parse_args(argv)
    result = measure(args.seeks, args.loops, not args.no_browser)
    save_results(result, args, print_table, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
