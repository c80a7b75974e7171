"""Real footage laid out as a worker's recorder leaves it: cut by stream copy into Matroska segments under
``<recordings>/<camera>/<date>/<hour>/`` and described as index entries held by a named host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline.recording.index import Segment
from pipeline.recording.recorder import final_path


def cut_segments(video: Path, recordings_dir: Path, camera_id: str, host: str, work: Path, seconds: int = 6,
                 segment_s: int = 2, start: float = 1_700_000_000.0) -> list[Segment]:
    """The first ``seconds`` of ``video`` as ``segment_s`` segments of ``camera_id`` starting at ``start``."""
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(video), "-t", str(seconds), "-map", "0:v:0",
                    "-c", "copy", "-f", "segment", "-segment_time", str(segment_s), "-segment_format", "matroska",
                    "-reset_timestamps", "1", str(work / "s%03d.mkv")], check=True, timeout=120)
    segments = []
    for part in sorted(work.glob("s*.mkv")):
        duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                         "csv=p=0", str(part)], capture_output=True, text=True, check=True,
                                        timeout=60).stdout)
        target = final_path(recordings_dir, camera_id, start)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        segments.append(Segment(str(target.relative_to(recordings_dir)), start, round(start + duration, 3),
                                target.stat().st_size, host=host))
        start = round(start + duration, 3)
    return segments
