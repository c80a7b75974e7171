"""Video benchmark (issue 15): live latency, time to first frame, and what live viewers cost the server.

    python -m benchmarks.video [--cameras 8] [--viewers 1,4,16] [--seconds 20] [--json OUT] [--png OUT]

Everything is real: loopback RTSP cameras (:mod:`pipeline.testcams`, the 720p Bangkok sample, H.264 at 25 fps with a
keyframe every second) run in this process, the API (``uvicorn api.main:create_app``) runs as its own process with
its live hub and a private redis-server, and viewers are WebSocket clients that authenticate like the web page
(token as the first message) and read every message without decoding.

**Live latency, capture -> received** (``live_latency_*``): the test camera records, for its RTSP connection to the
hub, the wall-clock time at which it hands each frame's first RTP packet to the connection (the frame's RTP
timestamp); a viewer records the wall-clock time at which each fragment arrives and maps it to the frame by its
decode time (``tfdt``; the RTP and MP4 timelines differ by the first frame's timestamp; no B-frames). Same clock,
same machine. Not included: a real camera's own encoder delay (the test camera sends pre-encoded frames, a real
one adds its encoder's tens to a few hundred ms) and the browser's decode and display (``--browser`` measures
that part in headless Chromium on the video wall when selenium and chromium are there: ``browser_*`` fields).

**Time to first frame** (WebSocket opened -> first fragment received). ``live_first_frame_s``: what a control-room
user opening its wall gets: the first viewer of a camera of a saved wall layout, which the API preloads by default
(``CCTV_LIVE_PRELOAD=layouts``: its upstream already runs with no viewer, the viewer starts from the hub's keyframe
cache); the benchmark saves a layout of the first ``--wall-cameras`` cameras and waits until the API shows them
preloaded. ``live_first_frame_cold_s``: the first viewer of a camera nobody watches and no layout holds (the hub
starts the upstream: ffmpeg, RTSP set-up and the camera's next keyframe, which the test cameras send every second;
the camera's source is already running, as a real camera's encoder is), one per camera, each opened at a random
instant of the keyframe interval (median of the cameras), measured before any layout is saved, with
its breakdown (``live_first_frame_cold_breakdown``: ffmpeg start to the camera's RTSP PLAY, the camera's wait for
its next keyframe, the hub's first fragment after ffmpeg started, and the rest: WebSocket, authentication,
subscription). ``live_first_frame_warm_s``: a second viewer of a camera already streaming. Idle cost of preloading:
``cpu_cores_per_preloaded_camera`` (API + ffmpeg cores with the wall's cameras preloaded and no viewer, less the
cores with nothing running, per camera).

**Cost**: CPU (user+system) and RSS of the API process and its ffmpeg children, first with no viewer (baseline),
then with V viewers on each of the N cameras for ``--seconds``: cores per camera (one viewer each) and
``cpu_cores_per_viewer`` (the slope between the smallest and the largest viewer count). The camera server and one
latency-measuring viewer per camera run in this process, the other viewers in ``--client-procs`` processes of their
own (:mod:`benchmarks.video_clients`); neither is charged to the API, and the table shows both (``bench cores``,
``client cores``) so that a phase whose clients, not the API, were the limit can be told. ``delivered`` is the share
of the camera's frames a viewer got. The server may send several fragments in one WebSocket message (a viewer that
fell a little behind); every client counts fragments, not messages.

``seek_first_frame_s`` (recorded playback) is filled by :func:`measure_seek_first_frame` when the playback benchmark
is present; ``null`` otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.ingest import RedisProcess, tree_cpu_rss
from benchmarks.report import save_results
from benchmarks.video_clients import ACK_EVERY, ClientPool, count_fragments
from pipeline import testcams
from pipeline.settings import PROJECT_ROOT
from pipeline.testcams import TestCameraServer

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
VIDEO = "thai_bangkok_night_dashcam_bus"  # 1280x720
PASSWORD = "video-wall-pass-1"  # the password rules: no user name in it
RTP_CLOCK = 90_000


# -- camera-side send times --------------------------------------------------------------------------------------
class SendLog:
    """Wall-clock time each frame (RTP timestamp) was handed to each RTSP connection, per stream name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, dict[str, Any]] = {}
        self.connected: dict[str, float] = {}  # stream -> when its newest RTSP connection started playing

    def install(self) -> None:
        """Wrap the test camera's per-connection packet hand-over (the benchmark's own camera server only)."""
        original_offer, original_add = testcams._Viewer.offer, testcams._Source.add_viewer
        log = self

        def add_viewer(source, viewer) -> None:
            viewer.bench_stream = source.name
            with log.lock:
                log.connected[source.name] = time.time()  # the RTSP PLAY of a new connection (the hub's upstream)
            original_add(source, viewer)

        def offer(viewer, packet: bytes, key: bool) -> None:
            original_offer(viewer, packet, key)
            if viewer.waiting_for_key or len(packet) < 12:
                return
            ts = int.from_bytes(packet[4:8], "big")
            with log.lock:
                entry = log.streams.get(viewer.bench_stream)
                if entry is None or entry["viewer"] != id(viewer):  # a new connection (the hub's upstream)
                    entry = log.streams[viewer.bench_stream] = {"viewer": id(viewer), "first": ts, "times": {},
                                                                "first_at": time.time()}
                entry["times"].setdefault(ts, time.time())

        testcams._Viewer.offer, testcams._Source.add_viewer = offer, add_viewer

    def keyframe_wait(self, stream: str) -> tuple[float | None, float | None]:
        """(when the newest connection started playing, seconds it waited for the camera's first keyframe)."""
        with self.lock:
            connected, entry = self.connected.get(stream), self.streams.get(stream)
            if connected is None or entry is None:
                return connected, None
            return connected, entry["first_at"] - connected

    def frames_sent(self) -> int:
        """Frames the cameras handed to the hub's connections so far (all streams)."""
        with self.lock:
            return sum(len(entry["times"]) for entry in self.streams.values())

    def sent_at(self, stream: str, offset_s: float) -> float | None:
        """When the frame ``offset_s`` after the connection's first frame was sent."""
        with self.lock:
            entry = self.streams.get(stream)
            if entry is None:
                return None
            ts = (entry["first"] + round(offset_s * RTP_CLOCK)) % 2**32
            for delta in (0, -1, 1, -2, 2):  # rounding of the 25 fps clock (3600 ticks a frame)
                found = entry["times"].get((ts + delta) % 2**32)
                if found is not None:
                    return found
        return None


