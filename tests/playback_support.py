"""Real recordings for the playback tests: footage made a camera stream (the test cameras' H.264, 1 s GOP), cut into
Matroska segments by ffmpeg's segment muxer by stream copy (the recorder's own options) and finalised and indexed by
the recorder's :class:`~pipeline.recording.recorder.SegmentFinalizer` at chosen real times."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from pipeline.recording.index import Segment
from pipeline.recording.recorder import SegmentFinalizer, incoming_dir
from pipeline.testcams import cached_transcode


def camera_stream(video: Path) -> Path:
    """The footage as the test cameras serve it (H.264, 25 fps, keyframe every second; transcoded once, cached)."""
    return cached_transcode(video, "h264")


def record(client, recordings: Path, camera_id: str, video: Path, real_start: float, segment_s: int = 6,
           tag: str = "a") -> list[Segment]:
    """Record ``video`` (whole) as camera ``camera_id`` starting at real time ``real_start``: the segments are
    written by ffmpeg's segment muxer (stream copy, Matroska, timestamps reset per segment, like the recorder)
    and handed to the recorder's finaliser as its segment list reports them, arriving when they would have."""
    source = camera_stream(video)
    folder = incoming_dir(recordings, camera_id)
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder.parent / f"list-{tag}.csv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-map", "0:v:0", "-c", "copy",
                    "-f", "segment", "-segment_time", str(segment_s), "-segment_format", "matroska",
                    "-reset_timestamps", "1", "-segment_list", str(listing), "-segment_list_type", "csv",
                    str(folder / f"{camera_id}_{tag}%03d.mkv")], check=True, timeout=120)
    finalizer = SegmentFinalizer(client, recordings, camera_id)
    finalizer.new_session()
    segments = []
    for line in listing.read_text().splitlines():
        _, _, end = line.rsplit(",", 2)
        segment = finalizer.on_list_line(line, arrival=real_start + float(end))
        assert segment is not None, f"the finaliser did not index {line!r}"
        segments.append(segment)
    listing.unlink()
    return segments


def frame_at(video: Path, offset_s: float) -> np.ndarray:
    """The frame ffmpeg decodes at ``offset_s`` seconds of a file (BGR)."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-ss", f"{offset_s:.3f}", "-i", str(video),
                          "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"], capture_output=True, check=True,
                         timeout=60)
    frame = cv2.imdecode(np.frombuffer(out.stdout, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None, f"no frame of {video} at {offset_s}s"
    return frame


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two pictures (grey, at the smaller one's size), 0..255."""
    if a.shape[:2] != b.shape[:2]:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    ga = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gb = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.mean(np.abs(ga - gb)))
