"""Which removed cameras a search may name: only well-formed ids whose plate reads or recordings are still stored,
never the recording index's own bookkeeping keys (``cctv:rec:bytes``) or a crafted id."""

from __future__ import annotations

import redis

from api.validation import has_stored_data, unknown_cameras
from pipeline.recording.index import BYTES_KEY, HOST_BYTES_KEY, index_key


def test_only_a_removed_camera_with_stored_data_counts(rclient: redis.Redis) -> None:
    rclient.hincrby(BYTES_KEY, "old-cam", 1000)  # the index's bookkeeping hashes exist as soon as anything records
    rclient.hincrby(HOST_BYTES_KEY, "host-a", 1000)
    rclient.zadd(index_key("old-cam"), {"old-cam/seg-1.mkv": 1.0})
    assert has_stored_data(rclient, "old-cam")
    for crafted in ("bytes", "host-bytes", "../old-cam", "old-cam\x00", "never-was"):
        assert not has_stored_data(rclient, crafted), crafted
    assert unknown_cameras(["old-cam", "bytes", "never-was"], {"cam-1"}, None, rclient) == ["bytes", "never-was"]
