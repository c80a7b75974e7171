"""pipeline.recording.playback: ranges and gaps, keyframe lookup, the concat script, plans on real segments."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from pipeline.recording.index import Segment, add_segment
from pipeline.recording.playback import (
    PlaybackError,
    Range,
    concat_script,
    ffmpeg_args,
    gaps_between,
    keyframe_at_or_before,
    plan_playback,
    probe_segment,
    recorded_ranges,
)
from tests.playback_support import record

pytestmark = pytest.mark.timeout(300)
DASHCAM = "thai_bangkok_night_dashcam_bus.mp4"


def seg(start: float, end: float, name: str = "x") -> Segment:
    return Segment(path=f"cam/{name}.mkv", start=start, end=end, size=1)


def test_ranges_merge_touching_segments_and_split_at_gaps():
    segments = [seg(0, 6), seg(6.0, 12), seg(13.4, 20), seg(21.6, 30), seg(100, 106)]
    ranges = recorded_ranges(segments)
    assert ranges == [Range(0, 20), Range(21.6, 30), Range(100, 106)]  # 1.4 s holes merge, 1.6 s and more split
    assert gaps_between(ranges) == [Range(20, 21.6), Range(30, 100)]
    assert recorded_ranges([]) == [] and gaps_between([]) == []


def test_keyframe_at_or_before():
    keys = (0.0, 1.0, 2.0, 3.0)
    assert keyframe_at_or_before(keys, 2.52) == 2.0
    assert keyframe_at_or_before(keys, 2.0) == 2.0
    assert keyframe_at_or_before(keys, 1.9999999) == 2.0  # within a microsecond: the same instant
    assert keyframe_at_or_before(keys, 99) == 3.0
    assert keyframe_at_or_before((), 5) == 0.0


@pytest.fixture()
def recorded(redis_url: str, tmp_path: Path, shared_dir: Path):
    client = redis.Redis.from_url(redis_url)
    base = time.time() - 600
    first = record(client, tmp_path, "cam", shared_dir / "data" / "videos" / DASHCAM, base, tag="a")
    second = record(client, tmp_path, "cam", shared_dir / "data" / "videos" / DASHCAM, first[-1].end + 30, tag="b")
    yield client, tmp_path, first, second
    client.close()


def test_plan_enters_at_the_keyframe_and_stops_at_the_gap(recorded):
    client, root, first, second = recorded
    info = probe_segment(root / first[0].path)
    assert info.keyframes[:3] == (0.0, 1.0, 2.0) and info.frame_rate == 25.0 and info.codec == "h264"
    plan = plan_playback(client, root, "cam", first[1].start + 3.3, 600)
    assert plan.inpoint == 3.0 and plan.start == pytest.approx(first[1].start + 3.0)
    assert [p.name for p in plan.files] == [Path(s.path).name for s in first[1:]]
    assert plan.end == first[-1].end and plan.next_start == second[0].start
    # max_s cuts at whole segments; in a gap the next recording starts the plan; beyond it nothing
    short = plan_playback(client, root, "cam", first[0].start, 2)
    assert len(short.files) == 1
    assert plan_playback(client, root, "cam", first[-1].end + 10, 60).start == second[0].start
    with pytest.raises(PlaybackError, match="next recording starts at"):
        plan_playback(client, root, "cam", first[-1].end + 10, 5)


def test_the_remux_is_fragmented_mp4_of_the_planned_frames(recorded, tmp_path):
    client, root, first, _ = recorded
    plan = plan_playback(client, root, "cam", first[0].start + 4.5, 600)
    out = subprocess.run(ffmpeg_args(), input=concat_script(plan).encode(), capture_output=True, timeout=120,
                         check=True).stdout
    clip = tmp_path / "out.mp4"
    clip.write_bytes(out)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                            "stream=nb_read_packets", "-of", "csv=p=0", str(clip)], capture_output=True, text=True,
                           check=True, timeout=60)
    assert out[4:8] == b"ftyp" and b"moof" in out
    assert int(probe.stdout.strip()) == round((first[-1].end - plan.start) * 25)


def test_a_tampered_index_entry_is_never_opened(redis_url: str, tmp_path: Path):
    client = redis.Redis.from_url(redis_url)
    (tmp_path / "secret.mkv").write_bytes(b"not yours")
    add_segment(client, "cam", Segment(path="../secret.mkv", start=1000.0, end=1006.0, size=9))
    add_segment(client, "cam", Segment(path="other/secret.mkv", start=1006.0, end=1012.0, size=9))
    with pytest.raises(PlaybackError):
        plan_playback(client, tmp_path / "rec", "cam", 1001.0, 60)
    client.close()


def test_concat_script_quotes_paths_and_counts_the_first_duration_from_the_in_point(tmp_path):
    from pipeline.recording.playback import PlaybackPlan, SegmentInfo

    odd = tmp_path / "it's.mkv"
    plan = PlaybackPlan(camera_id="cam", files=(odd, tmp_path / "b.mkv"), durations=(6.0, 6.0), inpoint=2.0,
                        start=2.0, end=12.0, next_start=None, info=SegmentInfo((), None, None, None, None))
    script = concat_script(plan)
    assert f"file 'file:{tmp_path}/it'\\''s.mkv'\ninpoint 2.000\nduration 4.000\n" in script
    assert script.endswith(f"file 'file:{tmp_path}/b.mkv'\nduration 6.000\n")
