"""Worker ids are claimed atomically: of two worker processes started at the same moment with one --worker-id,
exactly one runs and the other exits with a clear error; the live worker keeps its claim, a dead one's claim is
taken over. Real processes, real Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from pipeline.cluster.leases import LeaseStore, WorkerIdInUseError, check_worker_id_free
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(120)

STARTER = """
import os, sys, time
import redis
from pipeline.cluster.leases import LeaseStore, WorkerIdInUseError, check_worker_id_free
worker_id, host, at, hold, run = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
store = LeaseStore(client)
decided = f"test:twins:{run}:decided"  # this pair's own counter
while time.time() < at:  # both start at this instant (when both interpreters were up in time)
    pass
try:
    claim = check_worker_id_free(store, worker_id, host, os.getpid(), ttl_s=2.0, poll_s=0.05)
except WorkerIdInUseError as exc:
    print(f"refused: {exc}", flush=True)
    client.incr(decided)
    sys.exit(3)
if claim is not None:
    claim.start()  # refreshed as the worker runs
print("running", flush=True)
client.incr(decided)
# the worker runs on until its twin has decided (however late a loaded machine started it), at most `hold` s
deadline = time.monotonic() + hold
while int(client.get(decided) or 0) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def _start_twins(redis_url: str, worker_id: str, hosts: tuple[str, str]) -> list[subprocess.CompletedProcess]:
    at = time.time() + 3.0  # both interpreters are up by then (on a quiet machine)
    run = uuid.uuid4().hex
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, worker_id, host, repr(at), "45", run], cwd=REPO,
                              env={**os.environ, "TEST_REDIS_URL": redis_url}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for host in hosts]
    outs = [p.communicate(timeout=60) for p in procs]
    return [subprocess.CompletedProcess(p.args, p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)]


@pytest.mark.parametrize("hosts", [("host-a", "host-a"), ("host-a", "host-b")], ids=["same-host", "two-hosts"])
def test_two_workers_started_at_once_with_one_id_exactly_one_runs(redis_url: str, hosts: tuple[str, str]) -> None:
    results = _start_twins(redis_url, "w-twin", hosts)
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 3], [(r.returncode, r.stdout, r.stderr[-2000:]) for r in results]
    loser = next(r for r in results if r.returncode == 3)
    assert "worker id 'w-twin' is in use by a live worker on host-" in loser.stdout
    assert "own --worker-id" in loser.stdout


def test_a_claim_is_kept_while_running_released_at_stop_and_a_dead_ones_taken_over(client: redis.Redis) -> None:
    from pipeline.cluster.leases import claim_key

    store = LeaseStore(client)
    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    client.set(claim_key("w-crashed"), f"{host}|{gone.pid}|dead", px=60_000)  # a crashed previous life
    started = time.monotonic()
    claim = check_worker_id_free(store, "w-crashed", host, os.getpid(), ttl_s=60.0)
    assert time.monotonic() - started < 5 and client.get(claim_key("w-crashed")).decode() == claim.value
    claim.release()
    assert client.get(claim_key("w-crashed")) is None  # a clean stop: the next start goes on at once

    lost = threading.Event()
    claim = check_worker_id_free(store, "w-kept", host, os.getpid(), ttl_s=1.0).start(on_lost=lost.set)
    time.sleep(2.5)  # more than twice the TTL: refreshed meanwhile
    assert client.get(claim_key("w-kept")).decode() == claim.value and not lost.is_set()
    with pytest.raises(WorkerIdInUseError):
        check_worker_id_free(store, "w-kept", "host-z", 1, ttl_s=1.0, poll_s=0.05)
    client.set(claim_key("w-kept"), "host-z|1|twin", px=60_000)  # taken by another while Redis was away
    wait_for(lost.is_set, 10, "the claim's loss noticed")
    assert claim.lost.is_set()
    claim.release()  # not ours any more: left alone
    assert client.get(claim_key("w-kept")) == b"host-z|1|twin"
