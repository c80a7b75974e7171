"""Programs the cluster tests run inside namespace hosts (``python -m tests.cluster.agent <command>``).

The test process lives in the machine's own namespace and cannot reach the hosts' addresses, so whatever talks
to Redis runs here, inside a host, through the project's own code paths:

- ``publish``: the engine's real event path (:class:`pipeline.store.EventStore` with replica acknowledgement,
  :class:`pipeline.engine.spool.EventSpool`, :class:`pipeline.engine.publisher.SpooledPublisher`) over a client
  from :func:`pipeline.store.connection.redis_client` (Sentinel when ``CCTV_REDIS_SENTINELS`` is set), publishing
  plate events ``<prefix>-<n>`` at a steady rate until SIGTERM, then draining its spool; it writes a JSON summary
  (how many it made, when Redis stopped and started taking them again).
- ``count``: every plate event of a prefix in the stream, by id (JSON: ids, entries, duplicated ids).
- ``index``: index segments listed in a JSON file (as this host's recorder would).
- ``serve-segments``: this host's internal segment server (:mod:`pipeline.recording.serve`) until SIGTERM.
- ``cluster-state``: per camera, the worker holding its lease, its health (status, worker, host) and the hosts
  of its indexed segments (JSON).
- ``api-probe``: log in to the API once, then ask for the camera list every 0.2 s until SIGTERM, counting the
  status codes before and after ``--mark-file`` appears (JSON progress in ``--out``).
- ``api-export``: log in to the control-room API, ask for a clip and wait for it; JSON with what came back.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from pipeline.engine.publisher import SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.events import PlateEvent
from pipeline.settings import get_settings
from pipeline.store import EventStore, keys
from pipeline.store.codec import decode
from pipeline.store.connection import redis_client, wait_replicas

logger = logging.getLogger("tests.cluster.agent")


def event(prefix: str, n: int) -> PlateEvent:
    """The n-th synthetic plate event of a publisher."""
    now = time.time()
    return PlateEvent(event_id=f"{prefix}-{n:07d}", camera_id="cam-ha", track_id=n, started_at=now, ended_at=now,
                      frame_time=now, plate_text=f"1กข{n % 10000:04d}", confidence=0.9)


def publish(args: argparse.Namespace) -> int:
    """Publish until SIGTERM, then drain the spool (at most ``--drain-s``); write the summary to ``--out``."""
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    settings = get_settings()
    client = redis_client(socket_timeout=1.0, socket_connect_timeout=0.5)
    store = EventStore(client, wait_replicas=wait_replicas(settings), wait_timeout_ms=settings.redis_wait_timeout_ms)
    publisher = SpooledPublisher(store, EventSpool(args.spool, 64 * 1024 * 1024), retry_interval_s=0.2)
    made = 0
    outages: list[list[float | None]] = []  # [first spooled, first stored directly again] (epoch s)
    period = 1.0 / args.rate
    next_at = time.monotonic()
    while not stop:
        now = time.time()
        direct = publisher.publish("plate", event(args.prefix, made))
        made += 1
        if not direct and (not outages or outages[-1][1] is not None):
            outages.append([now, None])
        elif direct and outages and outages[-1][1] is None:
            outages[-1][1] = now
        publisher.flush()
        if made % 10 == 0:
            tmp = Path(args.out).with_suffix(".progress.tmp")
            tmp.write_text(json.dumps({"made": made, "pending": publisher.pending, "outages": outages,
                                       "first_spooled": outages[0][0] if outages else None,
                                       "back_at": outages[0][1] if outages else None}))
            tmp.replace(Path(args.out).with_suffix(".progress"))
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    deadline = time.monotonic() + args.drain_s
    while publisher.pending and time.monotonic() < deadline:
        publisher.flush(force=True)
        time.sleep(0.2)
    summary = {"made": made, "pending": publisher.pending, "spooled_total": publisher.spooled_total,
               "delivered_from_spool": publisher.delivered_from_spool, "outages": outages,
               "dropped": publisher.spool.dropped}
    Path(args.out).write_text(json.dumps(summary))
    return 0 if publisher.pending == 0 else 1


def count(args: argparse.Namespace) -> int:
    """Print the plate events of ``--prefix`` in the stream: distinct ids, entries, ids stored more than once."""
    client = redis_client(socket_timeout=5, socket_connect_timeout=2)
    seen: dict[str, int] = {}
    for _sid, fields in client.xrange(keys.PLATE_STREAM):
        ev = decode(PlateEvent, fields)
        if ev.event_id.startswith(args.prefix + "-"):
            seen[ev.event_id] = seen.get(ev.event_id, 0) + 1
    ids = sorted(seen)
    print(json.dumps({"ids": len(ids), "entries": sum(seen.values()),
                      "duplicated": [i for i in ids if seen[i] > 1][:50], "max_n": ids[-1] if ids else None}))
    return 0


def index(args: argparse.Namespace) -> int:
    """Add the segments of ``--segments`` (JSON list of Segment fields) to the index of ``--camera``."""
    from pipeline.recording.index import Segment, add_segment

    client = redis_client(socket_timeout=5, socket_connect_timeout=2)
    for item in json.loads(Path(args.segments).read_text()):
        add_segment(client, args.camera, Segment(**item))
    return 0


def serve_segments(_args: argparse.Namespace) -> int:
    """Run this host's segment server (settings from the environment) until SIGTERM."""
    import threading

    from pipeline.recording.serve import start_segment_server

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    server = start_segment_server(redis_client(socket_timeout=5, socket_connect_timeout=2), stop_event=stop)
    if server is None:
        print("CCTV_INTERNAL_TOKEN is not set", file=sys.stderr)
        return 2
    stop.wait()
    server.shutdown()
    return 0


