"""SegmentFinalizer: concurrent flushes (capture thread + health thread) index each segment exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from pipeline.recording.index import Segment, index_key, indexed_bytes
from pipeline.recording.recorder import SegmentFinalizer, final_path


def test_concurrent_flush_indexes_each_segment_once(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    finalizer = SegmentFinalizer(client, tmp_path, "cam")
    finalizer.pending = [Segment(f"cam/x/{i}.mkv", 1000.0 + 2 * i, 1002.0 + 2 * i, 100) for i in range(300)]
    threads = [threading.Thread(target=finalizer.flush) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert finalizer.pending == []
    assert client.zcard(index_key("cam")) == 300
    assert indexed_bytes(client)["cam"] == 300 * 100  # no segment counted twice


def test_final_path_is_utc_date_and_hour() -> None:
    path = final_path(Path("/rec"), "cam", 1_700_000_000.25)  # 2023-11-14T22:13:20.250Z
    assert path == Path("/rec/cam/2023-11-14/22/cam_20231114T221320.250Z.mkv")
