"""Ingest benchmark: decode options compared, then how many cameras this machine ingests AND records.

    python -m benchmarks.ingest --streams 16 --seconds 15 [--json OUT] [--png OUT]
    python -m benchmarks.ingest --decode all keyframes --decode-fps 1 --decode-streams 8 --skip-compare --skip-ramp

Everything is real: loopback RTSP cameras (:mod:`pipeline.testcams`) loop the sample footage (H.264, 25 fps,
1080p/720p/360p), a private redis-server holds health and the segment index, capture workers run as in
production.

1. Decode options, one 720p camera each, same run: ``ffmpeg`` subprocess (the production path, analysis only;
   analysis + recording in one process; recording only) versus PyAV and OpenCV's FFmpeg backend decoding in
   Python. Reported: CPU seconds per decoded (input) frame and per analysed frame, RSS.
2. Ramp: N = 1, 2, 4, 8, ... cameras (cycling over the sample videos) at 5 fps analysis with continuous recording,
   a consumer draining the frame bus like the engine; a step is sustained when every camera gets >= 95 % of its
   target fps and ingest's own CPU is below 90 % of the cores. ``max_streams`` is the largest sustained N;
   ``cpu_share_at_max`` is the fraction of the machine's cores ingest used there (the rest is left for inference)
   and ``streams_within_75pct_cpu`` projects how many cameras fit in 75 % of the cores at the measured cost.

3. Decode modes (``--decode all keyframes``, the same run): ``--decode-streams`` cameras of the 720p sample at
   ``--decode-fps`` analysed fps with recording, analysed on the main stream and on the sub-stream (main recorded
   by a second session), once per decode mode (camera ``decode: all`` / ``keyframes``). Reported: cores per camera,
   frames delivered per camera (analysed fps), the mode really used (a camera refuses keyframes when its keyframe
   interval does not fit the fps) and the frames ratio against ``all``: keyframe mode must deliver the same
   analysed fps when the GOP fits.
4. Reads check (``--reads-check``): the served 720p sample (keyframe every second) decoded at 1 fps both ways
   (``fps=1`` from every frame, and keyframes only), each frame sequence run through the engine (the real
   models, plates on, a private Redis): the distinct plate reads of both are compared.

The camera server's own CPU (ffmpeg ``-re`` sources and the Python RTSP server) is measured apart and not charged
to ingest. The machine may be shared: the load of other processes is printed with each step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import redis

from pipeline.config import parse_config
from pipeline.ingest.framebus import MP_CONTEXT, FrameBus
from pipeline.ingest.health import read_camera_health
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.settings import PROJECT_ROOT, get_settings
from pipeline.testcams import TestCameraServer, find_videos

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
COMPARE_VIDEO = "thai_bangkok_night_dashcam_bus"  # 1280x720
FPS = 5.0
MAX_WIDTH = 1280


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A private redis-server on a free loopback port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def tree_cpu_rss(pid: int) -> tuple[float, float]:
    """CPU seconds (user+system) and RSS bytes of a process and its live descendants."""
    cpu = rss = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return cpu, rss


def _own_cpu(pid: int) -> float:
    """CPU seconds of one process (without its children)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def server_cpu(server: TestCameraServer) -> float:
    """CPU seconds of the camera server's ffmpeg sources plus this process's threads (approximation)."""
    total = 0.0
    for pid in server.source_pids():
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