# -- fragments ---------------------------------------------------------------------------------------------------
def decode_time(fragment: bytes) -> int | None:
    """tfdt of a moof+mdat fragment."""
    from pipeline.live.fmp4 import Fmp4Error, fragment_facts

    try:
        return fragment_facts(fragment).decode_time
    except (Fmp4Error, struct.error, IndexError):
        return None


def split_fragments(message: bytes) -> list[bytes]:
    """The ``moof``+``mdat`` fragments of a binary live message (the server may send several in one)."""
    out, pos, start = [], 0, None
    while pos + 8 <= len(message):
        size, kind = struct.unpack_from(">I4s", message, pos)
        if size < 8:
            break
        if kind == b"moof":
            start = pos
        elif kind == b"mdat" and start is not None:
            out.append(message[start:pos + size])
            start = None
        pos += size
    return out


def timescale(init: bytes) -> int:
    from pipeline.live.fmp4 import init_facts

    return init_facts(init).timescale


class ViewerStats:
    """One headless viewer's counters."""

    def __init__(self, camera: str, stream: str) -> None:
        self.camera, self.stream = camera, stream
        self.opened = time.time()
        self.first_fragment: float | None = None
        self.fragments = 0
        self.bytes = 0
        self.latencies: list[float] = []
        self.closed_with: str | None = None


