"""Segment index entries of a capture on a camera lease are fenced by its token (as events are): a segment that
ended after another worker took the camera is refused, and its finalizer deletes the file instead of retrying."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from pipeline.cluster.leases import LeaseStore, fence_key, lease_key
from pipeline.ingest.framebus import LeaseFlag
from pipeline.recording.index import Segment, SegmentFencedError, add_segment, index_key
from pipeline.recording.recorder import SegmentFinalizer, incoming_dir


def test_a_segment_that_ended_after_the_hand_over_is_refused(client: redis.Redis) -> None:
    leases = LeaseStore(client)
    assert leases.acquire("f-1", "w-a", 60_000) == 1
    before = Segment("f-1/a.mkv", time.time() - 4, time.time() - 2, 10, host="h-a", token=1)
    client.delete(lease_key("f-1"))  # w-a's lease ran out; w-b takes the camera
    assert leases.acquire("f-1", "w-b", 60_000) == 2
    add_segment(client, "f-1", before)  # recorded before the hand-over: kept, even if indexed late
    after = Segment("f-1/b.mkv", time.time() - 1, time.time() + 1, 10, host="h-a", token=1)
    with pytest.raises(SegmentFencedError):
        add_segment(client, "f-1", after)
    add_segment(client, "f-1", Segment("f-1/c.mkv", time.time() - 1, time.time() + 1, 10, host="h-b", token=2))
    members = [Segment.from_member(m) for m in client.zrange(index_key("f-1"), 0, -1)]
    assert [(s.path, s.token) for s in members] == [("f-1/a.mkv", 1), ("f-1/c.mkv", 2)]
    assert int(client.hget("cctv:rec:host-bytes", "h-a")) == 10


def test_the_finalizer_drops_a_refused_segment_instead_of_retrying(client: redis.Redis, tmp_path: Path) -> None:
    leases = LeaseStore(client)
    assert leases.acquire("f-2", "w-a", 60_000) == 1
    flag = LeaseFlag()
    flag.renew(1, time.monotonic() + 60)
    finalizer = SegmentFinalizer(client, tmp_path, "f-2", host="h-a", lease=flag)
    client.delete(lease_key("f-2"))
    assert leases.acquire("f-2", "w-b", 60_000) == 2
    folder = incoming_dir(tmp_path, "f-2")
    folder.mkdir(parents=True)
    (folder / "f-2_x.mkv").write_bytes(b"x" * 100)
    handed_out = float(client.hget(fence_key("f-2"), "2"))  # Redis time (µs) of the hand-over
    # its list line arrives (its end) a second after the hand-over: explicit, not "now", which is a fraction of a
    # millisecond after it on a fast machine (see the next test)
    segment = finalizer.on_list_line("f-2_x.mkv,0.0,2.0", arrival=handed_out + 1.0)
    assert segment is not None and segment.token == 1
    assert finalizer.pending == [] and finalizer.fenced == 1
    assert not (tmp_path / segment.path).exists()
    assert client.zcard(index_key("f-2")) == 0


@pytest.mark.parametrize("after_us", [1, 200, 299])
def test_a_segment_ending_less_than_a_millisecond_after_the_hand_over_is_refused(
    client: redis.Redis, tmp_path: Path, after_us: int
) -> None:
    """Segment times are kept to the millisecond, the fence's to the microsecond: the end is rounded up, so that a
    segment ending just after the hand-over never passes for one that ended before it (rounded to the nearest
    millisecond, an end up to 0.5 ms late was accepted)."""
    cam = f"f-3-{after_us}"
    leases = LeaseStore(client)
    assert leases.acquire(cam, "w-a", 60_000) == 1
    flag = LeaseFlag()
    flag.renew(1, time.monotonic() + 60)
    finalizer = SegmentFinalizer(client, tmp_path, cam, host="h-a", lease=flag)
    client.delete(lease_key(cam))
    assert leases.acquire(cam, "w-b", 60_000) == 2
    handed_out = int(time.time()) + 0.1002  # a hand-over 0.2 ms into a millisecond (what Redis TIME gives)
    client.hset(fence_key(cam), "2", f"{handed_out:.6f}")
    folder = incoming_dir(tmp_path, cam)
    folder.mkdir(parents=True)
    (folder / "late.mkv").write_bytes(b"x" * 100)
    late = finalizer.on_list_line("late.mkv,0.0,2.0", arrival=handed_out + after_us / 1e6)
    assert late is not None and late.end >= handed_out
    assert finalizer.fenced == 1 and client.zcard(index_key(cam)) == 0
    (folder / "early.mkv").write_bytes(b"x" * 100)  # same session: its anchor is the late one's
    early = finalizer.on_list_line("early.mkv,0.0,1.9", arrival=handed_out + after_us / 1e6)
    assert early is not None and early.end < handed_out
    assert finalizer.fenced == 1 and client.zcard(index_key(cam)) == 1  # ended before the hand-over: kept