# ------------------------------------------------------------------------------------------------------------
# decode options in Python (child processes)
# ------------------------------------------------------------------------------------------------------------
def _pyav_decode(url: str, seconds: float, out: Any) -> None:
    import av
    import cv2

    container = av.open(url, options={"rtsp_transport": "tcp"})
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    decoded = analysed = 0
    next_t = started = None
    cpu0 = 0.0
    for frame in container.decode(stream):
        now = time.monotonic()
        if started is None:  # steady state only: from the first frame on
            started, cpu0 = now, time.process_time()
        decoded += 1
        if next_t is None or now >= next_t:
            image = frame.to_ndarray(format="bgr24")
            if image.shape[1] > MAX_WIDTH:
                image = cv2.resize(image, (MAX_WIDTH, image.shape[0] * MAX_WIDTH // image.shape[1]))
            analysed += 1
            next_t = (next_t or now) + 1 / FPS
        if now - started >= seconds:
            break
    cpu = time.process_time() - cpu0
    container.close()
    out.put((decoded, analysed, cpu, psutil.Process().memory_info().rss, time.monotonic() - started))


def _opencv_decode(url: str, seconds: float, out: Any) -> None:
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    import cv2

    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    decoded = analysed = 0
    next_t = started = None
    cpu0 = 0.0
    while cap.grab():
        now = time.monotonic()
        if started is None:
            started, cpu0 = now, time.process_time()
        decoded += 1
        if next_t is None or now >= next_t:
            ok, image = cap.retrieve()
            if ok and image.shape[1] > MAX_WIDTH:
                image = cv2.resize(image, (MAX_WIDTH, image.shape[0] * MAX_WIDTH // image.shape[1]))
            analysed += 1
            next_t = (next_t or now) + 1 / FPS
        if now - started >= seconds:
            break
    cpu = time.process_time() - cpu0
    cap.release()
    out.put((decoded, analysed, cpu, psutil.Process().memory_info().rss, time.monotonic() - started))


def measure_python_decoder(name: str, target: Any, url: str, seconds: float) -> dict[str, Any]:
    """Run a Python decode loop in a child process; CPU counted from its first frame (imports excluded)."""
    queue = MP_CONTEXT.Queue()
    proc = MP_CONTEXT.Process(target=target, args=(url, seconds, queue))
    proc.start()
    deadline = time.monotonic() + seconds + 60
    while proc.is_alive() and queue.empty() and time.monotonic() < deadline:
        time.sleep(0.5)
        print(f"\r  {name}: running", end="", flush=True)
    print("\r", end="")
    decoded, analysed, cpu, rss, elapsed = queue.get(timeout=30)
    proc.join(10)
    return _row(name, cpu, decoded, analysed, rss, elapsed, note="in-process decode, all threads")


def _row(name: str, cpu: float, decoded: float, analysed: float, rss: float, seconds: float, note: str = "") -> dict[str, Any]:
    return {
        "option": name,
        "decoded_fps": decoded / seconds,
        "analysed_fps": analysed / seconds,
        "cpu_cores": cpu / seconds,
        "cpu_s_per_decoded_frame": cpu / decoded if decoded else float("nan"),
        "cpu_s_per_analysed_frame": cpu / analysed if analysed else float("nan"),
        "rss_mb": rss / 1e6,
        "note": note,
    }


# ------------------------------------------------------------------------------------------------------------
# production capture workers
# ------------------------------------------------------------------------------------------------------------
def run_workers(server: TestCameraServer, names: list[str], redis_url: str, seconds: float, analyse: bool,
                record: bool, rec_dir: Path, progress: str = "", fps: float = FPS, decode: str = "auto",
                sub_stream: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run capture workers for ``names``; measure the steady state for ``seconds``.

    ``decode`` is every camera's ``decode`` setting; ``sub_stream``: analyse the sub-stream, record the main one.
    """
    analytics = "{plates: true, faces: false}" if analyse else "{plates: false, faces: false}"
    lines = [
        f"  - {{id: {n}, name: {n}, url: '{server.url(n)}', analysis_fps: {fps}, analytics: {analytics}, "
        + (f"sub_stream: '{server.sub_url(n)}', " if sub_stream else "")
        + f"decode: {decode}, recording: {{enabled: {str(record).lower()}}}}}"
        for n in names
    ]
    config = parse_config(
        f"ingest: {{max_width: {MAX_WIDTH}, segment_seconds: 10, stall_timeout_s: 10, cameras_per_worker: 8}}\n"
        "cameras:\n" + "\n".join(lines) + "\n"
    )
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    bus = FrameBus(names, queue_size=4, max_width=MAX_WIDTH) if analyse else None
    groups = [config.cameras[i : i + 8] for i in range(0, len(config.cameras), 8)]
    workers = [CaptureWorkerProcess(g, config.ingest, bus, redis_url, rec_dir).start() for g in groups]
    stop_consumer = threading.Event()

    def consume() -> None:  # drains the bus like the engine would
        while not stop_consumer.is_set() and bus is not None:
            for item in bus.get_batch(16, 0.2):
                item.release()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = read_camera_health(client)
            if len(health) == len(names) and all(h["status"] == "online" for h in health):
                break
            time.sleep(0.5)
        time.sleep(3.0)  # warm-up: first segment opened, filters primed
        published0 = {n: bus.published(n) for n in names} if bus else {}
        cpu0 = sum(tree_cpu_rss(w.process.pid)[0] for w in workers)
        python_cpu0 = sum(_own_cpu(w.process.pid) for w in workers)
        srv0 = server_cpu(server)
        psutil.cpu_percent(None)
        t0 = time.monotonic()
        input_fps: list[float] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            input_fps.append(sum(h["input_fps"] or 0 for h in read_camera_health(client)))
            if progress:
                print(f"\r  {progress}: {time.monotonic() - t0:4.0f}/{seconds:.0f}s", end="", flush=True)
        elapsed = time.monotonic() - t0
        machine_cpu = psutil.cpu_percent(None)
        measures = [tree_cpu_rss(w.process.pid) for w in workers]
        cpu = sum(m[0] for m in measures) - cpu0
        python_cpu = sum(_own_cpu(w.process.pid) for w in workers) - python_cpu0
        rss = sum(m[1] for m in measures)
        srv = server_cpu(server) - srv0
        published = {n: (bus.published(n) - published0[n]) / elapsed for n in names} if bus else {}
        dropped = sum(bus.dropped(n) for n in names) if bus else 0
        segments = sum(client.zcard(f"cctv:rec:{n}") for n in names)
        modes = sorted({str(h.get("decode") or "") for h in read_camera_health(client)})
    finally:
        for w in workers:
            w.stop()
        stop_consumer.set()
        consumer.join(5)
        if bus is not None:
            bus.close()
            bus.unlink()
    if progress:
        print("\r", end="")
    decoded = (sum(input_fps) / max(len(input_fps), 1)) * elapsed
    analysed = sum(published.values()) * elapsed
    return {
        "streams": len(names), "cpu_s": cpu, "cpu_cores": cpu / elapsed, "python_share": python_cpu / cpu if cpu else 0.0, "rss_mb": rss / 1e6,
        "rss_mb_per_stream": rss / 1e6 / len(names), "decoded_frames": decoded, "analysed_frames": analysed,
        "min_fps": min(published.values()) if published else 0.0,
        "mean_fps": sum(published.values()) / len(published) if published else 0.0,
        "cpu_s_per_decoded_frame": cpu / decoded if decoded else float("nan"),
        "cpu_s_per_analysed_frame": cpu / analysed if analysed else float("nan"),
        "machine_cpu_percent": machine_cpu, "server_cpu_cores": srv / elapsed, "dropped": dropped,
        "segments": segments, "seconds": elapsed, "decode_used": ",".join(modes),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------------------
def compare_decoders(videos: Path, redis_url: str, seconds: float, rec_dir: Path) -> list[dict[str, Any]]:
    rows = []
    with TestCameraServer(videos, 0, names=[COMPARE_VIDEO]) as server:
        url = server.url(COMPARE_VIDEO)
        for label, analyse, record in (("ffmpeg subprocess: analysis only", True, False),
                                       ("ffmpeg subprocess: analysis + recording (production)", True, True),
                                       ("ffmpeg subprocess: recording only (stream copy)", False, True)):  # fmt: skip
            print(f"[decode options] {label} ...", flush=True)
            r = run_workers(server, [COMPARE_VIDEO], redis_url, seconds, analyse, record, rec_dir, progress=label[:40])
            rows.append(_row(label, r["cpu_s"], r["decoded_frames"], r["analysed_frames"], r["rss_mb"] * 1e6,
                             r["seconds"], note=f"worker + ffmpeg; Python worker share {r['python_share']:.0%}"))  # fmt: skip
        for label, target in (("PyAV in Python", _pyav_decode), ("OpenCV CAP_FFMPEG", _opencv_decode)):
            print(f"[decode options] {label} ...", flush=True)
            rows.append(measure_python_decoder(label, target, url, seconds))
    return rows


def compare_decode_modes(videos: Path, redis_url: str, seconds: float, rec_dir: Path, modes: list[str], fps: float,
                         streams: int) -> list[dict[str, Any]]:  # fmt: skip
    """``streams`` 720p cameras at ``fps`` with recording, per decode mode, on the main stream and the sub-stream."""
    names = [f"dec{i:02d}" for i in range(streams)]
    rows: list[dict[str, Any]] = []
    with TestCameraServer(videos, 0, names=[], aliases=dict.fromkeys(names, COMPARE_VIDEO)) as server:
        for sub_stream in (False, True):
            for mode in modes:
                label = f"{'sub' if sub_stream else 'main'}/{mode}"
                print(f"[decode modes] {label}: {streams} cameras at {fps:g} fps + recording ...", flush=True)
                r = run_workers(server, names, redis_url, seconds, True, True, rec_dir, progress=label, fps=fps,
                                decode=mode, sub_stream=sub_stream)  # fmt: skip
                rows.append({"stream": "sub" if sub_stream else "main", "decode": mode,
                             "decode_used": r["decode_used"], "streams": streams, "fps": fps,
                             "cores_per_camera": r["cpu_cores"] / streams, "analysed_fps_per_camera": r["mean_fps"],
                             "min_analysed_fps": r["min_fps"],
                             "cpu_ms_per_analysed_frame": r["cpu_s_per_analysed_frame"] * 1e3,
                             "rss_mb_per_camera": r["rss_mb_per_stream"], "dropped": r["dropped"],
                             "segments": r["segments"], "machine_cpu_percent": r["machine_cpu_percent"]})  # fmt: skip
    for row in rows:
        ref = next((r for r in rows if r["stream"] == row["stream"] and r["decode"] == "all"), None)
        row["frames_vs_all"] = row["analysed_fps_per_camera"] / ref["analysed_fps_per_camera"] if ref and ref["analysed_fps_per_camera"] else None
        row["cpu_vs_all"] = row["cores_per_camera"] / ref["cores_per_camera"] if ref and ref["cores_per_camera"] else None
    return rows


def _decode_file(path: Path, keyframes: bool, fps: float = 1.0, rate: str | None = None) -> list[Any]:
    """Frames of ``path`` at ``fps`` as the capture worker's ffmpeg would give them (1280 wide BGR).

    ``rate``: another frame-picking filter (decoding every frame), e.g. ``select='not(mod(n-12,25))'``."""
    import numpy as np

    from pipeline.engine.filesource import FileFrame

    if rate is None:
        rate = (f"select='isnan(prev_selected_t)+gte(t-prev_selected_t,{0.9 / fps:.4f})'" if keyframes
                else f"fps={fps}")  # fmt: skip
    passthrough = keyframes or rate.startswith("select")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *(["-skip_frame", "nokey"] if keyframes else []),
           "-i", str(path), "-map", "0:v:0", "-vf", f"{rate},scale=1280:720", *(["-fps_mode", "passthrough"] if passthrough else []),
           "-pix_fmt", "bgr24", "-f", "rawvideo", "pipe:1"]  # fmt: skip
    data = subprocess.run(cmd, capture_output=True, check=True, timeout=600).stdout
    size = 1280 * 720 * 3
    start = 1_763_600_000.0
    return [FileFrame("bkk-night-01", i + 1, start + i / fps, np.frombuffer(data[i * size : (i + 1) * size], np.uint8)
                      .reshape(720, 1280, 3).copy()) for i in range(len(data) // size)]  # fmt: skip


def reads_check(videos: Path, redis_url: str, work: Path) -> dict[str, Any]:
    """Distinct plate reads of the engine on 1 fps frames decoded from every frame vs from keyframes only.

    Also: the every-frame decode picked at another phase of the second (``all_shifted``: frames 6, 31, 56, ...,
    while ``fps=1`` picks about mid-GOP and keyframes are frames 0, 25, 50, ...: how much two equally valid 1 fps
    samplings differ, the noise of this check) and whether the keyframes are pixel-identical to the same
    frames picked from a full decode (``keyframes_identical_to_full_decode``)."""
    from pipeline.config import Config
    from pipeline.engine.filesource import run_files
    from pipeline.engine.process import build_engine
    from pipeline.events import PlateEvent
    from pipeline.store import keys
    from pipeline.store.codec import decode
    from pipeline.testcams import cached_transcode

    clip = cached_transcode(find_videos(videos)[COMPARE_VIDEO])  # what the test cameras serve: 1 s GOP
    client = redis.Redis.from_url(redis_url)
    reads: dict[str, list[str]] = {}
    frames_n: dict[str, int] = {}
    key_frames = _decode_file(clip, keyframes=True)
    same_phase = _decode_file(clip, keyframes=False, rate="select='not(mod(n,25))'")  # the GOP is 25 frames
    identical = len(key_frames) == len(same_phase) and all(
        (a.frame == b.frame).all() for a, b in zip(key_frames, same_phase, strict=True))  # fmt: skip
    for mode in ("all", "all_shifted", "keyframes"):
        print(f"[reads check] engine on 1 fps frames, decode {mode} ...", flush=True)
        client.flushall()
        frames = (key_frames if mode == "keyframes" else
                  _decode_file(clip, keyframes=False, rate="select='not(mod(n-6,25))'" if mode == "all_shifted" else None))  # fmt: skip
        frames_n[mode] = len(frames)
        config = Config.model_validate({"engine": {"device": "cpu"}, "cameras": [
            {"id": "bkk-night-01", "name": "bkk", "url": str(clip), "analytics": {"plates": True, "faces": False}}]})
        engine, _publisher, _ = build_engine(config, redis_url=redis_url, recordings_dir=work / mode / "rec",
                                             spool_dir=work / mode / "spool", engine_id=f"reads-{mode}", live=False)  # fmt: skip
        run_files(engine, [iter(frames)], batch_size=8)
        events = [decode(PlateEvent, fields) for _, fields in client.xrange(keys.PLATE_STREAM)]
        reads[mode] = sorted({e.plate_text for e in events if e.plate_text})
    ref, kf, shifted = set(reads["all"]), set(reads["keyframes"]), set(reads["all_shifted"])
    return {"frames_all": frames_n["all"], "frames_keyframes": frames_n["keyframes"], "reads_all": reads["all"],
            "reads_keyframes": reads["keyframes"], "reads_all_shifted": reads["all_shifted"],
            "recall_of_all": len(ref & kf) / len(ref) if ref else None, "extra_reads": sorted(kf - ref),
            "shifted_recall_of_all": len(ref & shifted) / len(ref) if ref else None,
            "keyframes_identical_to_full_decode": identical}  # fmt: skip


def ramp(videos: Path, redis_url: str, max_streams: int, seconds: float, rec_dir: Path) -> list[dict[str, Any]]:
    stems = list(find_videos(videos))
    steps = [n for n in (1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64) if n < max_streams] + [max_streams]
    results = []
    for n in steps:
        names = [f"cam{i:02d}" for i in range(n)]
        aliases = {name: stems[i % len(stems)] for i, name in enumerate(names)}
        with TestCameraServer(videos, 0, names=[], aliases=aliases) as server:
            r = run_workers(server, names, redis_url, seconds, True, True, rec_dir, progress=f"ramp N={n}")
        # our own CPU, not the machine's: the machine may be shared with other work (printed for context)
        r["sustained"] = r["min_fps"] >= 0.95 * FPS and r["cpu_cores"] < 0.9 * (psutil.cpu_count() or 1)
        results.append(r)
        print(f"[ramp] N={n:3d}  fps/stream min {r['min_fps']:.2f} mean {r['mean_fps']:.2f}  ingest CPU "
              f"{r['cpu_cores']:.2f} cores  machine {r['machine_cpu_percent']:.0f}%  RSS/stream "
              f"{r['rss_mb_per_stream']:.0f} MB  server {r['server_cpu_cores']:.2f} cores  "
              f"{'OK' if r['sustained'] else 'NOT sustained'}", flush=True)  # fmt: skip
        if r["cpu_cores"] >= 0.9 * (psutil.cpu_count() or 1):
            break  # ingest alone saturates the machine: no point going further
    return results


def plot(rows: list[dict[str, Any]], steps: list[dict[str, Any]], path: Path,
         decode_rows: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decode_rows = decode_rows or []
    panels = [name for name, data in (("options", rows), ("ramp", steps), ("decode", decode_rows)) if data]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 4.8), squeeze=False)
    ax = dict(zip(panels, axes[0], strict=False))
    if "decode" in ax:
        c = ax["decode"]
        labels = [f"{r['stream']} / {r['decode']}" for r in decode_rows]
        c.bar(labels, [r["cores_per_camera"] for r in decode_rows], color="tab:purple")
        c.set_ylabel("CPU cores per camera")
        c.set_title(f"Decode modes ({decode_rows[0]['fps']:g} fps analysed + recording)")
        c2 = c.twinx()
        c2.plot(labels, [r["analysed_fps_per_camera"] for r in decode_rows], "o", color="tab:orange",
                label="analysed fps / camera")  # fmt: skip
        c2.set_ylim(0, max(r["fps"] for r in decode_rows) * 1.3)
        c2.set_ylabel("analysed fps per camera")
        c2.legend(loc="upper right")
    if "options" in ax:
        _plot_options(ax["options"], rows)
    if "ramp" in ax:
        _plot_ramp(ax["ramp"], steps)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_options(a: Any, rows: list[dict[str, Any]]) -> None:
    a.barh([r["option"] for r in rows], [r["cpu_s_per_decoded_frame"] * 1000 for r in rows], color="tab:blue")
    a.set_xlabel("CPU ms per decoded frame (720p H.264)")
    a.invert_yaxis()
    a.set_title("Decode options")


def _plot_ramp(b: Any, steps: list[dict[str, Any]]) -> None:
    ns = [s["streams"] for s in steps]
    b.plot(ns, [s["min_fps"] for s in steps], "o-", label="min analysed fps / stream")
    b.plot(ns, [s["mean_fps"] for s in steps], "^:", color="tab:green", label="mean analysed fps / stream")
    b.axhline(0.95 * FPS, color="grey", ls="--", label="95% of 5 fps")
    b.set_xlabel("cameras (5 fps analysis + recording)")
    b.set_ylabel("fps")
    b2 = b.twinx()
    b2.plot(ns, [s["cpu_cores"] for s in steps], "s-", color="tab:red", label="ingest CPU (cores)")
    b2.set_ylabel("CPU cores")
    b.legend(loc="lower left")
    b2.legend(loc="lower right")
    b.set_title("Ramp")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16, help="largest N of the ramp")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per step")
    parser.add_argument("--videos", type=Path, default=get_settings().videos_dir)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "ingest.json")
    parser.add_argument("--png", type=Path, default=RESULTS_DIR / "ingest.png")
    parser.add_argument("--skip-compare", action="store_true", help="skip the decoder comparison")
    parser.add_argument("--skip-ramp", action="store_true", help="skip the ramp")
    parser.add_argument("--decode", nargs="*", choices=["all", "keyframes"], default=[],
                        help="compare these decode modes (camera decode setting), main and sub-stream, e.g. --decode all keyframes")  # fmt: skip
    parser.add_argument("--decode-fps", type=float, default=1.0, help="analysed fps of the decode-mode comparison")
    parser.add_argument("--decode-streams", type=int, default=4, help="cameras of the decode-mode comparison")
    parser.add_argument("--reads-check", action="store_true",
                        help="engine plate reads on 1 fps frames decoded from every frame vs keyframes only")  # fmt: skip
    args = parser.parse_args(argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    print(f"machine: {psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before start", flush=True)
    server = RedisProcess()
    rec_dir = Path(tempfile.mkdtemp(prefix="bench-rec-"))
    try:
        rows = [] if args.skip_compare else compare_decoders(args.videos, server.url, args.seconds, rec_dir)
        decode_rows = (compare_decode_modes(args.videos, server.url, args.seconds, rec_dir, args.decode, args.decode_fps,
                                            args.decode_streams) if args.decode else [])  # fmt: skip
        reads = reads_check(args.videos, server.url, rec_dir) if args.reads_check else None
        steps = [] if args.skip_ramp else ramp(args.videos, server.url, args.streams, args.seconds, rec_dir)
    finally:
        server.stop()
        shutil.rmtree(rec_dir, ignore_errors=True)
    if rows:
        print("\nDecode options (one 720p H.264 camera, 25 fps in, 5 fps analysed, scaled to <= 1280 wide)")
        print(f"{'option':56s} {'dec fps':>8s} {'an fps':>7s} {'cores':>6s} {'ms/dec frame':>13s} "
              f"{'ms/an frame':>12s} {'RSS MB':>7s}")  # fmt: skip
        for r in rows:
            print(f"{r['option']:56s} {r['decoded_fps']:8.1f} {r['analysed_fps']:7.2f} {r['cpu_cores']:6.3f} "
                  f"{r['cpu_s_per_decoded_frame'] * 1e3:13.2f} {r['cpu_s_per_analysed_frame'] * 1e3:12.2f} "
                  f"{r['rss_mb']:7.0f}  {r['note']}")  # fmt: skip
    if decode_rows:
        print(f"\nDecode modes ({args.decode_streams} cameras, 720p H.264 25 fps main / 360p sub-stream, keyframe every "
              f"1 s, {args.decode_fps:g} fps analysed, main stream recorded)")  # fmt: skip
        print(f"{'stream/decode':16s} {'used':>10s} {'cores/cam':>10s} {'an fps/cam':>11s} {'min fps':>8s} "
              f"{'ms/an frame':>12s} {'frames vs all':>14s} {'cpu vs all':>11s} {'machine%':>9s}")  # fmt: skip
        for r in decode_rows:
            print(f"{r['stream'] + '/' + r['decode']:16s} {r['decode_used']:>10s} {r['cores_per_camera']:10.4f} "
                  f"{r['analysed_fps_per_camera']:11.2f} {r['min_analysed_fps']:8.2f} "
                  f"{r['cpu_ms_per_analysed_frame']:12.1f} {_ratio(r['frames_vs_all']):>14s} "
                  f"{_ratio(r['cpu_vs_all']):>11s} {r['machine_cpu_percent']:9.0f}")  # fmt: skip
    result: dict[str, Any] = {
        "load_average_1m": os.getloadavg()[0],
        "cpu_count": psutil.cpu_count(),
        "seconds_per_step": args.seconds,
        "target_fps": FPS,
        "decode_compare": decode_rows,
        "reads_check": reads,
    }
    if reads is not None:
        print(f"\nReads check (engine, 1 fps, {COMPARE_VIDEO}): decode all {reads['frames_all']} frames, reads "
              f"{reads['reads_all']}; keyframes {reads['frames_keyframes']} frames, reads {reads['reads_keyframes']}; "
              f"recall of all's reads {'-' if reads['recall_of_all'] is None else format(reads['recall_of_all'], '.0%')}, extra {reads['extra_reads']}; "
              f"every frame decoded, picked at another phase (frames 6, 31, ...): reads {reads['reads_all_shifted']} (recall of all's "
              f"{'-' if reads['shifted_recall_of_all'] is None else format(reads['shifted_recall_of_all'], '.0%')}); "
              f"keyframes pixel-identical to the same frames of a full decode: {reads['keyframes_identical_to_full_decode']}")  # fmt: skip
    for r in decode_rows:
        key = f"decode_{r['stream']}_{r['decode']}"
        result[f"{key}_cores_per_camera"] = r["cores_per_camera"]
        result[f"{key}_analysed_fps_per_camera"] = r["analysed_fps_per_camera"]
    if not steps:
        args.json.write_text(json.dumps(result, indent=2))
        if rows or decode_rows:  # the reads check alone has nothing to plot
            plot(rows, steps, args.png, decode_rows)
        print(f"\nJSON: {args.json}" + (f"\nplot: {args.png}" if rows or decode_rows else ""))
        return 0
    sustained = [s for s in steps if s["sustained"]]
    best = sustained[-1] if sustained else steps[-1]
    print("\nRamp (5 fps analysis + continuous recording per camera)")
    print(f"{'N':>4s} {'min fps':>8s} {'mean fps':>9s} {'cores':>6s} {'machine%':>9s} {'ms/dec frame':>13s} "
          f"{'RSS MB/str':>11s} {'dropped':>8s} {'sustained':>10s} {'python':>7s}")  # fmt: skip
    for s in steps:
        print(f"{s['streams']:4d} {s['min_fps']:8.2f} {s['mean_fps']:9.2f} {s['cpu_cores']:6.2f} "
              f"{s['machine_cpu_percent']:9.0f} {s['cpu_s_per_decoded_frame'] * 1e3:13.2f} "
              f"{s['rss_mb_per_stream']:11.0f} {s['dropped']:8d} {str(s['sustained']):>10s} {s['python_share']:7.0%}")  # fmt: skip
    result |= {
        "max_streams": best["streams"] if sustained else 0,
        "cpu_s_per_frame": best["cpu_s_per_decoded_frame"],
        "cpu_s_per_analysed_frame": best["cpu_s_per_analysed_frame"],
        "rss_mb_per_stream": best["rss_mb_per_stream"],
        "cpu_cores_at_max": best["cpu_cores"],
        "cpu_share_at_max": best["cpu_cores"] / (psutil.cpu_count() or 1),
        "streams_within_75pct_cpu": int(0.75 * (psutil.cpu_count() or 1) / (best["cpu_cores"] / best["streams"])),
    }
    for r in rows:
        key = r["option"].split(":")[-1].split("(")[0].strip().lower().replace(" ", "_").replace("+", "and")
        key = ("ffmpeg_" if r["option"].startswith("ffmpeg") else "") + key
        result[f"decode_{key}_cpu_s_per_frame"] = r["cpu_s_per_decoded_frame"]
        result[f"decode_{key}_rss_mb"] = r["rss_mb"]
    for s in steps:
        result[f"ramp_{s['streams']}_min_fps"] = s["min_fps"]
        result[f"ramp_{s['streams']}_cpu_cores"] = s["cpu_cores"]
        result[f"ramp_{s['streams']}_mean_fps"] = s["mean_fps"]
    args.json.write_text(json.dumps(result, indent=2))
    plot(rows, steps, args.png, decode_rows)
    print(f"\nmax_streams={result['max_streams']}  cpu_s_per_frame={result['cpu_s_per_frame']:.5f}  "
          f"rss_mb_per_stream={result['rss_mb_per_stream']:.0f}  "
          f"cpu_share_at_max={result['cpu_share_at_max']:.0%}  "
          f"streams_within_75pct_cpu={result['streams_within_75pct_cpu']}\nJSON: {args.json}\nplot: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
