"""Retention keeps a minimum of free space on the recordings filesystem (``ingest.recordings_min_free_gb``), whatever
the quota says: a disk smaller than the quota, or filled by something else, must not stop recording.

Real segment files and a real index; only the free-space measurement is simulated (a filesystem of ``CAPACITY``
bytes whose used space is what the recordings folder holds plus ``other``), since a small real filesystem needs
root."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from pipeline.config import ConfigError, parse_config
from pipeline.recording.index import Segment, add_segment, index_key
from pipeline.recording.recorder import incoming_dir
from pipeline.recording.retention import apply_retention
from pipeline.store import holds

CAMS = ("cam-a", "cam-b")
SIZE = 1000  # bytes per segment file
CAPACITY = 20_000  # bytes of the simulated filesystem
T0 = 4_000_000_000.0  # 2096: inside any age limit, only the free space may delete


def _config(min_free_gb: float | None = None, quota_gb: float = 100.0):
    ingest = f"ingest: {{recordings_quota_gb: {quota_gb}" + (
        f", recordings_min_free_gb: {min_free_gb}}}\n" if min_free_gb is not None else "}\n")
    cameras = "".join(f'  - {{id: {cam}, name: {cam}, url: "rtsp://h/{cam}"}}\n' for cam in CAMS)
    return parse_config(ingest + "cameras:\n" + cameras)


class FakeDisk:
    """Free bytes of a ``CAPACITY``-byte filesystem holding the recordings folder and ``other`` bytes of other files."""

    def __init__(self, rec_dir: Path, other: int) -> None:
        self.rec_dir, self.other, self.calls = rec_dir, other, 0

    def __call__(self, path: Path) -> int:
        assert path == self.rec_dir
        self.calls += 1
        used = sum(f.stat().st_size for f in self.rec_dir.rglob("*") if f.is_file())
        return max(0, CAPACITY - used - self.other)


def _record(client: redis.Redis, rec_dir: Path, count: int = 6) -> list[tuple[str, Segment]]:
    """``count`` 10 s segments per camera, interleaved in time (cam-a first), files and index: (camera, segment)."""
    out = []
    for i in range(count):
        for j, cam in enumerate(CAMS):
            start = T0 + i * 10 + j
            path = f"{cam}/2096-10-02/07/seg-{i:03d}.mkv"
            (rec_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (rec_dir / path).write_bytes(b"\0" * SIZE)
            segment = Segment(path, start, start + 10, SIZE, "h1")
            add_segment(client, cam, segment)
            out.append((cam, segment))
    return out


def _left(client: redis.Redis) -> set[str]:
    return {Segment.from_member(m).path for cam in CAMS for m in client.zrange(index_key(cam), 0, -1)}


@pytest.fixture()
def rec_dir(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    path.mkdir()
    return path


def test_low_free_space_deletes_the_oldest_segments_across_cameras_until_the_minimum_is_free(
        client: redis.Redis, rec_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    segments = _record(client, rec_dir)  # 12 000 bytes of recordings
    writing = incoming_dir(rec_dir, "cam-a") / "seg-in-progress.mkv"  # the segment ffmpeg is writing (not indexed)
    writing.parent.mkdir(parents=True)
    writing.write_bytes(b"\0" * 500)
    disk = FakeDisk(rec_dir, other=5_000)  # 20 000 - 12 500 - 5 000 = 2 500 free
    with caplog.at_level(logging.INFO, logger="pipeline.recording.retention"):
        report = apply_retention(client, _config(), rec_dir, host="h1", min_free_bytes=5_000, free_bytes=disk)
    # 2 500 free, 5 000 wanted: the three oldest segments go (cam-a 0, cam-b 0, cam-a 1), oldest first
    expected = [s.path for _, s in segments[:3]]
    assert report.free_space_deleted == expected
    assert report.deleted_for_free_space == 3 and report.deleted_by_quota == 0 and report.deleted_by_age == 0
    assert report.bytes_freed == 3 * SIZE
    assert _left(client) == {s.path for _, s in segments[3:]}
    assert not any((rec_dir / path).exists() for path in expected)
    assert all((rec_dir / s.path).exists() for _, s in segments[3:])
    assert writing.exists()
    assert disk(rec_dir) >= 5_000
    assert "below the minimum" in caplog.text and all(path in caplog.text for path in expected)
    # enough space now: the next pass deletes nothing
    again = apply_retention(client, _config(), rec_dir, host="h1", min_free_bytes=5_000, free_bytes=disk)
    assert again.deleted_for_free_space == 0 and _left(client) == {s.path for _, s in segments[3:]}


def test_held_segments_are_never_deleted_for_free_space(client: redis.Redis, rec_dir: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    segments = _record(client, rec_dir)
    # an open case holds cam-a's first 25 s (its segments 0-2) and all of cam-b's from 40 s (segments 4-5)
    holds.place(client, "case-1", "clip:1", holds.Hold(windows=[("cam-a", T0, T0 + 25),
                                                                ("cam-b", T0 + 41.5, T0 + 1000)]))
    held = {s.path for cam, s in segments if (cam == "cam-a" and s.start < T0 + 25)
            or (cam == "cam-b" and s.end > T0 + 41.5)}
    assert len(held) == 5
    disk = FakeDisk(rec_dir, other=5_000)  # 3 000 free
    report = apply_retention(client, _config(), rec_dir, host="h1", min_free_bytes=6_000, free_bytes=disk)
    unheld_oldest = [s.path for _, s in segments if s.path not in held][:3]
    assert report.free_space_deleted == unheld_oldest  # cam-b 0, 1, 2 (before cam-a 3): the held ones skipped
    assert held <= _left(client) and all((rec_dir / path).exists() for path in held)
    # the other files fill the disk: everything unheld goes, never a held segment, and the pass ends saying so
    disk.other = 19_000
    with caplog.at_level(logging.WARNING, logger="pipeline.recording.retention"):
        report = apply_retention(client, _config(), rec_dir, host="h1", min_free_bytes=6_000, free_bytes=disk)
    assert _left(client) == held and all((rec_dir / path).exists() for path in held)
    assert report.deleted_for_free_space == 12 - 5 - 3
    assert "under legal hold" in caplog.text


def test_other_hosts_segments_are_theirs_to_delete(client: redis.Redis, rec_dir: Path) -> None:
    segments = _record(client, rec_dir, count=2)
    report = apply_retention(client, _config(), rec_dir, host="h2", min_free_bytes=CAPACITY,
                             free_bytes=FakeDisk(rec_dir, other=0))
    assert report.deleted_for_free_space == 0 and _left(client) == {s.path for _, s in segments}


def test_the_minimum_comes_from_the_config_and_zero_turns_it_off(client: redis.Redis, rec_dir: Path) -> None:
    segments = _record(client, rec_dir, count=2)  # 4 000 bytes: 16 000 free
    disk = FakeDisk(rec_dir, other=0)
    assert apply_retention(client, _config(0), rec_dir, host="h1", free_bytes=disk).deleted_for_free_space == 0
    assert disk.calls == 0
    report = apply_retention(client, _config(0.0000165), rec_dir, host="h1", free_bytes=disk)  # 16 500 bytes
    assert report.free_space_deleted == [segments[0][1].path]


def test_a_folder_not_made_yet_is_no_error(client: redis.Redis, tmp_path: Path) -> None:
    report = apply_retention(client, _config(), tmp_path / "absent", host="h1")
    assert report.deleted_for_free_space == 0


def test_recordings_min_free_gb_is_validated_strictly() -> None:
    assert _config().ingest.recordings_min_free_gb == 1.0  # the default
    assert _config(2.5).ingest.recordings_min_free_gb == 2.5
    for bad in ("-1", "yes", "100001", '"lots"'):
        with pytest.raises(ConfigError) as err:
            parse_config(f"ingest: {{recordings_min_free_gb: {bad}}}\ncameras:\n"
                         '  - {id: c, name: c, url: "rtsp://h/x"}\n')
        assert "recordings_min_free_gb" in str(err.value), bad