async def run_viewer(base: str, token: str, stats: ViewerStats, log: SendLog, stop: asyncio.Event,
                     measure: bool) -> None:
    """A WebSocket viewer: token first, then read (no decoding); latencies when ``measure``."""
    import websockets

    stats.opened = time.time()
    scale, acked = 90_000, 0
    try:
        async with websockets.connect(f"{base}/api/live/{stats.camera}/ws", max_size=2**24) as ws:
            await ws.send(json.dumps({"token": token}))
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                now = time.time()
                if isinstance(message, str):
                    continue
                if message[4:8] == b"ftyp":
                    scale = timescale(message)
                    continue
                fragments = split_fragments(message) if measure else [b""] * count_fragments(message)
                stats.fragments += len(fragments)
                stats.bytes += len(message)
                if stats.fragments - acked >= ACK_EVERY:  # flow control, as the web page does
                    acked = stats.fragments
                    await ws.send(json.dumps({"ack": stats.fragments}))
                if stats.first_fragment is None:
                    stats.first_fragment = now
                for fragment in fragments if measure else ():
                    dts = decode_time(fragment)
                    sent = log.sent_at(stats.stream, dts / scale) if dts is not None else None
                    if sent is not None:
                        stats.latencies.append(now - sent)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        stats.closed_with = f"{type(exc).__name__}: {exc}"


