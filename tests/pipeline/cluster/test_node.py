"""The worker host's supervisor, stepped in the test process against a real Redis, with real capture processes
(cameras that do not answer: they keep reconnecting, which costs nothing). The engine child is not started here
(its model loading is covered by test_workers.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from pipeline.cluster.configstore import load_cluster_config, push_config
from pipeline.cluster.leases import LeaseStore, lease_key
from pipeline.cluster.node import WorkerNode
from tests.conftest import free_port, wait_for

CLUSTER = "cluster: {lease_ttl_s: 3, renew_interval_s: 1, rebalance_interval_s: 2, orphan_grace_s: 0.5}\n"


def _yaml(port: int, *ids: str) -> str:
    cams = "".join(f"  - {{id: {i}, name: {i}, url: 'rtsp://127.0.0.1:{port}/{i}', analytics: {{plates: true}}}}\n"
                   for i in ids)
    return CLUSTER + "cameras:\n" + cams


@pytest.mark.timeout(180)
def test_a_lost_camera_frees_its_lane_before_the_next_camera_takes_it(
    client: redis.Redis, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.cluster.node")
    port = free_port()  # nothing listens there
    push_config(client, _yaml(port, "n-1", "n-2"))
    stored = load_cluster_config(client)
    node = WorkerNode(redis.Redis.from_url(redis_url, socket_timeout=2), redis_url, stored, "w-n", 1,
                      str(tmp_path / "rec"))  # fmt: skip
    node._ensure_engine = lambda: None  # no models in this test
    try:
        wait_for(lambda: node.tick() or len(node.cameras) == 1, 60, "one camera started (one slot)", poll_s=0.1)
        (first,) = node.cameras
        other = "n-2" if first == "n-1" else "n-1"
        assert node.bus.has_camera(first)
        client.delete(lease_key(first))  # stolen behind the node's back
        assert LeaseStore(client).acquire(first, "thief", 60_000) is not None
        wait_for(lambda: node.tick() or other in node.cameras, 60, "the free camera started once the lane is free",
                 poll_s=0.1)  # fmt: skip
        assert not node.bus.has_camera(first) and node.bus.has_camera(other)
        assert first not in node.agent.held and node.pending == {}
        assert [what for cam, what, _ in node.handovers if cam == first] == ["started", "lost"]
    finally:
        node.shutdown()
    # the free camera was taken in the same step as the loss, while the lost one's capture was still exiting
    assert f"camera {other} waits for a free frame bus lane" in caplog.text
    holders = LeaseStore(client).holders([first, other])
    assert holders[first] is not None and holders[first].worker_id == "thief" and holders[other] is None


def test_worker_engine_without_the_gpu_asked_for_idles_once_instead_of_restarting(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`engine.device: cuda` in the configuration (written on another host) on a worker with no GPU runtime: one
    error, then the engine child waits for the stop (capture and recording go on) instead of failing each start."""
    import threading

    import pipeline.engine.process as process
    from pipeline.cluster import node
    from pipeline.config import Config
    from pipeline.ingest.framebus import StopFlag
    from pipeline.models import onnx_utils

    config = Config.model_validate({"cameras": [{"id": "cam-1", "name": "Cam 1", "url": "rtsp://127.0.0.1:1/x"}],
                                    "engine": {"device": "cuda"}})
    monkeypatch.setattr(onnx_utils, "gpu_unavailable", lambda device, runtime: f"no GPU for {device}/{runtime}")
    monkeypatch.setattr(process, "build_engine", lambda *a, **k: pytest.fail("the engine must not be built"))
    stop = StopFlag()
    threading.Timer(0.3, stop.set).start()
    with caplog.at_level(logging.ERROR, logger="pipeline.cluster.node"):
        node.run_cluster_engine(config, bus=None, stop_event=stop, redis_url="redis://127.0.0.1:1/0", poll_s=1.0)
    assert stop.is_set()
    assert [r.getMessage() for r in caplog.records] == [
        "analytics off on this worker (cameras are still recorded): no GPU for cuda/auto"]
    monkeypatch.setattr(onnx_utils, "gpu_unavailable", lambda device, runtime: None)
    assert node.idle_without_device(config, stop) is False
