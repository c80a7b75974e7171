"""Crash test of the whole service: SIGKILL of the supervisor (`python -m pipeline run`) in the middle of recording.

The service runs as the workers' ACL user of the generated set-up (:data:`pipeline.store.redis_setup.SERVICE_RULES`)
against a durable test Redis. First the supervisor alone is killed (its children notice and stop, closing their segment), then, after a
restart, every process of the service at once (ffmpeg dies in the middle of a segment). After each kill every
segment already indexed is still indexed, on disk and playable, the records the API side had stored are untouched
and no process is left behind; started again (what systemd's ``Restart=always`` in ``scripts/systemd/cctv.service``
does), the service comes back by itself: the camera goes online, a segment cut by the kill is recovered from
``.incoming`` and indexed, and recording goes on. An evidence export (``python -m pipeline export-clip``, what the
API's export worker runs) is SIGKILLed while its ffmpeg cuts: no clip is left that looks finished without its
manifest, and the same export asked again after the restart completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from api.store import ApiStore
from pipeline.ingest.health import read_camera_health
from pipeline.recording.index import Segment, index_key
from pipeline.recording.recorder import incoming_dir, probe_duration
from pipeline.store import WatchlistStore
from pipeline.store.redis_setup import SERVICE_RULES, WORKERS_USER
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[3]
CLIP = "short_hamilton_clip"
CAM = "crash-cam"



def segments(client: redis.Redis) -> list[Segment]:
    return [Segment.from_member(m) for m in client.zrange(index_key(CAM), 0, -1)]


def start_service(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as fh:
        return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--no-api"],
                                cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)


@pytest.mark.timeout(400)
def test_supervisor_sigkill_mid_recording_loses_nothing_and_a_restart_resumes(
    h264_cameras: TestCameraServer, own_redis: Any, tmp_path: Path
) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    admin.execute_command("ACL", "SETUSER", WORKERS_USER, "on", ">workers-pass", *SERVICE_RULES.split())
    workers_url = f"redis://{WORKERS_USER}:workers-pass@127.0.0.1:{own_redis.port}/0"
    # what the API side had stored before the crash
    store = ApiStore(admin, scrypt_n=16)
    store.put_user("inspector", "investigator", "inspector-pass")
    watchlist = WatchlistStore(admin).create_watchlist("plate", "stolen")["id"]
    WatchlistStore(admin).put_entry(watchlist, {"plate": "1กข1234", "reason": "stolen"})
    admin.hset("case:c1", mapping={"id": "c1", "name": "case one", "created_by": "inspector"})
    admin.zadd("cases", {"c1": time.time()})
    store.audit("inspector", "plates.search", {"q": "1กข1234"})
    seeded = {"users": admin.smembers("users"), "watchlist": admin.hgetall(f"wl:{watchlist}:entries"),
              "case": admin.hgetall("case:c1"), "audit": admin.xlen("audit")}

    config = tmp_path / "cameras.yaml"
    config.write_text(  # record-only: no engine process to load models in this test
        "ingest: {stall_timeout_s: 3, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 2}\n"
        f"cameras:\n  - {{id: {CAM}, name: C, url: '{h264_cameras.url(CLIP)}', "
        "analytics: {plates: false, faces: false}}\n"
    )
    rec = tmp_path / "rec"
    env = {**os.environ, "CCTV_REDIS_URL": workers_url, "CCTV_RECORDINGS_DIR": str(rec)}
    env.pop("CCTV_REDIS_ALLOW_VOLATILE", None)
    log = tmp_path / "service.log"
    figures: dict[str, Any] = {}

    # 1. SIGKILL of the supervisor alone: its children notice and stop by themselves, closing their segment
    proc = start_service(config, env, log)
    before, after_kill, tree = kill_mid_recording(proc, admin, rec, whole_tree=False)
    check_nothing_lost(before, after_kill, rec)
    figures["supervisor_only"] = {"indexed_before_kill": len(before), "indexed_after_kill": len(after_kill),
                                  "lost": len({s.member() for s in before} - {s.member() for s in after_kill}),
                                  "processes_left_behind": 0}

    # 2. started again (systemd Restart=always), then SIGKILL of every process of the service at once (a power cut
    #    of the service: ffmpeg dies in the middle of a segment)
    proc = start_service(config, env, log)
    wait_back(admin, tree, len(after_kill))
    exports = tmp_path / "exports"
    before, after_kill, tree = kill_mid_recording(proc, admin, rec, whole_tree=True,
                                                  export=lambda: start_export(env, admin, exports))
    export_state = {"killed_while_ffmpeg_cut": KILLED_EXPORT[-1], **check_exports(exports)}
    assert export_state["clip_without_manifest"] == 0  # a cut export never looks like finished evidence
    check_nothing_lost(before, after_kill, rec)
    leftovers = {p.name: (p.stat().st_mtime, probe_duration(p) or 0.0) for p in incoming_dir(rec, CAM).glob("*.mkv")}
    assert leftovers, "no segment was being written at the kill"
    # the cut segment keeps all but its last (unflushed) cluster: it plays and is recovered at the next start
    playable = {name: mtime for name, (mtime, duration) in leftovers.items() if duration > 0}

    # 3. started again: it comes back, recovers the cut segment from .incoming and records on
    proc = start_service(config, env, log)
    try:
        wait_back(admin, tree, len(after_kill))
        resumed = segments(admin)
        assert not set(leftovers) & {p.name for p in incoming_dir(rec, CAM).glob("*.mkv")}, "leftovers not handled"
        recovered = [s for s in resumed if any(abs(s.end - mtime) < 0.01 for mtime in playable.values())]
        assert len(recovered) == len(playable), f"segments cut by the kill not recovered: {leftovers}"
        again = start_export(env, admin, exports)  # the export asked again after the crash completes
        assert again.wait(timeout=120) == 0, again.stderr.read() if again.stderr else ""
        assert check_exports(exports)["complete"] >= 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    audit = admin.xrange("audit")
    assert seeded == {"users": admin.smembers("users"), "watchlist": admin.hgetall(f"wl:{watchlist}:entries"),
                      "case": admin.hgetall("case:c1"), "audit": seeded["audit"]}
    # the seeded record survived; every later one is a command-line export's own audit record (written before it cuts)
    assert audit[0][1][b"action"] == b"plates.search"
    assert {(fields[b"user"], fields[b"action"], fields[b"ip"]) for _, fields in audit[1:]} == {
        (b"crash-test", b"export", b"cli")}
    text = log.read_text()
    assert text.count("persists its data: AOF on") == 3  # the start-up check ran as the workers' ACL user
    figures["whole_tree"] = {"indexed_before_kill": len(before), "indexed_after_kill": len(after_kill),
                             "lost": len({s.member() for s in before} - {s.member() for s in after_kill}),
                             "segments_cut_by_kill": len(leftovers), "playable_cut_segments": len(playable),
                             "recovered_after_restart": len(recovered), "indexed_after_restart": len(resumed),
                             "export_at_kill": export_state}
    print("\nSUPERVISOR CRASH FIGURES " + json.dumps(figures))


def start_export(env: dict[str, str], client: redis.Redis, out: Path) -> subprocess.Popen:
    """``python -m pipeline export-clip`` of everything recorded so far (as the API's export worker would run it)."""
    recorded = segments(client)
    return subprocess.Popen([sys.executable, "-m", "pipeline", "export-clip", CAM, repr(recorded[0].start),
                             repr(recorded[-1].end), "--requester", "crash-test", "--out", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def check_exports(out: Path) -> dict[str, Any]:
    """Nothing half-written looks finished: every clip has its manifest and matches its SHA-256."""
    from pipeline.models_manifest import sha256_file

    clips = sorted(out.glob("*.mp4")) if out.is_dir() else []
    final = [c for c in clips if not c.name.endswith(".part.mp4")]
    for clip in final:
        manifest = clip.with_suffix(".json")
        if manifest.exists():
            assert json.loads(manifest.read_text())["sha256"] == sha256_file(clip), clip
    complete = [c for c in final if c.with_suffix(".json").exists()]
    return {"complete": len(complete), "clip_without_manifest": len(final) - len(complete),
            "part_files_left": len(clips) - len(final)}


KILLED_EXPORT: list[bool] = []


def kill_export_mid_cut(exporter: subprocess.Popen) -> bool:
    """SIGKILL an export and its ffmpeg as soon as ffmpeg runs; True if it was cut mid-way (not finished yet)."""
    deadline = time.monotonic() + 60
    cut = False
    while exporter.poll() is None and time.monotonic() < deadline:
        try:
            procs = [psutil.Process(exporter.pid), *psutil.Process(exporter.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        if any("ffmpeg" in p.name() for p in procs[1:]):
            for p in procs:
                try:
                    p.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            cut = True
            break
        time.sleep(0.01)
    exporter.wait(timeout=30)
    return cut and exporter.returncode == -signal.SIGKILL


def kill_mid_recording(proc: subprocess.Popen, client: redis.Redis, rec: Path, whole_tree: bool,
                       export: Callable[[], subprocess.Popen] | None = None,
                       ) -> tuple[list[Segment], list[Segment], list[psutil.Process]]:
    """Wait until recording runs (and SIGKILL an export of it in the middle of its cut), SIGKILL the supervisor (or
    its whole process tree); return the segments indexed before and after the kill and the killed tree, once it has
    all gone."""
    tree: list[psutil.Process] = []
    try:
        start = len(segments(client))
        wait_for(lambda: len(segments(client)) >= start + 3, 180, "three more segments recorded and indexed")
        if export is not None:
            KILLED_EXPORT.append(kill_export_mid_cut(export()))
        if whole_tree:  # kill once the segment being written holds at least one flushed cluster (1 s)
            wait_for(lambda: any((probe_duration(p) or 0) > 0 for p in incoming_dir(rec, CAM).glob("*.mkv")), 60,
                     "a segment being written with a second of video in it")
        else:
            wait_for(lambda: any(incoming_dir(rec, CAM).glob("*.mkv")), 30, "a segment being written")
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("ffmpeg" in p.name() for p in tree)
        before = segments(client)
        proc.send_signal(signal.SIGKILL)
        if whole_tree:
            for child in tree:
                try:
                    child.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=60)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"processes left behind after the supervisor was killed: {alive}"
    return before, segments(client), tree


def check_nothing_lost(before: list[Segment], after: list[Segment], rec: Path) -> None:
    """Every segment indexed before the kill is still indexed, on disk with its size, and plays."""
    assert {s.member() for s in before} <= {s.member() for s in after}
    for seg in after:
        path = rec / seg.path
        assert path.is_file() and path.stat().st_size == seg.size, seg
        assert (probe_duration(path) or 0) > 0, f"{seg.path} does not play"


def wait_back(client: redis.Redis, old_tree: list[psutil.Process], indexed: int) -> None:
    """The camera is online again in a new worker and recording goes on."""
    old = {p.pid for p in old_tree}
    wait_for(lambda: (h := read_camera_health(client, CAM)) and h[0]["status"] == "online"
             and h[0]["worker_pid"] not in old, 120, "the camera online again")
    wait_for(lambda: len(segments(client)) >= indexed + 2, 120, "recording going on after the restart")