# -- the API process ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiProcess:
    """``uvicorn api.main:create_app --factory`` with a cameras.yaml of the test cameras."""

    def __init__(self, redis_url: str, cameras_yaml: str, workdir: Path) -> None:
        self.port = free_port()
        config = workdir / "cameras.yaml"
        config.write_text(cameras_yaml, encoding="utf-8")
        env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_CONFIG_PATH": str(config),
               "CCTV_RECORDINGS_DIR": str(workdir / "rec"), "CCTV_REDIS_ALLOW_VOLATILE": "1", "CCTV_SCRYPT_N": "16",
               "CCTV_ADMIN_USER": "bench", "CCTV_ADMIN_PASSWORD": PASSWORD, "CCTV_LIVE_STREAMS_PER_USER": "256",
               "CCTV_LIVE_STREAMS_TOTAL": "1000", "CCTV_LIVE_LINGER_S": "2",
               # only the bench user's saved wall is preloaded: the cold and idle phases need cameras nobody holds
               "CCTV_LIVE_PRELOAD_DEFAULT_WALL": "0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
                                      "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                                      "--ws-ping-interval", "0", "--ws-per-message-deflate", "false"],
                                     cwd=PROJECT_ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=(workdir / "api.log").open("wb"))
        self.log_path = workdir / "api.log"
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        import httpx

        while True:
            try:
                if httpx.get(f"{self.base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the API did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        self.token = httpx.post(f"{self.base}/api/auth/login", json={"username": "bench", "password": PASSWORD},
                                timeout=30).json()["access_token"]

    def cpu_rss(self) -> tuple[float, float]:
        return tree_cpu_rss(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- phases ------------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def first_frames(api: ApiProcess, log: SendLog, cameras: list[str], kind: str) -> dict[str, Any]:
    """Time to the first fragment of a first viewer (``kind``: cold = no upstream, preloaded = upstream running
    with no viewer) and of a second viewer that joins it (warm); for cold ones, where the time went."""
    ws_base = api.base.replace("http", "ws", 1)
    cold, warm, breakdown = [], [], []
    jitter = random.Random(15)
    for cam in cameras if kind == "cold" else cameras[:3]:
        # the test cameras loop one clip from the same instant: their keyframes are in step, and a viewer opened
        # right after the previous camera's first fragment would always wait almost a whole keyframe interval;
        # a random instant within the 1 s interval is what a user opening a camera meets
        await asyncio.sleep(jitter.uniform(0.0, 1.0))
        stop = asyncio.Event()
        a = ViewerStats(cam, cam)
        task = asyncio.create_task(run_viewer(ws_base, api.token, a, log, stop, measure=False))
        while a.first_fragment is None and a.closed_with is None and time.time() - a.opened < 60:
            await asyncio.sleep(0.01)
        b = ViewerStats(cam, cam)
        task_b = asyncio.create_task(run_viewer(ws_base, api.token, b, log, stop, measure=False))
        while b.first_fragment is None and b.closed_with is None and time.time() - b.opened < 60:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(task, task_b)
        if a.first_fragment:
            cold.append(a.first_fragment - a.opened)
            if kind == "cold":
                breakdown.append(cold_breakdown(api, log, cam, a))
        if b.first_fragment:
            warm.append(b.first_fragment - b.opened)
    await asyncio.sleep(3)  # the upstreams linger 2 s, then stop: the next phase starts from nothing
    return {kind: cold, "warm": warm, "breakdown": breakdown}


def cold_breakdown(api: ApiProcess, log: SendLog, camera: str, viewer: ViewerStats) -> dict[str, float | None]:
    """Where a cold first frame's time went, from the hub's session start (the info route's ``startup``) and the
    test camera's RTSP PLAY and first keyframe (this process's camera server, same clock). The session's start is
    taken as the viewer's first fragment less the hub's ``first_fragment_s`` (forwarding a fragment takes ~1 ms)."""
    import httpx

    info = httpx.get(f"{api.base}/api/live/{camera}/info", headers={"Authorization": f"Bearer {api.token}"},
                     timeout=30).json()
    startup = info.get("startup") or {}
    connected, key_wait = log.keyframe_wait(camera)
    hub_first = startup.get("first_fragment_s")
    out: dict[str, float | None] = {
        "total_s": viewer.first_fragment - viewer.opened, "ffmpeg_spawn_s": startup.get("spawn_s"),
        "websocket_auth_subscribe_s": None, "ffmpeg_start_to_rtsp_play_s": None, "camera_keyframe_wait_s": key_wait,
        "keyframe_to_fragment_s": None, "hub_first_fragment_s": hub_first}
    if hub_first is None or viewer.first_fragment is None:
        return out
    session_start = viewer.first_fragment - hub_first
    out["websocket_auth_subscribe_s"] = session_start - viewer.opened
    if connected is not None and key_wait is not None:
        out["ffmpeg_start_to_rtsp_play_s"] = connected - session_start
        out["keyframe_to_fragment_s"] = viewer.first_fragment - (connected + key_wait)
    return out


def bench_cpu() -> float:
    """User+system CPU seconds of this process (test cameras and the latency-measuring viewers)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def load_phase(api: ApiProcess, log: SendLog, cameras: list[str], per_camera: int, seconds: float,
                     measure: bool, client_procs: int) -> dict[str, Any]:
    """``per_camera`` viewers on every camera for ``seconds`` (after a warm-up): one per camera in this process
    (latency), the others in ``client_procs`` processes; the API's CPU and RSS, and the clients'."""
    ws_base = api.base.replace("http", "ws", 1)
    stop = asyncio.Event()
    viewers = [ViewerStats(cam, cam) for cam in cameras]
    tasks = [asyncio.create_task(run_viewer(ws_base, api.token, v, log, stop, measure)) for v in viewers]
    pool = ClientPool(ws_base, api.token, [cam for cam in cameras for _ in range(per_camera - 1)], client_procs)
    deadline = time.time() + 60
    while (any(v.first_fragment is None and v.closed_with is None for v in viewers)
           or pool.started() < pool.size) and time.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # steady state
    for v in viewers:
        v.latencies.clear()
    frags0 = sum(v.fragments for v in viewers) + pool.fragments()
    sent0 = log.frames_sent()
    cpu0, _ = api.cpu_rss()
    bench0, clients0 = bench_cpu(), pool.cpu_seconds()
    t0 = time.monotonic()
    rss_samples = []
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1.0)
        rss_samples.append(api.cpu_rss()[1])
        print(f"\r  {per_camera} viewer(s) x {len(cameras)} cameras: {time.monotonic() - t0:4.0f}/{seconds:.0f} s",
              end="", flush=True)
    cpu1, _ = api.cpu_rss()
    bench1, clients1 = bench_cpu(), pool.cpu_seconds()
    elapsed = time.monotonic() - t0
    frags = sum(v.fragments for v in viewers) + pool.fragments() - frags0
    camera_fps = (log.frames_sent() - sent0) / elapsed / len(cameras)
    stop.set()
    pool.stop()
    await asyncio.gather(*tasks)
    print()
    latencies = [x for v in viewers for x in v.latencies]
    errors = sorted({v.closed_with for v in viewers if v.closed_with})
    if pool.failed():
        errors.append(f"{pool.failed()} client-process viewer(s) closed")
    total = len(viewers) + pool.size
    return {"viewers_per_camera": per_camera, "viewers": total, "cores": (cpu1 - cpu0) / elapsed,
            "bench_cores": (bench1 - bench0) / elapsed, "client_cores": (clients1 - clients0) / elapsed,
            "load_1m": os.getloadavg()[0],
            "rss_mb": statistics.mean(rss_samples) / 2**20, "fragments_per_s": frags / elapsed,
            "fragments_per_viewer_s": frags / elapsed / total, "camera_fps": camera_fps,
            "delivered_share": frags / elapsed / total / camera_fps if camera_fps else None,
            "errors": errors, "latencies": latencies}


async def idle_phase(api: ApiProcess, seconds: float) -> dict[str, Any]:
    cpu0, _ = api.cpu_rss()
    bench0 = bench_cpu()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, rss = api.cpu_rss()
    elapsed = time.monotonic() - t0
    return {"viewers_per_camera": 0, "viewers": 0, "cores": (cpu1 - cpu0) / elapsed,
            "bench_cores": (bench_cpu() - bench0) / elapsed, "client_cores": 0.0, "load_1m": os.getloadavg()[0],
            "rss_mb": rss / 2**20, "fragments_per_s": 0.0, "fragments_per_viewer_s": 0.0, "errors": [],
            "latencies": []}


async def put_layout(api: ApiProcess, cameras: list[str]) -> None:
    """Save the bench user's wall layout (an empty one: nothing to preload)."""
    import httpx

    grid = next(g for g, n in (("1", 1), ("2x2", 4), ("3x3", 9), ("4x4", 16)) if n >= len(cameras))
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.put(f"{api.base}/api/live/layout", headers={"Authorization": f"Bearer {api.token}"},
                             json={"grid": grid, "tiles": cameras, "stream": "main"})
        r.raise_for_status()


async def wait_preloaded(api: ApiProcess, cameras: list[str], timeout_s: float = 60.0) -> bool:
    """Until the API shows every camera preloaded and live (no viewer)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            infos = [(await client.get(f"{api.base}/api/live/{cam}/info?stream=main",
                                       headers={"Authorization": f"Bearer {api.token}"})).json() for cam in cameras]
            if all(i.get("preloaded") and i.get("status") == "live" for i in infos):
                return True
            await asyncio.sleep(0.2)
    return False


def measure_seek_first_frame(args: argparse.Namespace) -> float | None:
    """Recorded playback: seconds from a seek to the first frame shown (:mod:`benchmarks.video_playback`: 8 random
    far seeks in real recorded segments, in headless Chromium on the playback page when it is installed, else the
    server part up to the first fMP4 fragment). Its whole result (API and browser figures, method) is written
    beside ``--json`` as ``<name>.playback.json``."""
    from benchmarks.video_playback import measure, print_table

    result = measure(seeks=8, loops=20, browser=True)
    print_table(result)
    path = args.json.with_suffix(".playback.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result["seek_first_frame_s"]


# -- report ------------------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(firsts: dict[str, Any], phases: list[dict[str, Any]], cameras: int, browser: dict[str, Any] | None,
              preload_idle: dict[str, Any] | None, wall_cameras: int) -> dict[str, Any]:
    idle = phases[0]
    loaded = [p for p in phases if p["viewers_per_camera"] > 0]
    latencies = loaded[0]["latencies"] if loaded else []
    first, last = (loaded[0], loaded[-1]) if loaded else (idle, idle)
    # a viewer costs the API one WebSocket message per frame: fit cores against fragments forwarded per second
    # (robust when the largest phases cannot deliver every frame on a loaded host), times the stream's frame rate
    source_fps = max((p.get("camera_fps") or 0.0 for p in loaded), default=0.0)
    idle["delivered_share"] = None
    per_fragment = None
    if len(loaded) >= 2:
        xs, ys = [p["fragments_per_s"] for p in phases], [p["cores"] for p in phases]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        per_fragment = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None
    per_viewer = per_fragment * source_fps if per_fragment is not None else None
    out = {
        "live_latency_p50_s": percentile(latencies, 50),
        "live_latency_p95_s": percentile(latencies, 95),
        "live_latency_method": "camera hands frame to its RTSP connection -> fragment received by a WebSocket "
                               "viewer (same clock); camera encoder and browser decode/display not included",
        "live_latency_samples": len(latencies),
        "live_first_frame_s": _median(firsts["preloaded"]),
        "live_first_frame_method": f"WebSocket opened -> first fragment, first viewer of a camera of a saved wall "
                                   f"layout ({wall_cameras} cameras), preloaded by the API (CCTV_LIVE_PRELOAD="
                                   f"layouts, the default) with no viewer before",
        "live_first_frame_cold_s": _median(firsts["cold"]),
        "live_first_frame_cold_breakdown": {k: _median([b[k] for b in firsts["breakdown"] if b.get(k) is not None])
                                            for k in (firsts["breakdown"][0] if firsts["breakdown"] else {})},
        "live_first_frame_cold_samples": firsts["cold"],
        "live_first_frame_preloaded_samples": firsts["preloaded"],
        "live_first_frame_warm_s": _median(firsts["warm"]),
        "cpu_cores_per_preloaded_camera": ((preload_idle["cores"] - idle["cores"]) / wall_cameras
                                           if preload_idle and wall_cameras else None),
        "cpu_cores_per_preloaded_camera_method": "(API + ffmpeg cores with the wall's cameras preloaded and no "
                                                 "viewer - cores with nothing running) / cameras preloaded",
        "seek_first_frame_s": None,
        "cpu_cores_per_viewer": per_viewer,
        "cpu_ms_per_fragment": per_fragment * 1000 if per_fragment is not None else None,
        "cpu_cores_per_viewer_method": "least-squares slope of API+ffmpeg cores against fragments forwarded per "
                                       "second over all phases, times the stream's frame rate (a full-rate viewer)",
        "source_fps": source_fps,
        "cpu_cores_per_camera": (first["cores"] - idle["cores"]) / cameras if loaded else None,
        "cpu_cores_per_camera_method": "(cores with one viewer per camera - cores with none) / cameras: the "
                                       "camera's upstream ffmpeg remux and one viewer's forwarding",
        "rss_mb_per_camera": (first["rss_mb"] - idle["rss_mb"]) / cameras if loaded else None,
        "rss_mb_per_viewer": ((last["rss_mb"] - first["rss_mb"]) / (last["viewers"] - first["viewers"])
                              if last["viewers"] > first["viewers"] else None),
        "cameras": cameras,
        "preload_idle_phase": {k: v for k, v in preload_idle.items() if k != "latencies"} if preload_idle else None,
        "phases": [{k: v for k, v in p.items() if k != "latencies"} | {
            "latency_p50_s": percentile(p["latencies"], 50), "latency_p95_s": percentile(p["latencies"], 95)}
            for p in phases],
        "host": {"cpus": psutil.cpu_count(), "load_1m_after": os.getloadavg()[0]},
    }
    if browser:
        out.update(browser)
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'viewers/camera':>14} {'viewers':>8} {'API cores':>10} {'RSS MB':>8} {'frag/s/viewer':>14} "
          f"{'delivered':>9} {'lat p50':>8} {'lat p95':>8} {'bench cores':>11} {'client cores':>12} {'load':>5}")
    for p in result["phases"]:
        lat50 = f"{p['latency_p50_s']:.3f}" if p["latency_p50_s"] is not None else "-"
        lat95 = f"{p['latency_p95_s']:.3f}" if p["latency_p95_s"] is not None else "-"
        share = f"{p['delivered_share']:.0%}" if p.get("delivered_share") is not None else "-"
        print(f"{p['viewers_per_camera']:>14} {p['viewers']:>8} {p['cores']:>10.3f} {p['rss_mb']:>8.1f} "
              f"{p['fragments_per_viewer_s']:>14.1f} {share:>9} {lat50:>8} {lat95:>8} "
              f"{p.get('bench_cores', 0.0):>11.3f} {p.get('client_cores', 0.0):>12.3f} {p['load_1m']:>5.1f}")
    for key in ("live_latency_p50_s", "live_latency_p95_s", "live_first_frame_s", "live_first_frame_cold_s",
                "live_first_frame_warm_s", "cpu_cores_per_preloaded_camera", "seek_first_frame_s",
                "cpu_cores_per_camera", "cpu_cores_per_viewer", "cpu_ms_per_fragment",
                "rss_mb_per_camera",
                "rss_mb_per_viewer", "browser_latency_p50_s", "browser_latency_p95_s", "browser_first_frame_s"):
        if key in result:
            value = result[key]
            print(f"{key:>30}: {value:.4f}" if isinstance(value, float) else f"{key:>30}: {value}")
    breakdown = result.get("live_first_frame_cold_breakdown") or {}
    if breakdown:
        print("  cold first frame, medians (s): " + ", ".join(
            f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in breakdown.items()))


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = result["phases"]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4))
    ax1.plot([p["viewers"] for p in phases], [p["cores"] for p in phases], "o-", label="API + ffmpeg cores")
    ax1.set_xlabel(f"viewers ({result['cameras']} cameras)")
    ax1.set_ylabel("CPU cores")
    ax1.set_ylim(bottom=0)
    ax1.set_title("Live video cost: nothing re-encoded")
    ax1b = ax1.twinx()
    ax1b.plot([p["viewers"] for p in phases], [p["rss_mb"] for p in phases], "s--", color="tab:orange",
              label="RSS MB")
    ax1b.set_ylabel("RSS MB")
    ax1b.set_ylim(bottom=0)
    labels = [f"{p['viewers']}" for p in phases if p["latency_p50_s"] is not None]
    p50 = [p["latency_p50_s"] for p in phases if p["latency_p50_s"] is not None]
    p95 = [p["latency_p95_s"] for p in phases if p["latency_p95_s"] is not None]
    x = range(len(labels))
    ax2.bar([i - 0.2 for i in x], p50, 0.4, label="p50")
    ax2.bar([i + 0.2 for i in x], p95, 0.4, label="p95")
    if result.get("browser_latency_p95_s") is not None:
        ax2.axhline(result["browser_latency_p95_s"], color="tab:red", ls=":", label="browser p95 (display)")
    ax2.axhline(1.0, color="grey", ls="--", label="goal p95 1.0 s")
    ax2.set_xticks(list(x), labels)
    ax2.set_xlabel("viewers")
    ax2.set_ylabel("capture -> received (s)")
    ax2.set_title("Live latency")
    ax2.legend()
    first_frame(ax3, result)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def first_frame(ax, result: dict[str, Any]) -> None:
    """Bars of the times to the first frame: a wall's preloaded camera, a cold one, a second viewer, the browser."""
    bars = [(label, result.get(key)) for label, key in (
        ("wall camera\n(preloaded)", "live_first_frame_s"), ("cold\n(no upstream)", "live_first_frame_cold_s"),
        ("second viewer", "live_first_frame_warm_s"), ("browser wall\n(preloaded)", "browser_first_frame_s"))]
    bars = [(label, value) for label, value in bars if value is not None]
    ax.bar([label for label, _ in bars], [value for _, value in bars], color="tab:green")
    for i, (_, value) in enumerate(bars):
        ax.text(i, value, f"{value:.2f} s", ha="center", va="bottom")
    ax.axhline(1.0, color="grey", ls="--", label="goal 1 s")
    ax.set_ylabel("seconds to the first frame")
    ax.set_title("Live first frame")
    ax.legend()


def cameras_yaml(cams: TestCameraServer, names: list[str]) -> str:
    lines = ["cameras:"]
    for name in names:
        lines.append(f"  - {{id: {name}, name: 'Bench {name}', url: '{cams.url(name)}'}}")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    log = SendLog()
    log.install()
    names = [f"cam{i:02d}" for i in range(args.cameras)]
    videos = Path(os.environ.get("CCTV_VIDEOS_DIR", PROJECT_ROOT.parent / "shared" / "data" / "videos"))
    redis_proc = RedisProcess()
    workdir = Path(tempfile.mkdtemp(prefix="bench-video-"))
    with TestCameraServer(videos, 0, names=[], aliases={n: args.video for n in names}, sub_streams=False) as cams:
        for name in names:  # a real camera's encoder is always running: start the looping sources now
            cams._sources[name].start()
        api = ApiProcess(redis_proc.url, cameras_yaml(cams, names), workdir)
        try:
            idle = await idle_phase(api, min(5.0, args.seconds))
            print("time to first frame, cold (no layout: the hub starts the upstream) ...")
            firsts = await first_frames(api, log, names, "cold")
            wall = names[: args.wall_cameras]
            print(f"  cold {firsts['cold']}, second viewer {firsts['warm']}\n"
                  f"  breakdown {firsts['breakdown']}\ntime to first frame of a saved wall's cameras "
                  f"({len(wall)}, preloaded) ...")
            await put_layout(api, wall)
            preload_idle = None
            if await wait_preloaded(api, wall):
                preload_idle = await idle_phase(api, min(5.0, args.seconds))
                preloaded = await first_frames(api, log, wall, "preloaded")
                firsts |= {"preloaded": preloaded["preloaded"], "warm": firsts["warm"] + preloaded["warm"]}
            else:
                print("  the wall's cameras were not preloaded within 60 s")
                firsts["preloaded"] = []
            print(f"  preloaded {firsts['preloaded']}")
            browser = None
            if args.browser:
                from benchmarks.video_browser import measure_browser  # optional: selenium + chromium

                browser = measure_browser(api.base, "bench", PASSWORD, names[: args.browser_tiles], log,
                                          args.seconds, RESULTS_DIR)
            await put_layout(api, [])  # nothing preloaded: the load phases start from nothing
            await asyncio.sleep(4)  # the upstreams linger 2 s, then stop
            phases = [idle]
            for per_camera in args.viewers:
                phases.append(await load_phase(api, log, names, per_camera, args.seconds, measure=True,
                                               client_procs=args.client_procs))
        finally:
            api.stop()
            redis_proc.stop()
    return summarise(firsts, phases, args.cameras, browser, preload_idle, len(wall))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8, help="test cameras (each its own RTSP stream)")
    parser.add_argument("--viewers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16],
                        help="viewers per camera in each load phase, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    parser.add_argument("--video", default=VIDEO, help="sample video the cameras loop")
    parser.add_argument("--browser", action="store_true", help="also measure display latency in headless Chromium")
    parser.add_argument("--browser-tiles", type=int, default=4, help="cameras on the browser's wall")
    parser.add_argument("--wall-cameras", type=int, default=4,
                        help="cameras of the saved wall layout (preloaded) for live_first_frame_s")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="processes running the load phases' extra viewers (not charged to the API)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "video.json")
    parser.add_argument("--png", type=Path, default=RESULTS_DIR / "video.png")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    result["seek_first_frame_s"] = measure_seek_first_frame(args)
    save_results(result, args, print_table, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
