"""Events across a worker hand-over, with the real models: two worker processes (`pipeline run --role worker`)
share one plate camera showing the looping dashcam clip of ``benchmarks.cluster`` (the pickup with its Thai plate
for 17.5 s, then 45 s of black). The camera's holder is SIGKILLed while the pickup it has just published is still in
view, and the other worker takes the camera over. Once the visit is over: every event stored before the kill is in
the stream exactly once, and the new holder has not published the visit's vehicle as a second event (if it saw the
pickup, its track updated the old holder's event: :class:`pipeline.cluster.fencing.HandoverMerger`).

Heavy (two engines with their models on one machine): one hand-over; the figures over many are
``python -m benchmarks.cluster`` (``--plate-cameras``).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from benchmarks.cluster import PLATE_CLIP, PLATE_PASS_S, _plate_events, _vehicle_in_view, handover_events, plate_clip
from pipeline.cluster.configstore import push_config
from pipeline.cluster.measure import camera_holders
from pipeline.store import keys
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for
from tests.pipeline.cluster.conftest import Workers


def config(url: str, spool: Path) -> str:
    return ("cluster: {lease_ttl_s: 5, renew_interval_s: 1, rebalance_interval_s: 2, orphan_grace_s: 1}\n"
            "ingest: {stall_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2, segment_seconds: 4}\n"
            f"engine: {{device: cpu, publish_after_s: 1, metrics_port: 0, spool_dir: '{spool}'}}\n"
            f"cameras:\n  - {{id: lp-1, name: LP, url: '{url}', analysis_fps: 2, "
            "analytics: {plates: true, faces: false}}\n")  # fmt: skip


@pytest.mark.timeout(900)
def test_a_vehicle_in_view_across_a_worker_hand_over_is_published_once(
    workers: Workers, redis_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / f"{PLATE_CLIP}.mp4").symlink_to(plate_clip(shared_dir / "data" / "videos"))
    client = redis.Redis.from_url(redis_url)
    with TestCameraServer(videos, 0, codec="h264", names=[PLATE_CLIP]) as cams:
        push_config(client, config(cams.url(PLATE_CLIP), tmp_path / "spool"))
        workers.start("w-a", 2)
        workers.start("w-b", 2)
        wait_for(lambda: camera_holders(client, ["lp-1"])["lp-1"], 120, "the camera leased")
        # the pickup published by the holder, its track begun at most 5 s ago: ~12 s more in view
        assert _vehicle_in_view(client, ["lp-1"], 300) == "lp-1", "no plate event of the pickup within 300 s"
        victim = camera_holders(client, ["lp-1"])["lp-1"]
        other = "w-b" if victim == "w-a" else "w-a"
        before = _plate_events(client)
        killed_at = time.time()
        workers.kill(victim)
        wait_for(lambda: camera_holders(client, ["lp-1"])["lp-1"] == other, 60, "the camera taken over")
        wait_for(lambda: time.time() > killed_at + PLATE_PASS_S + 15, 60, "the visit over, its tracks published")
        after = _plate_events(client)
        entries = Counter((fields.get(b"event_id") or b"").decode()
                          for _sid, fields in client.xrange(keys.PLATE_STREAM))  # fmt: skip
    counted = handover_events(before, after, ["lp-1"], killed_at)
    print(f"\nhand-over with the pickup in view: {len(before)} events stored before the kill; the old holder's of "
          f"the visit {counted['detail']['lp-1']['old']}; the new holder's {counted['detail']['lp-1']['new']}; "
          f"updated by the new holder: {[m['event_id'][-6:] for m in counted['merged']]}")
    assert before, "no event stored before the kill"
    assert all(entries[e.event_id] == 1 for e in before), "an event stored before the kill is missing or twice"
    assert max(entries.values()) == 1
    assert counted["duplicated"] == [], f"the vehicle in view was published twice: {counted['duplicated']}"
    client.close()
