"""An exported clip keeps wall time across a gap in the recording: a picture's time in the player is when it was
recorded minus the clip's start (its ``creation_time``), so the minute the camera was offline is in the clip (the
last picture before it held) instead of the footage after it being pulled forward; the manifest still lists the gap.

Real Redis, real recordings (a test camera's H.264 cut into Matroska segments by ffmpeg, as the recorder does), real
exports by ffmpeg, checked with ffprobe."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from pipeline.recording.export import export_clip
from pipeline.recording.index import Segment
from tests.playback_support import camera_stream, difference, frame_at, record

pytestmark = pytest.mark.timeout(300)

CAM = "gap-cam"
VIDEO = "short_hamilton_clip.mp4"
OFFLINE_S = 60.0


@pytest.fixture()
def recording(client: redis.Redis, shared_dir: Path, tmp_path: Path) -> tuple[Path, list[Segment], list[Segment]]:
    """About 10 s recorded, the camera offline for a minute, about 10 s more (2 s segments): the folder and the
    segments before and after the gap."""
    rec_dir = tmp_path / "recordings"
    video = shared_dir / "data" / "videos" / VIDEO
    t0 = time.time() - 3600
    before = record(client, rec_dir, CAM, video, t0, segment_s=2, tag="a")
    after = record(client, rec_dir, CAM, video, before[-1].end + OFFLINE_S, segment_s=2, tag="b")
    return rec_dir, before, after


def _packets(mp4: Path) -> list[tuple[float, bool]]:
    """(pts in seconds, keyframe) of every video packet, in file order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                          "-of", "csv=p=0", str(mp4)], capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [line.split(",") for line in out.splitlines() if line.strip()]
    return [(float(pts), "K" in flags) for pts, flags in rows]


def _first_frame_time(mp4: Path) -> float:
    """The time of the first picture ffmpeg shows (the edit list hides the pictures before the window, decoded from
    the keyframe the file starts with)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#50",
                          "-show_entries", "frame=best_effort_timestamp_time", "-of", "json", str(mp4)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return float(json.loads(out)["frames"][0]["best_effort_timestamp_time"])


@pytest.mark.parametrize("accurate", [False, True], ids=["stream-copy", "re-encoded"])
def test_the_clip_keeps_wall_time_across_a_gap(client: redis.Redis, recording, shared_dir: Path,
                                               accurate: bool) -> None:
    rec_dir, before, after = recording
    start, end = before[1].start + 0.5, after[2].end
    result = export_clip(client, CAM, start, end, "x", recordings_dir=rec_dir, accurate=accurate)
    manifest = json.loads(result.manifest_path.read_text())
    clip_start = manifest["covered"]["start_epoch"]
    assert abs(clip_start - start) < 0.01 and manifest["complete"] is False
    assert manifest["creation_time"] == manifest["covered"]["start"]
    [gap] = manifest["gaps"]
    assert abs(datetime.fromisoformat(gap["start"].replace("Z", "+00:00")).timestamp() - before[-1].end) < 0.01
    assert abs(datetime.fromisoformat(gap["end"].replace("Z", "+00:00")).timestamp() - after[0].start) < 0.01

    packets = _packets(result.mp4_path)
    assert packets[0][1] and packets[0][0] <= 0.05  # the file starts with a keyframe at or before clip time 0
    assert abs(_first_frame_time(result.mp4_path)) <= 0.05  # and plays from its start
    assert abs(result.duration - (after[2].end - clip_start)) < 0.3, result.duration
    assert abs(manifest["duration_s"] - (manifest["covered"]["end_epoch"] - clip_start)) < 0.3
    # the picture recorded 1 s after the camera came back is at that wall time in the clip
    source = camera_stream(shared_dir / "data" / "videos" / VIDEO)
    after_gap = frame_at(result.mp4_path, after[0].start - clip_start + 1.0)
    assert difference(after_gap, frame_at(source, 1.0)) < 3.0
    # and a picture in the gap is the last one recorded before it, held
    gap_middle = (before[-1].end + after[0].start) / 2 - clip_start
    held = frame_at(result.mp4_path, gap_middle)
    assert difference(held, frame_at(result.mp4_path, before[-1].end - clip_start - 0.05)) < 3.0, gap_middle
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(result.mp4_path), "-f", "null", "-"],
                   check=True, timeout=120)  # decodes from the start, through the gap, to the end
    if accurate:
        return
    shown = [(pts, key) for pts, key in packets if pts >= -0.001]  # the edit list hides pts < 0
    jumps = [(a, b) for a, b in zip(shown, shown[1:], strict=False) if b[0] - a[0] > 1.0]
    assert len(jumps) == 1, jumps  # the stream copy holds one hole in its timestamps, where the camera was offline
    (last_before, _), (first_after, key_after) = jumps[0]
    assert abs(first_after - (after[0].start - clip_start)) < 0.1, (first_after, after[0].start - clip_start)
    assert abs(last_before - (before[-1].end - clip_start)) < 0.2, (last_before, before[-1].end - clip_start)
    assert key_after  # the footage after the gap starts with the camera's keyframe


def test_segments_are_placed_at_their_real_start() -> None:
    from pipeline.recording.export import place_segments, wall_time_cut

    segs = [Segment("a", 100.0, 110.0, 1), Segment("b", 109.98, 120.0, 1), Segment("c", 180.0, 190.0, 1)]
    places = place_segments(segs)
    assert places == [0.0, 10.0, 80.0]  # b laid after a (overlapping by 20 ms); c a minute after b ends
    assert wall_time_cut(segs, places, 105.0, 185.0) == (5.0, 80.0)
    assert wall_time_cut(segs, places, 95.0, 300.0) == (0.0, 90.0)  # uncovered head and tail are not in the clip
    assert wall_time_cut(segs, places, 150.0, 185.0) == (80.0, 5.0)  # starts in the gap: at the first picture after
