"""A stopping capture gives ffmpeg exactly one graceful signal and time to finish its last segment: a clean stop of
`python -m pipeline run` (SIGINT), a lease released for a hand-over and a lease whose deadline passed all leave the
last segment of every camera finished (ffprobe reads its duration), moved out of ``.incoming`` and indexed.

ffmpeg aborts its trailer on a second signal ("Immediate exit requested"): a stop that sends SIGINT from the
capture's session loop and SIGTERM from the worker's ffmpeg-stop thread leaves the segment unfinished in
``.incoming`` (duration N/A) and unindexed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from pipeline.cluster.leases import LeaseStore, fence_key, lease_key
from pipeline.config import parse_config
from pipeline.ingest.framebus import LeaseFlag
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.recording.index import Segment, index_key
from pipeline.recording.recorder import incoming_dir
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[3]
CLIP = "short_hamilton_clip"
INGEST = "ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n"
# an "ffmpeg" first on the PATH: runs the real one and passes on every signal it gets, logging it (pid, name), so that
# a test sees every signal a stop sent, however its timing fell (ffmpeg only loses its trailer to a second signal
# that arrives while it is still finishing)
SIGNAL_LOGGING_FFMPEG = """#!{python}
import ctypes, os, signal, subprocess, sys
log = os.environ["CCTV_TEST_SIGNAL_LOG"]
def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: SIGKILL of this wrapper kills ffmpeg too
proc = subprocess.Popen([{real!r}, *sys.argv[1:]], close_fds=False, preexec_fn=die_with_parent)
def forward(sig, _frame):
    with open(log, "a") as out:
        out.write(f"{{os.getpid()}} {{signal.Signals(sig).name}}\\n")
    proc.send_signal(sig)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, forward)
code = proc.wait()
sys.exit(code if code >= 0 else 128 - code)
"""


def signal_logging_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose ``ffmpeg`` logs the signals it gets (see :data:`SIGNAL_LOGGING_FFMPEG`), and the log."""
    real = shutil.which("ffmpeg")
    assert real is not None
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "ffmpeg"
    wrapper.write_text(SIGNAL_LOGGING_FFMPEG.format(python=sys.executable, real=real))
    wrapper.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}", tmp_path / "signals.log"


def assert_one_sigint_each(log: Path) -> None:
    """Every ffmpeg that was signalled got exactly one signal, SIGINT (the graceful stop)."""
    lines = log.read_text().split() if log.exists() else []
    got: dict[str, list[str]] = {}
    for pid, name in zip(lines[::2], lines[1::2], strict=True):
        got.setdefault(pid, []).append(name)
    assert got, "no ffmpeg was signalled"
    assert all(names == ["SIGINT"] for names in got.values()), f"signals each ffmpeg got: {got}"


def indexed(client: redis.Redis, camera_id: str) -> list[Segment]:
    return [Segment.from_member(m) for m in client.zrange(index_key(camera_id), 0, -1)]


