"""Retention facing index entries that do not name a segment file of their camera (a tampered or corrupted index):
it never deletes a file outside ``<recordings>/<camera>/`` and never loops on an entry it refuses to delete."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from pipeline.config import parse_config
from pipeline.recording.index import Segment, add_segment, index_key
from pipeline.recording.retention import RetentionReport, apply_retention

CAM = "cam-r"
OLD = 1_000_000.0  # 1970: past any retention


def _config(days: int = 1):
    return parse_config(f'cameras:\n  - {{id: {CAM}, name: R, url: "rtsp://h/x", recording: {{retention_days: {days}}}}}\n')


def _run(client: redis.Redis, rec_dir: Path, **kwargs) -> RetentionReport:
    """One retention pass in a thread; fails (instead of hanging the suite) when it does not end."""
    out: list[RetentionReport] = []
    thread = threading.Thread(target=lambda: out.append(apply_retention(client, _config(), rec_dir, host="h1",
                                                                        **kwargs)), daemon=True)
    thread.start()
    thread.join(120)
    assert out, "the retention pass never ended"
    return out[0]


def _file(path: Path, data: bytes = b"x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_entries_pointing_outside_the_camera_folder_never_delete_their_target(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    rec_dir = tmp_path / "recordings"
    outside = _file(tmp_path / "precious.mkv")
    other_cam = _file(rec_dir / "other-cam" / "1970-01-12" / "13" / "x.mkv")
    elsewhere = tmp_path / "elsewhere"
    victim = _file(elsewhere / "13" / "y.mkv")
    (rec_dir / CAM).mkdir(parents=True)
    (rec_dir / CAM / "1970-01-12").symlink_to(elsewhere, target_is_directory=True)  # a symlinked date folder
    good = _file(rec_dir / CAM / "1970-01-12" / "14" / "good.mkv")
    good.parent.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(["../precious.mkv", str(outside), "other-cam/1970-01-12/13/x.mkv",
                              f"{CAM}/1970-01-12/13/y.mkv", f"{CAM}/../other-cam/1970-01-12/13/x.mkv"]):
        add_segment(client, CAM, Segment(path, OLD + i, OLD + i + 1, 100))
    add_segment(client, CAM, Segment(f"{CAM}/1970-01-12/14/good.mkv", OLD + 10, OLD + 11, 100))
    _run(client, rec_dir)
    assert outside.exists() and other_cam.exists() and victim.exists()
    assert client.zcard(index_key(CAM)) == 0, "the bogus entries are dropped from the index (their files are kept)"


def test_an_entry_naming_exported_evidence_neither_hangs_retention_nor_is_counted_again(redis_url: str,
                                                                                         tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    rec_dir = tmp_path / "recordings"
    evidence = _file(rec_dir / "exports" / "job" / "clip.mkv")
    add_segment(client, CAM, Segment("exports/job/clip.mkv", OLD, OLD + 1, 100))
    report = _run(client, rec_dir)
    assert evidence.exists()
    assert report.bytes_freed == 0


def test_a_refused_entry_does_not_stand_in_for_real_segments_over_the_quota(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    rec_dir = tmp_path / "recordings"
    evidence = _file(rec_dir / "exports" / "job" / "clip.mkv")
    add_segment(client, CAM, Segment("exports/job/clip.mkv", 5_000_000_000.0, 5_000_000_001.0, 100))
    real = [_file(rec_dir / CAM / "2126-01-01" / "00" / f"s{i}.mkv") for i in range(3)]
    for i in range(3):  # newer than the bogus entry, inside retention: only the quota may delete them
        add_segment(client, CAM, Segment(f"{CAM}/2126-01-01/00/s{i}.mkv", 5_000_000_010.0 + i,
                                         5_000_000_011.0 + i, 100))
    out: list[RetentionReport] = []
    thread = threading.Thread(target=lambda: out.append(apply_retention(
        client, _config(3650), rec_dir, host="h1", quota_bytes=250, now=5_000_000_100.0)), daemon=True)
    thread.start()
    thread.join(120)
    assert out, "the retention pass never ended"
    assert evidence.exists()
    # 400 bytes indexed, 250 allowed: the bogus entry leaves the index (its file stays), then the oldest real segment
    assert not real[0].exists() and real[1].exists() and real[2].exists()
    assert out[0].deleted_by_quota == 1 and client.zcard(index_key(CAM)) == 2
