"""SegmentFinalizer: concurrent flushes (capture thread + health thread) index each segment exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from pipeline.recording.index import Segment, add_segment, index_key, indexed_bytes
from pipeline.recording.recorder import SegmentFinalizer, final_path, incoming_dir


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


def test_segments_moved_into_place_but_not_indexed_are_indexed_by_the_next_life(redis_url: str, tmp_path: Path) -> None:
    """A worker killed while Redis was down kept its finished segments' index entries only in memory: the files
    were in place but no search, playback or export could find them. The journal beside them brings them back,
    once each, at the next start."""
    from tests.conftest import free_port

    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    first = SegmentFinalizer(down, tmp_path, "cam", host="h1")
    incoming = incoming_dir(tmp_path, "cam")
    incoming.mkdir(parents=True)
    for k in range(3):
        (incoming / f"seg{k}.mkv").write_bytes(b"x" * (100 + k))
        first.on_list_line(f"seg{k}.mkv,{2.0 * k},{2.0 * k + 2}", arrival=1_800_000_002.0 + 2 * k)
    assert len({s.path for s in first.pending}) == 3 and all((tmp_path / s.path).is_file() for s in first.pending)
    del first  # killed: the pending list is gone with the process

    client = redis.Redis.from_url(redis_url)
    done = SegmentFinalizer(client, tmp_path, "cam", host="h1")
    journal = done.journal_path.read_text().splitlines()
    add_segment(client, "cam", Segment.from_member(journal[0]))  # indexed just before the kill: not twice
    (tmp_path / Segment.from_member(journal[2]).path).unlink()  # a file gone since: nothing to index
    assert done.recover_unindexed() == 2
    indexed = [Segment.from_member(m) for m in client.zrange(index_key("cam"), 0, -1)]
    assert sorted(s.path for s in indexed) == sorted(Segment.from_member(line).path for line in journal[:2])
    assert indexed_bytes(client)["cam"] == 100 + 101  # each counted once
    assert done.pending == [] and done.journal_path.stat().st_size == 0  # all indexed: the journal is emptied
    assert SegmentFinalizer(client, tmp_path, "cam", host="h1").recover_unindexed() == 0
