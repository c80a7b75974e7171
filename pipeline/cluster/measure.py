"""Measuring a hand-over from outside the workers (for benchmarks and harnesses): who holds which camera, and how
long after a worker's loss each of its cameras is held, and online, elsewhere.

Typical use (``benchmarks.cluster``)::

    before = camera_holders(client, cameras)
    victims = [cam for cam, worker in before.items() if worker == "w-2"]
    os.kill(pid_of_w2, signal.SIGKILL)
    seconds = wait_handover(client, victims, lost_worker="w-2", online=True)   # {camera: seconds}
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.cluster.leases import LeaseStore
from pipeline.ingest.health import read_camera_health


def camera_holders(client: Any, cameras: list[str]) -> dict[str, str]:
    """Camera -> id of the worker holding its lease ('' when free)."""
    return {cam: (h.worker_id if h else "") for cam, h in LeaseStore(client).holders(cameras).items()}


def _online_elsewhere(client: Any, camera_id: str, lost_worker: str) -> bool:
    health = read_camera_health(client, camera_id)
    if not health:
        return False
    record = health[0]
    return record.get("status") == "online" and record.get("worker") not in (None, "", lost_worker) \
        and not record.get("stale")  # fmt: skip


def wait_handover(client: Any, cameras: list[str], lost_worker: str, online: bool = False, timeout_s: float = 120.0,
                  poll_s: float = 0.05, started: float | None = None) -> dict[str, float]:  # fmt: skip
    """Seconds (from ``started``, default now, on the monotonic clock, which every process of the machine shares;
    ``started=0`` gives the monotonic times themselves) until each camera's lease is held by a worker other than
    ``lost_worker`` (with ``online``: also until its health says ``online`` on that worker). Cameras not handed over
    within ``timeout_s`` from the call are missing from the result."""
    deadline = time.monotonic() + timeout_s
    start = time.monotonic() if started is None else started
    done: dict[str, float] = {}
    leased: dict[str, float] = {}
    while len(done) < len(cameras) and time.monotonic() < deadline:
        now_holders = camera_holders(client, [c for c in cameras if c not in done])
        for cam, worker in now_holders.items():
            if worker and worker != lost_worker:
                leased.setdefault(cam, time.monotonic() - start)
                if not online or _online_elsewhere(client, cam, lost_worker):
                    done[cam] = time.monotonic() - start if online else leased[cam]
        time.sleep(poll_s)
    return done
