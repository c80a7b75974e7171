"""Recording from a real RTSP camera, then evidence export and retention on those real segments."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.config import parse_config
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.recording.export import ExportError, export_clip
from pipeline.recording.index import Segment, add_segment, index_key, indexed_bytes
from pipeline.recording.retention import apply_retention
from pipeline.store import holds
from pipeline.testcams import TestCameraServer

CLIP = "short_hamilton_clip"
CAM = "rec-cam"
REPO = Path(__file__).resolve().parents[3]


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "format=duration:stream=codec_name,nb_read_frames",
         "-of", "json", str(path)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


@pytest.fixture(scope="module")
def recorded(shared_dir: Path, redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Segment]]:
    """About 9 s of a real camera recorded in 2 s segments (analysis off): the folder and the indexed segments."""
    rec_dir = tmp_path_factory.mktemp("recordings")
    client = redis.Redis.from_url(redis_server.url)
    client.delete(index_key(CAM))
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP]) as cams:
        config = parse_config(
            "ingest: {segment_seconds: 2, stall_timeout_s: 3}\ncameras:\n"
            f'  - {{id: {CAM}, name: R, url: "{cams.url(CLIP)}", analytics: {{plates: false, faces: false}}}}\n'
        )
        worker = CaptureWorkerProcess(config.cameras, config.ingest, None, redis_server.url, rec_dir).start()
        try:
            deadline = time.monotonic() + 40
            while client.zcard(index_key(CAM)) < 4 and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            assert worker.stop() == 0
    segments = sorted((Segment.from_member(m) for m in client.zrange(index_key(CAM), 0, -1)), key=lambda s: s.start)
    assert len(segments) >= 4, "recording produced too few segments"
    return rec_dir, segments


@pytest.fixture()
def archive(recorded: tuple[Path, list[Segment]], redis_url: str, tmp_path: Path) -> tuple[Path, list[Segment], Any]:
    """A private copy of the recording (files + index in the flushed Redis) that a test may modify."""
    source, segments = recorded
    rec_dir = tmp_path / "recordings"
    shutil.copytree(source, rec_dir)
    client = redis.Redis.from_url(redis_url)
    for segment in segments:
        add_segment(client, CAM, segment)
    return rec_dir, segments, client


def test_segments_are_playable_contiguous_and_filed_by_utc_date_and_hour(archive: Any) -> None:
    rec_dir, segments, _ = archive
    for seg in segments:
        parts = Path(seg.path).parts
        assert parts[0] == CAM and time.strftime("%Y-%m-%d", time.gmtime(seg.start)) == parts[1]
        assert parts[2] == time.strftime("%H", time.gmtime(seg.start))
        info = ffprobe(rec_dir / seg.path)
        assert info["streams"][0]["codec_name"] == "h264"
        frames = int(info["streams"][0]["nb_read_frames"])
        assert frames > 0 and abs(frames - 25 * seg.duration) <= 3  # the camera sends 25 fps
        assert abs(float(info["format"]["duration"]) - seg.duration) < 0.3
        assert (rec_dir / seg.path).stat().st_size == seg.size
    for before, after in zip(segments, segments[1:], strict=False):
        assert abs(after.start - before.end) < 0.3  # continuous recording, no gap, no overlap
    assert abs(segments[-1].end - time.time()) < 120  # real wall-clock times


def test_export_spanning_segments_has_right_duration_and_sha256(archive: Any) -> None:
    rec_dir, segments, client = archive
    start = segments[0].start + 0.5
    end = segments[2].start + 0.7  # crosses two segment boundaries
    fractions: list[float] = []
    result = export_clip(client, CAM, start, end, "Pol. Lt. Somchai", recordings_dir=rec_dir, progress=fractions.append)
    assert result.mp4_path.parent == rec_dir / "exports"
    info = ffprobe(result.mp4_path)
    assert abs(float(info["format"]["duration"]) - (end - start)) <= 1.0
    assert abs(result.duration - (end - start)) <= 1.0
    assert hashlib.sha256(result.mp4_path.read_bytes()).hexdigest() == result.sha256
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["sha256"] == result.sha256 and manifest["size_bytes"] == result.mp4_path.stat().st_size
    assert manifest["camera_id"] == CAM and manifest["requester"] == "Pol. Lt. Somchai"
    assert manifest["window"]["start_epoch"] == start and manifest["gaps"] == []
    assert fractions and fractions[-1] == 1.0


def test_export_without_recording_is_a_clear_error(archive: Any) -> None:
    rec_dir, segments, client = archive
    with pytest.raises(ExportError, match="no recording of camera 'rec-cam' covers"):
        export_clip(client, CAM, segments[0].start - 3600, segments[0].start - 3500, "x", recordings_dir=rec_dir)
    with pytest.raises(ExportError, match="empty window"):
        export_clip(client, CAM, segments[1].start, segments[0].start, "x", recordings_dir=rec_dir)


def test_export_clip_cli(archive: Any, redis_url: str, tmp_path: Path) -> None:
    rec_dir, segments, _ = archive
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(segments[0].start) + 1)) + "Z"
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(rec_dir)}
    out = tmp_path / "evidence"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "export-clip", CAM, start, str(segments[1].end), "--requester", "Desk 3",
         "--out", str(out)], capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (mp4,) = out.glob("*.mp4")
    assert hashlib.sha256(mp4.read_bytes()).hexdigest() in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline", "export-clip", CAM, "2001-01-01T00:00:00Z", "2001-01-01T00:01:00Z",
         "--requester", "Desk 3"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and "no recording" in bad.stderr


def test_retention_by_age_deletes_old_segments_never_exports(archive: Any) -> None:
    rec_dir, segments, client = archive
    evidence = export_clip(client, CAM, segments[0].start + 0.2, segments[1].end - 0.2, "x", recordings_dir=rec_dir)
    config = parse_config(f'cameras:\n  - {{id: {CAM}, name: R, url: "rtsp://h/x", recording: {{retention_days: 1}}}}\n')
    # one day after the second segment ended: the first two are past retention, the rest are not
    now = segments[1].end + 86400 + 0.01
    report = apply_retention(client, config, rec_dir, now=now)
    assert report.deleted_by_age == 2
    assert not (rec_dir / segments[0].path).exists() and not (rec_dir / segments[1].path).exists()
    assert (rec_dir / segments[2].path).exists()
    left = [Segment.from_member(m) for m in client.zrange(index_key(CAM), 0, -1)]
    assert sorted(s.path for s in left) == sorted(s.path for s in segments[2:])
    assert evidence.mp4_path.exists() and evidence.manifest_path.exists()
    apply_retention(client, config, rec_dir, now=now + 10 * 86400)  # everything expired
    assert client.zcard(index_key(CAM)) == 0 and evidence.mp4_path.exists()
    assert hashlib.sha256(evidence.mp4_path.read_bytes()).hexdigest() == evidence.sha256


def test_quota_deletes_oldest_first(archive: Any) -> None:
    rec_dir, segments, client = archive
    config = parse_config(f'cameras:\n  - {{id: {CAM}, name: R, url: "rtsp://h/x"}}\n')
    total = sum(s.size for s in segments)
    quota = total - segments[0].size - 1  # one byte too many after removing the oldest: two go
    report = apply_retention(client, config, rec_dir, quota_bytes=quota)
    assert report.deleted_by_quota == 2 and report.deleted_by_age == 0
    assert not (rec_dir / segments[0].path).exists() and not (rec_dir / segments[1].path).exists()
    assert (rec_dir / segments[2].path).exists()
    assert indexed_bytes(client)[CAM] == total - segments[0].size - segments[1].size


def test_accurate_export_reencodes_to_the_frame(archive: Any) -> None:
    rec_dir, segments, client = archive
    start, end = segments[1].start + 0.37, segments[2].start + 0.81
    result = export_clip(client, CAM, start, end, "x", recordings_dir=rec_dir, accurate=True)
    assert abs(float(ffprobe(result.mp4_path)["format"]["duration"]) - (end - start)) <= 0.1
    assert "re-encoded" in json.loads(result.manifest_path.read_text())["cut"]


def test_cut_plan_skips_gaps_and_reports_them() -> None:
    from pipeline.recording.export import plan_cut

    segs = [Segment("a", 100.0, 110.0, 1), Segment("b", 110.0, 120.0, 1), Segment("c", 130.0, 140.0, 1)]
    offset, duration, gaps = plan_cut(segs, 105.0, 135.0)
    assert offset == 5.0 and duration == 20.0 and gaps == [(120.0, 130.0)]  # 5 s of a, all of b, 5 s of c
    offset, duration, gaps = plan_cut(segs, 125.0, 138.0)  # starts inside the gap
    assert offset == 20.0 and duration == 8.0 and gaps == [(125.0, 130.0)]


@pytest.mark.parametrize("deleted", ["all by retention", "later ones"])
def test_segments_deleted_while_the_clip_is_cut_stay_in_it(archive: Any, monkeypatch: pytest.MonkeyPatch,
                                                           deleted: str) -> None:
    """Retention (or anything else) deleting the window's segments after the export found them and before ffmpeg
    read them: the clip still holds the whole window, as its manifest says."""
    import pipeline.recording.export as export_module

    rec_dir, segments, client = archive
    config = parse_config(f'cameras:\n  - {{id: {CAM}, name: R, url: "rtsp://h/x", recording: {{retention_days: 1}}}}\n')
    real_popen = subprocess.Popen
    done: list[bool] = []

    def retention_then_ffmpeg(*args: Any, **kwargs: Any) -> Any:
        if done or "-f" not in args[0] or "concat" not in args[0]:  # only before the cut's ffmpeg starts
            return real_popen(*args, **kwargs)
        done.append(True)
        if deleted == "all by retention":
            report = apply_retention(client, config, rec_dir, now=segments[-1].end + 86400 * 30)
            assert report.deleted_by_age == len(segments)
        else:
            for seg in segments[2:]:
                os.unlink(rec_dir / seg.path)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(export_module.subprocess, "Popen", retention_then_ffmpeg)
    start, end = segments[0].start + 0.5, segments[-1].end - 0.5
    # the window's segments (the recording's last one may be shorter than the 0.5 s cut from the end: then not)
    expected = [s.path for s in segments if s.end > start and s.start < end]
    assert len(expected) >= 3
    result = export_clip(client, CAM, start, end, "x", recordings_dir=rec_dir)
    assert done and not (rec_dir / expected[-1]).exists()  # really deleted during the export
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["segments"] == expected and manifest["gaps"] == []
    assert abs(float(ffprobe(result.mp4_path)["format"]["duration"]) - (end - start)) <= 1.0
    assert hashlib.sha256(result.mp4_path.read_bytes()).hexdigest() == manifest["sha256"]


def test_a_segment_deleted_before_the_export_opens_it_is_a_gap_in_clip_and_manifest(archive: Any) -> None:
    from pipeline.recording.export import hold_segments

    rec_dir, segments, _ = archive
    located = [(seg, rec_dir / seg.path) for seg in segments]
    os.unlink(rec_dir / segments[1].path)
    with contextlib.ExitStack() as stack:
        held = hold_segments(stack, CAM, located)
        assert [seg for seg, _, _ in held] == [segments[0], *segments[2:]]
        assert all(fd is not None for _, _, fd in held)


def test_a_damaged_hold_window_holds_more_not_less(archive: Any) -> None:
    """A legal-hold window that cannot be read (Redis edited by hand, a bad restore) no longer crashes every
    retention pass (the disk filled up): it holds all of its camera's recording, or all recording when it names no
    camera, and says so, until it is repaired."""
    rec_dir, segments, client = archive
    config = parse_config(f'cameras:\n  - {{id: {CAM}, name: R, url: "rtsp://h/x", recording: {{retention_days: 1}}}}\n')
    now = segments[-1].end + 10 * 86400  # every segment is past retention
    for damaged in (json.dumps([CAM, "soon", 5]), "not json"):
        client.delete(holds.WINDOWS)
        client.sadd(holds.WINDOWS, damaged, json.dumps(["another-cam", 1.0, 2.0]))
        report = apply_retention(client, config, rec_dir, now=now, quota_bytes=0)
        assert report.deleted_by_age == 0 and report.deleted_by_quota == 0, damaged
        assert report.kept_on_hold == len(segments)
        assert all((rec_dir / s.path).exists() for s in segments)
    client.delete(holds.WINDOWS)  # repaired: retention goes on
    assert apply_retention(client, config, rec_dir, now=now).deleted_by_age == len(segments)


def test_a_failed_cut_names_segments_without_the_servers_paths(archive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """ffmpeg's message reaches the API's client in the job's error: the server's folders are not in it."""
    import pipeline.recording.export as export

    rec_dir, segments, client = archive
    monkeypatch.setattr(export, "MAX_HELD_FILES", 0)  # segments read by path, as beyond the open-file budget
    (rec_dir / segments[0].path).write_bytes(b"not a video at all" * 64)
    with pytest.raises(ExportError, match="ffmpeg could not cut the clip") as err:
        export_clip(client, CAM, segments[0].start + 0.2, segments[1].end - 0.2, "x", recordings_dir=rec_dir)
    text = str(err.value)
    assert str(rec_dir) not in text and str(rec_dir.resolve()) not in text, text
    assert segments[0].path in text, text


def test_two_exports_of_one_window_in_one_second_keep_both_clips(archive: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """The names carry the second the export was made: two of the same window within it (the CLI, one folder)
    used to share every file name, the second clip and manifest replacing the first's."""
    import pipeline.recording.export as export

    rec_dir, segments, client = archive
    monkeypatch.setattr(export.time, "time", lambda: 1_800_000_000.25)
    out = tmp_path / "evidence"
    first = export_clip(client, CAM, segments[0].start + 0.2, segments[1].end - 0.2, "a", recordings_dir=rec_dir,
                        out_dir=out)
    second = export_clip(client, CAM, segments[0].start + 0.2, segments[1].end - 0.2, "b", recordings_dir=rec_dir,
                         out_dir=out, accurate=True)
    assert first.mp4_path != second.mp4_path and first.manifest_path != second.manifest_path
    for result, who in ((first, "a"), (second, "b")):
        manifest = json.loads(result.manifest_path.read_text())
        assert manifest["requester"] == who and manifest["file"] == result.mp4_path.name
        assert hashlib.sha256(result.mp4_path.read_bytes()).hexdigest() == manifest["sha256"] == result.sha256
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".json", ".mp4", ".mp4"]