def api_export(args: argparse.Namespace) -> int:
    """Log in, POST an export, poll it to the end, download the clip; print what happened as JSON."""
    import hashlib
    import os

    import httpx

    with httpx.Client(base_url=args.base, timeout=60) as http:
        login = http.post("/api/auth/login", json={"username": args.user, "password": os.environ[args.password_env]})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = http.post("/api/exports", headers=headers,
                            json={"camera_id": args.camera, "start": args.start, "end": args.end})
        out: dict = {"status_code": created.status_code, "body": created.json(),
                     "retry_after": created.headers.get("retry-after")}
        if created.status_code == 202:
            job_id = created.json()["id"]
            deadline = time.monotonic() + args.wait_s
            job = created.json()
            while job["status"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.5)
                job = http.get(f"/api/exports/{job_id}", headers=headers).json()
            out["job"] = job
            if job["status"] == "done":
                clip = http.get(f"/api/exports/{job_id}/download", headers=headers)
                out["download_sha256"] = hashlib.sha256(clip.content).hexdigest()
                out["manifest"] = http.get(f"/api/exports/{job_id}/manifest", headers=headers).json()
    print(json.dumps(out))
    return 0


def cluster_state(args: argparse.Namespace) -> int:
    """Print who holds each camera, whether it is online there, and where its segments are."""
    from pipeline.cluster.measure import camera_holders
    from pipeline.ingest.health import read_camera_health
    from pipeline.recording.index import index_key, segments_between

    client = redis_client(socket_timeout=5, socket_connect_timeout=2)
    cams = args.cameras.split(",")
    holders = camera_holders(client, cams)
    out = {}
    for cam in cams:
        health = read_camera_health(client, cam)
        record = health[0] if health else {}
        hosts: dict[str, int] = {}
        for seg in segments_between(client, cam, 0, time.time() + 3600, max_segment_s=0):
            hosts[seg.host or ""] = hosts.get(seg.host or "", 0) + 1
        out[cam] = {"holder": holders[cam], "status": record.get("status"), "worker": record.get("worker"),
                    "host": record.get("host"), "stale": record.get("stale"), "segments": hosts,
                    "indexed": client.zcard(index_key(cam))}
    print(json.dumps(out))
    return 0


def api_probe(args: argparse.Namespace) -> int:
    """Poll ``GET /api/cameras`` with one session until SIGTERM; count status codes before/after the mark."""
    import os

    import httpx

    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    codes: dict[str, dict[str, int]] = {"before": {}, "after": {}}
    ok_after = 0
    with httpx.Client(base_url=args.base, timeout=10) as http:
        login = http.post("/api/auth/login", json={"username": args.user, "password": os.environ[args.password_env]})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        while not stop:
            phase = "after" if Path(args.mark_file).exists() else "before"
            try:
                code = str(http.get("/api/cameras", headers=headers).status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            codes[phase][code] = codes[phase].get(code, 0) + 1
            ok_after += phase == "after" and code == "200"
            tmp = Path(args.out).with_suffix(".tmp")
            tmp.write_text(json.dumps({"codes": codes, "ok_after": ok_after}))
            tmp.replace(args.out)
            time.sleep(0.2)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="tests.cluster.agent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("--prefix", required=True)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--spool", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--drain-s", type=float, default=60.0)
    p = sub.add_parser("count")
    p.add_argument("--prefix", required=True)
    p = sub.add_parser("index")
    p.add_argument("--camera", required=True)
    p.add_argument("--segments", required=True)
    sub.add_parser("serve-segments")
    p = sub.add_parser("api-probe")
    p.add_argument("--base", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-env", required=True)
    p.add_argument("--mark-file", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("cluster-state")
    p.add_argument("--cameras", required=True)
    p = sub.add_parser("api-export")
    p.add_argument("--base", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-env", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", type=float, required=True)
    p.add_argument("--end", type=float, required=True)
    p.add_argument("--wait-s", type=float, default=120)
    args = parser.parse_args(argv)
    commands = {"publish": publish, "count": count, "index": index, "serve-segments": serve_segments,
                "api-export": api_export, "cluster-state": cluster_state,
                "api-probe": api_probe}
    return commands[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
