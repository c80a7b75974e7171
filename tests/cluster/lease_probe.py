"""A worker's lease keeping without its cameras, run inside a namespace host (``python -m tests.cluster.lease_probe``).

It builds a real :class:`~pipeline.cluster.node.WorkerNode` the way ``pipeline run --role worker`` does (the same
Sentinel-aware client, the same agent and lease client), starts its :class:`~pipeline.cluster.agent.LeaseKeeper`
and steps the agent as the supervisor loop does, but starts no capture: the test watches only the leases. It
pushes a record-only configuration of ``--cameras`` first (``--push``), and until SIGTERM writes ``--out`` (JSON):
the cameras held, every camera lost (epoch s), and every renewal attempt (epoch s, seconds it took, outcome).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cluster import cluster_redis_client
from pipeline.cluster.agent import LeaseKeeper
from pipeline.cluster.configstore import load_cluster_config, push_config
from pipeline.cluster.node import WorkerNode
from pipeline.settings import get_settings

logger = logging.getLogger("tests.cluster.lease_probe")


def config_text(cameras: list[str], ttl_s: float, renew_s: float) -> str:
    """A record-only configuration of ``cameras`` with the given lease timing."""
    return (f"cluster: {{lease_ttl_s: {ttl_s}, renew_interval_s: {renew_s}, rebalance_interval_s: 60, "
            "orphan_grace_s: 1, config_poll_s: 1}\ncameras:\n"
            + "".join(f"  - {{id: {c}, name: {c}, url: 'rtsp://127.0.0.1:8554/none', "
                      "analytics: {plates: false, faces: false}}\n" for c in cameras))


def instrument(store: Any, attempts: list[list[Any]]) -> None:
    """Record every renewal attempt of ``store`` in ``attempts`` as [started (epoch s), took (s), outcome]."""
    real = store.renew

    def renew(*args: Any, **kwargs: Any) -> bool:
        started = time.time()
        try:
            ok = real(*args, **kwargs)
        except Exception as exc:
            attempts.append([started, time.time() - started, type(exc).__name__ + ": " + str(exc)[:80]])
            raise
        attempts.append([started, time.time() - started, "ok" if ok else "refused"])
        return ok

    store.renew = renew


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="tests.cluster.lease_probe")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--cameras", required=True)
    parser.add_argument("--ttl-s", type=float, default=8.0)
    parser.add_argument("--renew-s", type=float, default=1.5)
    parser.add_argument("--push", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    settings = get_settings()
    cameras = args.cameras.split(",")
    client = cluster_redis_client(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)  # as run_worker_role
    if args.push:
        push_config(client, config_text(cameras, args.ttl_s, args.renew_s))
    stored = load_cluster_config(client)
    assert stored is not None
    node = WorkerNode(client, settings.redis_url, stored, args.worker_id, len(cameras), str(settings.recordings_dir))
    agent = node.agent
    attempts: list[list[Any]] = []
    lost: list[list[Any]] = []
    instrument(agent.leases, attempts)
    keeper = LeaseKeeper(agent, lambda cam: lost.append([time.time(), cam])).start()
    next_step = 0.0
    try:
        while not stop:
            if time.monotonic() >= next_step:
                next_step = time.monotonic() + stored.config.cluster.renew_interval_s
                agent.step(renew=False)  # its lost cameras went to the keeper's on_lost already
            with agent.lock:
                held = sorted(agent.held)
            tmp = Path(args.out).with_suffix(".tmp")
            tmp.write_text(json.dumps({"held": held, "lost": lost, "attempts": attempts, "at": time.time()}))
            tmp.replace(args.out)
            time.sleep(0.2)
    finally:
        keeper.stop()
        node.bus.close()
        node.bus.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