def probed_duration(path: Path) -> float:
    """The container duration ffprobe reads (a segment whose trailer was never written has none: N/A)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    try:
        return float(out.stdout.strip())
    except ValueError:
        pytest.fail(f"{path.name}: ffprobe reads no duration ({out.stdout.strip()!r} {out.stderr.strip()[:200]!r})")


def assert_last_segment_finished(client: redis.Redis, rec: Path, camera_id: str, stopped_at: float) -> Segment:
    """Nothing left in ``.incoming``; every indexed segment is a finished file; the last one runs up to the stop."""
    left = sorted(p.name for p in incoming_dir(rec, camera_id).glob("*")) if incoming_dir(rec, camera_id).exists() else []
    assert not left, f"{camera_id}: unfinished segments left in .incoming: {left}"
    segments = indexed(client, camera_id)
    assert segments, f"{camera_id}: nothing indexed"
    for segment in segments:
        assert probed_duration(rec / segment.path) > 0
    last = max(segments, key=lambda s: s.end)
    # the stop's own segment (ended by the SIGINT), not the last one the 2 s segmenting had cut before the stop
    assert last.end >= stopped_at - 0.5, f"{camera_id}: last indexed segment ends {stopped_at - last.end:.2f}s before the stop"
    assert abs(probed_duration(rec / last.path) - last.duration) < 1.0
    return last


@pytest.mark.timeout(240)
def test_sigint_of_the_service_finishes_and_indexes_every_cameras_last_segment(
    h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path
) -> None:
    cams = ["cs-1", "cs-2", "cs-3"]
    config = tmp_path / "cameras.yaml"
    config.write_text(INGEST + "cameras:\n" + "".join(
        f"  - {{id: {cam}, name: {cam}, url: '{h264_cameras.url(CLIP)}', analytics: {{plates: false, faces: false}}}}\n"
        for cam in cams))  # fmt: skip
    rec = tmp_path / "rec"
    path, signals = signal_logging_path(tmp_path)
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(rec), "PATH": path,
           "CCTV_TEST_SIGNAL_LOG": str(signals)}  # fmt: skip
    log_path = tmp_path / "service.log"
    client = redis.Redis.from_url(redis_url)
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for(lambda: all(client.zcard(index_key(cam)) >= 2 for cam in cams) or proc.poll() is not None, 120,
                     "two segments of every camera indexed")  # fmt: skip
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1.0)  # mid-segment
            stopped_at = time.time()
            proc.send_signal(signal.SIGINT)  # `kill -INT` of the supervisor: a clean stop
            assert proc.wait(timeout=90) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log_path.read_text()
    assert "Immediate exit requested" not in text and "did not stop" not in text, text[-3000:]
    assert_one_sigint_each(signals)
    for cam in cams:
        assert_last_segment_finished(client, rec, cam, stopped_at)
    client.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["released", "deadline"])
def test_a_capture_stopped_for_a_lease_hand_over_leaves_its_last_segment_indexed(
    h264_cameras: TestCameraServer, redis_url: str, tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``released``: the worker host stops the capture, then releases the lease for another worker (a rebalance);
    ``deadline``: the lease's local deadline passes without a renewal and the capture stops itself. Either way the
    last segment ended under the lease (before the next token): finished, indexed under its token, never refused."""
    cam = f"ho-{how}"
    config = parse_config(INGEST + f"cameras:\n  - {{id: {cam}, name: H, url: '{h264_cameras.url(CLIP)}', "
                          "analytics: {plates: false, faces: false}}\n")  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    leases = LeaseStore(client)
    assert leases.acquire(cam, "w-a", 600_000) == 1
    flag = LeaseFlag()
    flag.renew(1, time.monotonic() + 3600)
    rec = tmp_path / "rec"
    path, signals = signal_logging_path(tmp_path)
    monkeypatch.setenv("PATH", path)  # the worker's environment (a spawned child)
    monkeypatch.setenv("CCTV_TEST_SIGNAL_LOG", str(signals))
    worker = CaptureWorkerProcess(config.cameras, config.ingest, None, redis_url, rec, stop_event=flag).start()
    try:
        wait_for(lambda: client.zcard(index_key(cam)) >= 2, 90, "two segments indexed")
        time.sleep(1.0)  # mid-segment
        stopped_at = time.time()
        if how == "released":
            worker.stop_event.set()
        else:
            flag.renew(1, time.monotonic())  # the deadline is now: nobody renews any more
        worker.process.join(60)
        assert worker.process.exitcode == 0
    finally:
        worker.stop(timeout_s=30)
    client.delete(lease_key(cam))  # released (or run out): another worker takes the camera
    assert leases.acquire(cam, "w-b", 600_000) == 2
    handed_out = float(client.hget(fence_key(cam), "2"))
    last = assert_last_segment_finished(client, rec, cam, stopped_at)
    assert last.token == 1 and last.end < handed_out
    assert_one_sigint_each(signals)
    client.close()
