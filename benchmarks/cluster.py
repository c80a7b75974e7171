"""Many servers, one control room: Redis failover, worker hand-over, events lost or duplicated, and capacity.

Usage: ``python -m benchmarks.cluster [--failovers 5] [--handovers 5] [--cameras 6] [--plate-cameras 3]
[--plate-fps 2] [--workers 3] [--throughput-json PATH] [--json OUT] [--plot PNG]``

1. **Redis failover** (needs root and ``ip netns``; the hosts of ``tests/cluster/netns.py``): three Redis hosts
   (primary + two replicas, ``min-replicas-to-write 1``) with a Sentinel each (``down-after-milliseconds``
   ``--down-after-ms``, default 2000 as in the README's layout) and a client host running the engine's real event
   path (EventStore with ``WAIT 1``, spool, SpooledPublisher, Sentinel-discovered client) at 25 events/s. Each
   round SIGKILLs the current primary, times ``failover_s`` (kill -> every Sentinel names a new primary that answers
   as master) and ``write_gap_s`` (kill -> the publisher stores directly again, spool drained), then restarts the
   old primary (it rejoins as a replica) before the next round. At the end every event id is counted on the final
   primary: ``events_lost`` = made - stored, ``events_duplicated`` = stream entries - distinct ids.
2. **Worker hand-over** (``pipeline run --role worker`` processes of :mod:`pipeline.cluster` on one Redis, real
   loopback RTSP cameras): ``--cameras`` record-only cameras and ``--plate-cameras`` analysed ones (plate analytics,
   ``--plate-fps``) on a looping clip made from the Bangkok dashcam footage: the 17.5 s in which the pickup with the
   legible Thai plate drives ahead, then 45 s of black (:func:`plate_clip`), so each passage of the plate is one
   vehicle visit, 45 s away from the next. Each round waits until a plate camera has just published the pickup
   (``publish_after_s: 1``; an event at most 4 s old, whose track began at most 5 s ago: the vehicle stays in view
   ~12 s more), SIGKILLs
   the worker holding that camera (without plate cameras: the worker holding the most cameras) and times, per
   camera, until its lease is held elsewhere and until it is ``online`` on its new worker
   (:func:`pipeline.cluster.measure.wait_handover`); the killed worker is started again before the next round.
   ``handover_p50_s`` / ``handover_p95_s`` are over the rounds' slowest camera (online). Events across a
   hand-over, per round, once the passage is over:

   - *lost*: an event stored before the kill (acknowledged to the old holder) that is not in the stream exactly
     once at the end of the run;
   - *duplicated*: an event of a killed worker's plate camera whose track began within 40 s after the kill (the new
     holder's, same visit) with a plate within distance 1.5 of an event of the old holder's (a track begun before
     the kill, seen until at most 15 s before it: the same visit) under another event id; plus any event id
     stored twice in the stream;
   - *merged*: an old holder's event of that visit whose end moved past the kill (+3 s) under the same id: updated
     by the new holder's track (:class:`pipeline.cluster.fencing.HandoverMerger`), one event across the hand-over.
3. **Capacity**: from a ``benchmarks.throughput`` JSON (``--throughput-json``; measured CPU per analysed frame of the
   whole service, and of the model stages), how many 2-core servers like this one, and how many GPU servers of the
   stated kind (assumptions printed with the table), a city of ``--city-cameras`` (500) needs at ``--fps``.

Prints a table, writes ``--json`` (``handover_p95_s``, ``events_lost``, ``events_duplicated`` (failovers and
hand-overs together; ``events_lost_failover``, ``events_lost_handover``, ... apart), ``failover_s``, ...) and a PNG
plot (default next to the JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLIP = "short_hamilton_clip"
PLATE_SOURCE = "thai_bangkok_night_dashcam_bus.mp4"
PLATE_CLIP = "plate_pass"
PLATE_FROM_S, PLATE_PASS_S, PLATE_GAP_S = 6.5, 17.5, 45.0
"""The pickup with the legible plate drives ahead from 6.5 s of the source for 17.5 s; then 45 s of black (longer
than the hand-over merge's 20 s gap: a merge of two visits would count as lost visits, not hide as one)."""
SAME_VISIT_S = 40.0
"""A track that began less than this after the kill saw the visit in view at the kill (the next one begins ~50 s
after the kill at the earliest)."""
VISIT_SEEN_S = 15.0
"""An old holder's event that ended less than this before the kill saw the visit in view at the kill (the previous
visit ended ~50 s before it)."""
PLATE_MATCH = 1.5
"""Largest plate distance (:func:`pipeline.plates.fuzzy.plate_distance`) between two reads of one vehicle."""

# -- capacity assumptions (stated in the output) -------------------------------------------------------------------
SERVER_CORES = 2
UTILISATION = 0.75
"""Share of a server's CPU (or GPU) planned for steady load: the rest absorbs a hand-over and bursts."""
GPU_KIND = "NVIDIA T4 (16 GB) in a 16-core server"
GPU_HOST_CORES = 16
GPU_MODEL_SPEEDUP = 30.0
"""Assumed: the GPU runs the project's models ~30x faster per frame than this 2-core CPU (Ultralytics publishes
YOLO11n at ~56 ms on CPU with ONNX and ~1.5 ms on a T4 with TensorRT FP16, ~37x; taken lower for batch-1 stages).
Not measured here: no GPU on this host."""


def progress(text: str) -> None:
    """A progress line (benchmark output, not logging)."""
    print(f"[cluster] {time.strftime('%H:%M:%S')} {text}", flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# -- 1. Redis failover ---------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_failovers(rounds: int, work: Path, down_after_ms: int) -> dict[str, Any]:
    """Kill the Redis primary ``rounds`` times under a publishing client; see the module docstring."""
    from tests.cluster.netns import Cluster, netns_unavailable, wait_until
    from tests.cluster.redisgroup import SentinelGroup

    why_not = netns_unavailable()
    if why_not is not None:
        return {"skipped": f"network namespaces unavailable: {why_not}"}
    with Cluster() as cluster:
        hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
        client_host = cluster.add_host("worker")
        group = SentinelGroup(hosts, work / "redis", down_after_ms=down_after_ms)
        progress(f"starting 3 Redis + 3 Sentinels on namespace hosts (down-after {down_after_ms} ms)")
        group.start()
        env = os.environ | group.client_env() | {"PYTHONPATH": str(REPO), "CCTV_RECORDINGS_DIR": str(work)}
        out = work / "publish.json"
        publisher = client_host.popen([sys.executable, "-m", "tests.cluster.agent", "publish", "--prefix", "bench",
                                       "--rate", "25", "--spool", str(work / "spool"), "--out", str(out)],
                                      log=work / "publisher.log", env=env, cwd=REPO)
        prog = out.with_suffix(".progress")
        wait_until(lambda: _read_json(prog).get("made", 0) >= 50, 120, "publisher running")
        failover_s: list[float] = []
        gaps: list[float] = []
        for i in range(rounds):
            old_ip = group.primary_ip()
            made = _read_json(prog).get("made", 0)
            wait_until(lambda m=made: _read_json(prog).get("made", 0) >= m + 50, 60, "50 more events")
            outages_before = len(_read_json(prog).get("outages", []))
            killed, at = group.kill_primary()
            group.wait_failover(old_ip or "")
            failover_s.append(time.time() - at)

            def recovered(n: int = outages_before) -> bool:
                outages = _read_json(prog).get("outages", [])
                return len(outages) > n and outages[-1][1] is not None

            wait_until(recovered, 120, "publisher storing directly again")
            last = _read_json(prog)["outages"][-1]
            gaps.append(max(0.0, last[1] - at))
            progress(f"failover {i + 1}/{rounds}: new primary after {failover_s[-1]:.2f} s, publisher storing "
                     f"directly again after {gaps[-1]:.2f} s")
            group.start_redis(killed, None)  # back from its AOF; Sentinel makes it a replica of the new primary
            wait_until(lambda h=killed: group.replica_in_sync(h), 120, "old primary rejoined as a replica in sync")
            new = group.host_of(group.primary_ip() or "")
            wait_until(lambda h=new: group._replicas_online(h) == 2, 120, "both replicas in sync")
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(timeout=180)
        summary = _read_json(out)
        counted = client_host.run([sys.executable, "-m", "tests.cluster.agent", "count", "--prefix", "bench"],
                                  env=env, timeout=180)
        if counted.returncode != 0:
            raise RuntimeError(f"counting the events failed: {counted.stderr[-1000:]}")
        found = json.loads(counted.stdout.strip().splitlines()[-1])
    made = int(summary.get("made", 0))
    return {"rounds": rounds, "down_after_ms": down_after_ms, "failover_s": failover_s, "write_gap_s": gaps,
            "events_made": made, "events_stored": found["ids"], "events_lost": made - found["ids"],
            "events_duplicated": found["entries"] - found["ids"], "spooled": summary.get("spooled_total"),
            "spool_dropped": summary.get("dropped"), "left_in_spool": summary.get("pending")}


# -- 2. worker hand-over -------------------------------------------------------------------------------------------
def _start_redis(work: Path) -> tuple[subprocess.Popen, str]:
    import socket

    from pipeline.store.redis_setup import RedisCredentials, render_conf, write_private

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = secrets.token_hex(16)
    folder = work / "handover-redis"
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "redis.conf", render_conf(port, folder, RedisCredentials(password, "", ""),
                                                     service_users=False))
    proc = subprocess.Popen(["redis-server", str(folder / "redis.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, f"redis://:{password}@127.0.0.1:{port}/0"


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - keep polling until the deadline
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s")


def plate_clip(videos_dir: Path) -> Path:
    """The looping plate footage (see the module docstring), made once into the test cameras' cache folder."""
    from pipeline.testcams import DEFAULT_CACHE_DIR, ffmpeg_into

    source = videos_dir / PLATE_SOURCE
    stat = source.stat()
    target = DEFAULT_CACHE_DIR / (f"{PLATE_CLIP}.{PLATE_FROM_S:g}-{PLATE_PASS_S:g}-{PLATE_GAP_S:g}."
                                  f"{stat.st_size}-{int(stat.st_mtime)}.mp4")
    if target.exists():
        return target
    DEFAULT_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    progress(f"making the plate clip ({PLATE_PASS_S:g} s of {PLATE_SOURCE}, {PLATE_GAP_S:g} s of black; once)")
    graph = ("[0:v]fps=25,scale=960:540,setsar=1[a];[1:v]setsar=1[b];[a][b]concat=n=2:v=1:a=0[v]")
    return ffmpeg_into(target, ["-ss", str(PLATE_FROM_S), "-t", str(PLATE_PASS_S), "-i", str(source), "-f", "lavfi",
                                "-t", str(PLATE_GAP_S), "-i", "color=c=black:s=960x540:r=25",
                                "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast",
                                "-g", "25", "-pix_fmt", "yuv420p"], "making the plate clip")


def _camera_videos(work: Path, plates: bool) -> Path:
    """A videos folder for the test cameras: the short clip, and the plate clip when plate cameras run."""
    from pipeline.settings import get_settings

    videos = get_settings().videos_dir
    folder = work / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{CLIP}.mp4").symlink_to(Path(videos) / f"{CLIP}.mp4")
    if plates:
        (folder / f"{PLATE_CLIP}.mp4").symlink_to(plate_clip(Path(videos)))
    return folder


def _config_text(record_ids: list[str], plate_ids: list[str], cams: Any, plate_fps: float, spool: Path) -> str:
    # one spool folder for the workers of this one machine (separate hosts have their own): used only while Redis
    # is unreachable, which the hand-over rounds never make it
    lines = ["cluster: {lease_ttl_s: 5, renew_interval_s: 1.5, rebalance_interval_s: 3, orphan_grace_s: 2}\n",
             "ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 10}\n",
             f"engine: {{device: cpu, publish_after_s: 1, metrics_port: 0, spool_dir: '{spool}'}}\n", "cameras:\n"]
    lines += [f"  - {{id: {c}, name: {c}, url: '{cams.url(CLIP)}', analytics: {{plates: false, faces: false}}}}\n"
              for c in record_ids]
    lines += [f"  - {{id: {c}, name: {c}, url: '{cams.url(PLATE_CLIP)}', analysis_fps: {plate_fps:g}, "
              f"analytics: {{plates: true, faces: false}}}}\n" for c in plate_ids]
    return "".join(lines)


def _plate_events(client: Any) -> list[Any]:
    """Every plate event in the stream (one entry per event: the current version)."""
    from pipeline.events import PlateEvent
    from pipeline.store import keys
    from pipeline.store.codec import decode

    return [decode(PlateEvent, fields) for _sid, fields in client.xrange(keys.PLATE_STREAM)]


def _vehicle_in_view(client: Any, plate_ids: list[str], timeout_s: float, begun_within_s: float = 5.0) -> str | None:
    """A plate camera that has just published a vehicle still in view (an event at most 4 s old whose track began
    at most ``begun_within_s`` ago: the pickup stays in view ~12 s more), or None."""
    from pipeline.events import PlateEvent
    from pipeline.store import keys
    from pipeline.store.codec import decode

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = time.time()
        for _sid, fields in client.xrevrange(keys.PLATE_STREAM, count=50):
            event = decode(PlateEvent, fields)
            if (event.camera_id in plate_ids and event.plate_text and now - event.ended_at <= 4.0
                    and now - event.started_at <= begun_within_s):
                return event.camera_id
        time.sleep(0.3)
    return None


def _brief(event: Any, t0: float) -> list[Any]:
    """An event in a few words: id tail, version, plate, start and end from ``t0``."""
    return [event.event_id[-6:], event.version, event.plate_text, round(event.started_at - t0, 1),
            round(event.ended_at - t0, 1)]


def handover_events(before: list[Any], after: list[Any], cameras: list[str], killed_at: float) -> dict[str, Any]:
    """One round's events across the hand-over of ``cameras`` (see the module docstring; lost is counted at the
    end of the run)."""
    from pipeline.plates.fuzzy import plate_distance

    out: dict[str, Any] = {"acked": len(before), "duplicated": [], "merged": [], "new_holder_events": 0,
                           "detail": {}}
    for cam in cameras:
        # the old holder's events of the visit in view at the kill (stored before it, or just after by its engine)
        old = [e for e in after if e.camera_id == cam and e.plate_text and e.started_at < killed_at
               and e.ended_at >= killed_at - VISIT_SEEN_S]
        new = [e for e in after if e.camera_id == cam and killed_at <= e.started_at < killed_at + SAME_VISIT_S]
        out["new_holder_events"] += len(new)
        for event in new:
            if event.plate_text and any(plate_distance(o.plate_text, event.plate_text) <= PLATE_MATCH for o in old):
                out["duplicated"].append({"camera": cam, "event_id": event.event_id, "plate": event.plate_text})
        out["merged"] += [{"camera": cam, "event_id": o.event_id, "plate": o.plate_text, "version": o.version}
                          for o in old if o.ended_at > killed_at + 3.0]  # updated by the new holder's track
        out["detail"][cam] = {"old": [_brief(e, killed_at) for e in old], "new": [_brief(e, killed_at) for e in new]}
    return out


def run_handovers(rounds: int, cameras: int, workers: int, work: Path, plate_cameras: int = 0,
                  plate_fps: float = 2.0) -> dict[str, Any]:  # fmt: skip
    """Kill a worker ``rounds`` times; see the module docstring."""
    import redis

    from pipeline.cluster.configstore import push_config
    from pipeline.cluster.measure import camera_holders, wait_handover
    from pipeline.store import keys
    from pipeline.testcams import TestCameraServer

    redis_proc, url = _start_redis(work)
    procs: dict[str, subprocess.Popen] = {}
    record_ids = [f"cam-{i + 1:02d}" for i in range(cameras)]
    plate_ids = [f"plate-{i + 1:02d}" for i in range(plate_cameras)]
    ids = record_ids + plate_ids
    slots = max(1, math.ceil(len(ids) / max(workers - 1, 1)))  # the others can take a lost worker's cameras

    def start(worker_id: str) -> None:
        env = {**os.environ, "CCTV_REDIS_URL": url, "CCTV_RECORDINGS_DIR": str(work / worker_id),
               "CCTV_HOST_NAME": f"host-{worker_id}"}
        env.pop("CCTV_REDIS_SENTINELS", None)
        with (work / f"{worker_id}.log").open("a") as log:
            procs[worker_id] = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--role", "worker",
                                                 "--worker-id", worker_id, "--slots", str(slots)], cwd=REPO, env=env,
                                                stdout=log, stderr=subprocess.STDOUT)

    lease_s: list[float] = []
    online_s: list[float] = []
    per_camera: list[float] = []
    events: list[dict[str, Any]] = []
    acked_ids: set[str] = set()
    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        _wait(client.ping, 30, "Redis")
        with TestCameraServer(_camera_videos(work, bool(plate_ids)), 0, codec="h264",
                              names=[CLIP] + ([PLATE_CLIP] if plate_ids else [])) as cams:
            push_config(client, _config_text(record_ids, plate_ids, cams, plate_fps, work / "spool"))
            names = [f"w-{i + 1}" for i in range(workers)]
            for name in names:
                start(name)
            progress(f"{workers} workers ({slots} slots each), {cameras} record-only cameras, {plate_cameras} plate "
                     f"cameras at {plate_fps:g} fps")
            for i in range(rounds):
                _wait(lambda: all(camera_holders(client, ids).values()) and
                      len(set(camera_holders(client, ids).values())) == workers, 300,
                      "every camera held and every worker holding some")
                _wait(lambda: all(_online(client, c) for c in ids), 300, "every camera online")
                in_view = _vehicle_in_view(client, plate_ids, 150) if plate_ids else None
                held = camera_holders(client, ids)
                victim = held[in_view] if in_view else max(names, key=lambda w: sum(1 for h in held.values() if h == w))
                cams_lost = [c for c, h in held.items() if h == victim]
                before = _plate_events(client)
                acked_ids |= {e.event_id for e in before}
                started, killed_at = time.monotonic(), time.time()
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait(timeout=30)
                leased = wait_handover(client, cams_lost, victim, online=False, timeout_s=120, started=started)
                online = wait_handover(client, cams_lost, victim, online=True, timeout_s=120, started=started)
                if len(online) < len(cams_lost):
                    raise RuntimeError(f"round {i + 1}: cameras not online elsewhere within 120 s: "
                                       f"{sorted(set(cams_lost) - set(online))}")
                lease_s.append(max(leased.values()))
                online_s.append(max(online.values()))
                per_camera += list(online.values())
                progress(f"hand-over {i + 1}/{rounds}: {victim} killed with {len(cams_lost)} cameras"
                         f"{f' (vehicle in view on {in_view})' if in_view else ''}; leased elsewhere after "
                         f"{lease_s[-1]:.1f} s, online after {online_s[-1]:.1f} s")
                if plate_ids:  # the visit is over, its tracks ended and published, before counting
                    time.sleep(max(0.0, killed_at + PLATE_PASS_S + 12.0 - time.time()))
                    round_events = handover_events(before, _plate_events(client),
                                                   [c for c in cams_lost if c in plate_ids], killed_at)
                    round_events |= {"round": i + 1, "camera_in_view": in_view}
                    events.append(round_events)
                    progress(f"  events: {round_events['acked']} stored before the kill, "
                             f"{len(round_events['merged'])} updated by the new holder (vehicle in view, one event), "
                             f"{len(round_events['duplicated'])} published twice")
                start(victim)  # the host comes back (its old children stopped when their parent died)
            entries: dict[str, int] = {}
            for _sid, fields in client.xrange(keys.PLATE_STREAM):
                event_id = (fields.get(b"event_id") or b"").decode()
                entries[event_id] = entries.get(event_id, 0) + 1
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    lost = sorted(e for e in acked_ids if entries.get(e, 0) != 1)
    twice = sorted(e for e, n in entries.items() if n > 1)
    duplicated = sum(len(r["duplicated"]) for r in events) + len(twice)
    return {"rounds": rounds, "cameras": cameras, "plate_cameras": plate_cameras, "plate_fps": plate_fps,
            "workers": workers, "lease_ttl_s": 5.0, "handover_lease_s": lease_s, "handover_online_s": online_s,
            "per_camera_online_s": per_camera, "events_acked_before_kills": len(acked_ids),
            "events_lost": len(lost) if plate_ids else None, "lost_ids": lost[:50],
            "events_duplicated": duplicated if plate_ids else None, "ids_stored_twice": twice[:50],
            "vehicles_in_view_merged": sum(len(r["merged"]) for r in events) if plate_ids else None,
            "event_rounds": events}


def _online(client: Any, camera_id: str) -> bool:
    from pipeline.ingest.health import read_camera_health

    health = read_camera_health(client, camera_id)
    return bool(health) and health[0].get("status") == "online" and not health[0].get("stale")


# -- 3. capacity ---------------------------------------------------------------------------------------------------
def measured_gpu_server(gpu: dict[str, Any], fps: float, other_cores_per_camera: float) -> dict[str, Any]:
    """Cameras per GPU server from a ``benchmarks.gpu --json`` result measured on a GPU: the parallel engines'
    analysed frames per second (engine CPU and GPU together, the models on the GPU) and their CPU per frame, plus
    each camera's other CPU (decode, storage: ``other_cores_per_camera``, from the CPU throughput run) on the same
    host's cores. The lower of the GPU engines' rate and the cores' budget, each at :data:`UTILISATION`."""
    cores = int(gpu["models"]["host"]["cores"])
    rate = float(gpu["engine_frames_per_s"])
    best = max((p for p in gpu.get("parallel") or [] if "error" not in p), key=lambda p: p["frames_per_s"],
               default=None)
    engine_cpu_ms = float(best["engine_cpu_ms_per_frame"] if best else gpu["engine_cpu_ms_per_frame"])
    by_rate = math.floor(rate * UTILISATION / fps)
    by_cores = math.floor(cores * UTILISATION / (engine_cpu_ms / 1000.0 * fps + other_cores_per_camera))
    return {"kind": f"{gpu['device']['gpu_name']} in a {cores}-core server (measured, {gpu['engine_runtime']})",
            "cameras_per_server": max(1, min(by_rate, by_cores)),
            "bound": "the engines' measured rate" if by_rate <= by_cores else "cpu (engine, decode, storage)",
            "measured_frames_per_s": rate, "engine_cpu_ms_per_frame": engine_cpu_ms}


def capacity(throughput: dict[str, Any], city: int, fps: float, gpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """Servers a city needs, from measured per-frame costs (see the module docstring and the GPU assumptions);
    ``gpu``, a ``benchmarks.gpu --json`` result measured on a GPU, replaces the assumed GPU row."""
    analysed = float(throughput["analysed_fps"])
    if analysed <= 0:
        raise ValueError("the throughput JSON analysed no frames")
    cores_per_frame = float(throughput["cpu_cores"]) / analysed  # every process of the service: decode + engine
    engine_cpu_ms = float(throughput.get("engine_cpu_ms_per_frame") or 1000.0 * cores_per_frame)
    # the models' share of the engine's time (wall over wall, both measured under the same load)
    model_share = min(1.0, float(throughput["models_only_ms_per_frame"]) / float(throughput["engine_ms_per_frame"]))
    models_ms = engine_cpu_ms * model_share  # CPU ms per frame in the model stages
    cpu_per_camera = cores_per_frame * fps
    cams_cpu_server = max(1, math.floor(SERVER_CORES * UTILISATION / cpu_per_camera))
    rest_ms = max(1000.0 * cores_per_frame - models_ms, 0.0)  # decode, tracking, storage: stays on the CPU
    gpu_ms = models_ms / GPU_MODEL_SPEEDUP
    cams_gpu_by_gpu = math.floor(1000.0 * UTILISATION / (gpu_ms * fps)) if gpu_ms > 0 else 10**6
    cams_gpu_by_cpu = math.floor(GPU_HOST_CORES * UTILISATION * 1000.0 / (rest_ms * fps)) if rest_ms > 0 else 10**6
    cams_gpu_server = max(1, min(cams_gpu_by_gpu, cams_gpu_by_cpu))

    def servers(per_server: int) -> int:
        return math.ceil(city / per_server) + 1  # N+1: one server's cameras fit on the others after its loss

    gpu_server: dict[str, Any] = {"kind": GPU_KIND, "cameras_per_server": cams_gpu_server,
                                  "bound": "gpu" if cams_gpu_by_gpu <= cams_gpu_by_cpu else
                                  "cpu (decode, tracking, storage)", "measured": False}
    gpu_assumption = (f"GPU: models {GPU_MODEL_SPEEDUP:g}x faster per frame than this CPU (not measured here), "
                      f"the rest of the per-frame work on {GPU_HOST_CORES} cores")
    if gpu and gpu.get("gpu_measured"):
        other_cores = max(cores_per_frame - engine_cpu_ms / 1000.0, 0.0) * fps  # decode, storage: per camera
        gpu_server = {**measured_gpu_server(gpu, fps, other_cores), "measured": True}
        gpu_assumption = (f"GPU: measured by benchmarks.gpu ({gpu_server['measured_frames_per_s']:g} analysed "
                          f"frames/s, {gpu_server['engine_cpu_ms_per_frame']:g} engine CPU ms a frame), plus "
                          f"{other_cores:.3f} cores a camera for decode and storage as measured on this CPU")
    gpu_server["servers"] = servers(gpu_server["cameras_per_server"])

    return {
        "city_cameras": city, "fps_per_camera": fps,
        "measured_streams": throughput.get("streams"), "measured_analysed_fps": analysed,
        "measured_latency_p95_s": throughput.get("latency_p95_s"),
        "cpu_cores_per_analysed_frame_s": round(cores_per_frame, 4),
        "models_cpu_ms_per_frame": round(models_ms, 1),
        "engine_cpu_ms_per_frame": round(engine_cpu_ms, 1),
        "other_cpu_ms_per_frame": round(rest_ms, 1),
        "gpu_ms_per_frame_assumed": round(gpu_ms, 2),
        "cpu_server": {"kind": f"{SERVER_CORES}-core server like this one", "cameras_per_server": cams_cpu_server,
                       "servers": servers(cams_cpu_server)},
        "gpu_server": gpu_server,
        "plus": "3 Redis nodes (primary, 2 replicas, a Sentinel each) and 2 API hosts in either case",
        "assumptions": [f"{UTILISATION:.0%} of each server planned for steady load",
                        "CPU per frame of the whole service as measured (decode + engine), at the measured load",
                        gpu_assumption,
                        "N+1 servers (a lost server's cameras fit on the others)"],
    }


# -- report --------------------------------------------------------------------------------------------------------
def flat(failover: dict[str, Any] | None, handover: dict[str, Any] | None,
         cap: dict[str, Any] | None, notes: dict[str, str]) -> dict[str, Any]:
    """The JSON written by ``--json``."""
    f_times = (failover or {}).get("failover_s") or []
    online = (handover or {}).get("handover_online_s") or []
    lease = (handover or {}).get("handover_lease_s") or []
    out: dict[str, Any] = {
        "failover_s": round(statistics.median(f_times), 3) if f_times else None,
        "failover_max_s": round(max(f_times), 3) if f_times else None,
        "failover_rounds": f_times,
        "write_gap_s": (failover or {}).get("write_gap_s"),
        "events_lost": _sum((failover or {}).get("events_lost"), (handover or {}).get("events_lost")),
        "events_duplicated": _sum((failover or {}).get("events_duplicated"),
                                  (handover or {}).get("events_duplicated")),  # fmt: skip
        "events_lost_failover": (failover or {}).get("events_lost"),
        "events_duplicated_failover": (failover or {}).get("events_duplicated"),
        "events_lost_handover": (handover or {}).get("events_lost"),
        "events_duplicated_handover": (handover or {}).get("events_duplicated"),
        "events_made": (failover or {}).get("events_made"),
        "handover_events_acked": (handover or {}).get("events_acked_before_kills"),
        "handover_vehicles_in_view_merged": (handover or {}).get("vehicles_in_view_merged"),
        "handover_p50_s": _round(percentile(online, 50)),
        "handover_p95_s": _round(percentile(online, 95)),
        "handover_lease_p95_s": _round(percentile(lease, 95)),
        "handover_rounds": online,
        "failover": failover, "handover": handover, "capacity": cap, "notes": notes,
    }
    return out


def _sum(*values: int | None) -> int | None:
    """Sum of the measured values (None when none was measured)."""
    measured = [v for v in values if v is not None]
    return sum(measured) if measured else None


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def print_table(result: dict[str, Any]) -> None:
    """The summary table."""
    def fmt(value: Any) -> str:
        if value is None:
            return "n/a"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    rows = [("Redis failover, SIGKILL -> new primary (median)", fmt(result["failover_s"]) + " s"),
            ("Redis failover, worst round", fmt(result["failover_max_s"]) + " s"),
            ("publisher storing directly again (rounds)", ", ".join(f"{g:.1f}" for g in result["write_gap_s"] or [])
             + " s"),
            ("Redis failovers: events made / lost / duplicated",
             f"{fmt(result['events_made'])} / {fmt(result['events_lost_failover'])} / "
             f"{fmt(result['events_duplicated_failover'])}"),
            ("worker hand-overs: events stored before the kills / lost / duplicated",
             f"{fmt(result['handover_events_acked'])} / {fmt(result['events_lost_handover'])} / "
             f"{fmt(result['events_duplicated_handover'])}"),
            ("worker hand-overs: vehicle in view, kept as one event (merged)",
             fmt(result["handover_vehicles_in_view_merged"])),
            ("events lost / duplicated, all together", f"{fmt(result['events_lost'])} / "
                                                       f"{fmt(result['events_duplicated'])}"),
            ("worker hand-over, online elsewhere p50", fmt(result["handover_p50_s"]) + " s"),
            ("worker hand-over, online elsewhere p95", fmt(result["handover_p95_s"]) + " s"),
            ("worker hand-over, lease taken p95", fmt(result["handover_lease_p95_s"]) + " s")]
    cap = result.get("capacity")
    if cap:
        rows += [(f"{cap['city_cameras']} cameras at {cap['fps_per_camera']:g} fps: {cap['cpu_server']['kind']}",
                  f"{cap['cpu_server']['cameras_per_server']} cameras each -> {cap['cpu_server']['servers']} servers"),
                 (f"  or {cap['gpu_server']['kind']}",
                  f"{cap['gpu_server']['cameras_per_server']} cameras each ({cap['gpu_server']['bound']}-bound) -> "
                  f"{cap['gpu_server']['servers']} servers"),
                 ("  plus", cap["plus"])]
    width = max(len(r[0]) for r in rows)
    print("\n" + "-" * (width + 40))
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print("-" * (width + 40))
    if cap:
        print("assumptions: " + "; ".join(cap["assumptions"]))
    for key, why in result["notes"].items():
        print(f"note ({key}): {why}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Failover and hand-over times per round, and the capacity bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    f_times, gaps = result["failover_rounds"] or [], result["write_gap_s"] or []
    if f_times:
        ax.plot(range(1, len(f_times) + 1), f_times, marker="o", label="new primary")
        ax.plot(range(1, len(gaps) + 1), gaps, marker="s", label="publisher storing again")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(1, max(len(f_times), 1) + 1))
    ax.set_title("Redis failover (SIGKILL of the primary)")
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.set_ylim(bottom=0)
    ax = axes[1]
    online = result["handover_rounds"] or []
    if online:
        ax.plot(range(1, len(online) + 1), online, marker="o", label="online elsewhere (slowest camera)")
        lease = (result.get("handover") or {}).get("handover_lease_s") or []
        ax.plot(range(1, len(lease) + 1), lease, marker="s", label="lease taken")
        ax.axhline(15, ls="--", color="tab:red", label="goal 15 s")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(1, max(len(online), 1) + 1))
    ax.set_title("worker hand-over (SIGKILL of a worker)")
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.set_ylim(bottom=0)
    ax = axes[2]
    cap = result.get("capacity")
    if cap:
        labels = [f"{SERVER_CORES}-core CPU", "GPU (measured)" if cap["gpu_server"].get("measured") else
                  "GPU (T4, assumed)"]
        values = [cap["cpu_server"]["servers"], cap["gpu_server"]["servers"]]
        ax.bar(labels, values, color=["tab:gray", "tab:green"])
        for x, v in enumerate(values):
            ax.text(x, v, str(v), ha="center", va="bottom")
        ax.set_title(f"servers for {cap['city_cameras']} cameras at {cap['fps_per_camera']:g} fps (N+1)")
    else:
        ax.text(0.5, 0.5, "no throughput figures", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("capacity")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--failovers", type=int, default=5, help="Redis primary kills (0: skip)")
    parser.add_argument("--down-after-ms", type=int, default=2000, help="Sentinel down-after-milliseconds")
    parser.add_argument("--handovers", type=int, default=5, help="worker kills (0: skip)")
    parser.add_argument("--cameras", type=int, default=6, help="record-only cameras shared by the workers")
    parser.add_argument("--plate-cameras", type=int, default=3,
                        help="plate-analysed cameras on the looping plate clip (0: record-only hand-overs, no events)")
    parser.add_argument("--plate-fps", type=float, default=2.0, help="analysed frames per second of a plate camera")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--throughput-json", type=Path, help="a benchmarks.throughput --json result (capacity)")
    parser.add_argument("--gpu-json", type=Path,
                        help="a benchmarks.gpu --json result measured on a GPU: the GPU row from it, not assumed")
    parser.add_argument("--city-cameras", type=int, default=500)
    parser.add_argument("--fps", type=float, default=1.0, help="analysed frames per second per camera (capacity)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="PNG plot (default: next to --json)")
    args = parser.parse_args(argv)
    if args.throughput_json and not args.throughput_json.is_file():  # found out now, not after the long runs
        parser.error(f"--throughput-json {args.throughput_json}: no such file (python -m benchmarks.throughput "
                     "--streams 4 --fps 1 --json FILE makes one)")
    if args.gpu_json and not args.gpu_json.is_file():
        parser.error(f"--gpu-json {args.gpu_json}: no such file (python -m benchmarks.gpu --json FILE on a GPU "
                     "machine makes one)")
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))  # unwind: namespaces and processes cleaned up
    os.environ.setdefault("CCTV_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    notes: dict[str, str] = {}
    failover = handover = cap = None
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        work = Path(tmp)
        if args.failovers > 0:
            failover = run_failovers(args.failovers, work / "failover", args.down_after_ms)
            if "skipped" in failover:
                notes["failover"] = failover["skipped"]
                failover = None
        else:
            notes["failover"] = "skipped (--failovers 0)"
        if args.handovers > 0:
            try:
                handover = run_handovers(args.handovers, args.cameras, args.workers, work / "handover",
                                         args.plate_cameras, args.plate_fps)  # fmt: skip
            except ImportError as exc:
                notes["handover"] = f"worker roles not available in this tree ({exc})"
        else:
            notes["handover"] = "skipped (--handovers 0)"
    notes["events"] = ("events_lost / events_duplicated: the failovers' count (the engine's real publisher) plus "
                       "the hand-overs' (plate cameras, see the module docstring for what counts)")
    if handover is not None and not handover.get("plate_cameras"):
        notes["events"] += "; no plate cameras (--plate-cameras 0): the hand-over rounds made no events"
    if args.throughput_json:
        gpu = json.loads(args.gpu_json.read_text()) if args.gpu_json else None
        if gpu is not None and not gpu.get("gpu_measured"):
            notes["gpu"] = f"{args.gpu_json} was not measured on a GPU (gpu_measured false): the GPU row is assumed"
        cap = capacity(json.loads(args.throughput_json.read_text()), args.city_cameras, args.fps, gpu)
        notes["capacity"] = f"per-frame costs from {args.throughput_json}"
    else:
        notes["capacity"] = "no --throughput-json given (python -m benchmarks.throughput --streams 4 --fps 1 --json F)"
    result = flat(failover, handover, cap, notes)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    png = args.plot or (args.json.with_suffix(".png") if args.json else None)
    if png:
        plot(result, png)
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
