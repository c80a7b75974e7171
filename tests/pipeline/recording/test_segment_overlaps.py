"""Readers never interleave two hosts' recordings of the same time (index entries written before segment index
writes were fenced, or any that slipped through): the segment of the lower lease token, or one wholly covered by
another host's, is left out of exports (and listed in the manifest) and of playback, so a clip's media duration
matches its window. Unit cases on index entries built for them, then real short recordings."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from pipeline.recording.export import export_clip
from pipeline.recording.index import Segment, index_key, resolve_overlaps
from pipeline.recording.playback import plan_playback
from tests.playback_support import record

VIDEO = "short_hamilton_clip.mp4"


def seg(name: str, start: float, end: float, host: str | None, token: int | None = None) -> Segment:
    return Segment(f"c/{name}.mkv", start, end, 100, host=host, token=token)


def test_the_lower_token_gives_way_to_another_hosts_overlapping_segment() -> None:
    a1, a2, a3 = seg("a1", 0, 2, "h-a", 1), seg("a2", 2, 4, "h-a", 1), seg("a3", 4, 6, "h-a", 1)
    b1, b2 = seg("b1", 3, 5, "h-b", 2), seg("b2", 5, 7, "h-b", 2)
    kept, dropped = resolve_overlaps([a1, a2, a3, b1, b2])
    assert kept == [a1, b1, b2]
    assert dropped == [(a2, b1), (a3, b1)]
    # whichever order the index gives them in
    assert resolve_overlaps([b2, a3, b1, a1, a2])[0] == [b2, b1, a1]


def test_untokened_entries_drop_only_a_segment_wholly_covered_by_another_hosts() -> None:
    a1, a2 = seg("a1", 0, 2, "h-a"), seg("a2", 2, 4, "h-a")
    b1 = seg("b1", 1.8, 10, None)  # an entry written before hosts were indexed: a host of its own
    kept, dropped = resolve_overlaps([a1, a2, b1])
    assert kept == [a1, b1] and dropped == [(a2, b1)]  # a1 overlaps b1 by 0.2 s only (within the tolerance)
    partial = [seg("p1", 0, 4, "h-a"), seg("p2", 3, 7, "h-b")]
    assert resolve_overlaps(partial) == (partial, [])  # neither covers the other, no tokens: both kept
    same = [seg("s1", 0, 2, "h-a"), seg("s2", 0.05, 2.02, "h-b")]  # the same time twice: one is played
    kept, dropped = resolve_overlaps(same)
    assert len(kept) == 1 and len(dropped) == 1
    assert resolve_overlaps(list(reversed(same)))[0] == kept  # deterministic


def test_a_tokened_segment_covering_an_untokened_one_wins_and_one_host_is_never_compared() -> None:
    old = seg("old", 10, 12, "h-a")
    new = seg("new", 9, 13, "h-b", 5)
    assert resolve_overlaps([old, new]) == ([new], [(old, new)])
    own = [seg("o1", 0, 2.3, "h-a", 1), seg("o2", 2, 4, "h-a", 1)]  # one host's segments touching: never dropped
    assert resolve_overlaps(own) == (own, [])
    assert resolve_overlaps([]) == ([], [])


def _as_host(client: redis.Redis, camera_id: str, segments: list[Segment], host: str | None,
             token: int | None) -> list[Segment]:
    """Index ``segments`` again as recorded by ``host`` under ``token`` (entries as an older or unfenced writer
    left them: plain ZADD, no fence)."""
    out = []
    for old in segments:
        new = replace(old, host=host, token=token)
        client.zrem(index_key(camera_id), old.member())
        client.zadd(index_key(camera_id), {new.member(): new.start})
        out.append(new)
    return out


@pytest.fixture()
def two_hosts(client: redis.Redis, shared_dir: Path, tmp_path: Path, request: pytest.FixtureRequest):
    """The same camera recorded by host a from t0 (token 1) and, overlapping it, by host b from t0 + 4.3 s (token 2):
    about 10 s each, 2 s segments, real files."""
    tokens = request.param
    cam = f"ov-{'tok' if tokens else 'old'}"
    rec_dir = tmp_path / "recordings"
    video = shared_dir / "data" / "videos" / VIDEO
    t0 = time.time() - 3600
    a = _as_host(client, cam, record(client, rec_dir, cam, video, t0, segment_s=2, tag="a"), "h-a",
                 1 if tokens else None)  # fmt: skip
    # 4.3 s, not 4: a segment file is named by its start, and both hosts write into one folder here
    b = _as_host(client, cam, record(client, rec_dir, cam, video, t0 + 4.3, segment_s=2, tag="b"), "h-b",
                 2 if tokens else None)  # fmt: skip
    return cam, rec_dir, a, b


@pytest.mark.timeout(300)
@pytest.mark.parametrize("two_hosts", [True, False], ids=["tokens", "no-tokens"], indirect=True)
def test_an_export_over_two_hosts_overlapping_recordings_matches_its_window(
    client: redis.Redis, two_hosts: tuple[str, Path, list[Segment], list[Segment]]
) -> None:
    cam, rec_dir, a, b = two_hosts
    start, end = a[0].start + 1.0, b[-1].end - 1.0
    result = export_clip(client, cam, start, end, "x", recordings_dir=rec_dir)
    manifest = json.loads(result.manifest_path.read_text())
    assert abs(result.duration - (end - start)) < 0.6, (result.duration, end - start, manifest["segments"])
    dropped = manifest["dropped_segments"]
    assert dropped, manifest
    used = [s for s in a + b if s.path in manifest["segments"]]
    assert len(used) == len(manifest["segments"])
    for x, y in zip(used, used[1:], strict=False):  # one recording of each moment, in time order
        assert y.start >= x.end - 0.5, (x, y)
    assert {d["path"] for d in dropped}.isdisjoint(manifest["segments"])
    if a[0].token is not None:  # host a's segments after host b took over all gave way (lower token)
        assert {d["path"] for d in dropped} == {s.path for s in a if s.end > b[0].start + 0.5}
        assert all("lower lease token" in d["reason"] and d["host"] == "h-a" for d in dropped)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("two_hosts", [True], ids=["tokens"], indirect=True)
def test_playback_over_two_hosts_overlapping_recordings_plays_each_moment_once(
    client: redis.Redis, two_hosts: tuple[str, Path, list[Segment], list[Segment]]
) -> None:
    cam, rec_dir, a, b = two_hosts
    plan = plan_playback(client, rec_dir, cam, a[0].start + 0.5, max_s=60)
    by_file = {str((rec_dir / s.path).resolve()): s for s in a + b}
    played = [by_file[str(Path(f).resolve())] for f in plan.files]
    assert [s.host for s in played if s.end > b[0].start + 0.5] == ["h-b"] * len(b)
    for x, y in zip(played, played[1:], strict=False):
        assert y.start >= x.end - 0.5, (x, y)
    assert abs(sum(plan.durations) - (plan.end - played[0].start)) < 0.6
