"""Smoke test of ``benchmarks.throughput --mode files`` on real footage and models (a few frames per camera):
the engine and the reference run (every frame, every model) analyse the same frames, and the JSON carries the
models-only limit, the engine's time and the answer check. No timing is asserted (the machine is shared)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import throughput


@pytest.mark.timeout(600)
def test_file_mode_reports_models_only_and_answer_check(shared_dir: Path, tmp_path: Path) -> None:
    if not (shared_dir / "data" / "videos" / f"{throughput.VIDEOS[0][0]}.mp4").exists():
        pytest.skip("benchmark footage missing")
    out = tmp_path / "files.json"
    # 6 s of video at 1 fps, every other frame analysed (--keep-every: an engine behind its cameras)
    code = throughput.main(["--mode", "files", "--streams", "3", "--seconds", "6", "--fps", "1", "--keep-every", "2",
                            "--no-baseline", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["mode"] == "files" and result["files_frames"] >= 9 and result["files_keep_every"] == 2
    assert result["models_only_ms_per_frame"] > 0 and result["engine_ms_per_frame"] > 0
    assert result["engine_ms_per_frame"] >= result["models_only_ms_per_frame"]  # the models run inside the engine
    assert result["files_reference_detector_frames"] == result["files_frames"]  # every frame, every model
    assert result["answer_reference_face_events"] > 0  # two of the three cameras look for faces
    assert 0.0 <= result["reference_recall"] <= 1.0 and result["extra_event_rate"] >= 0.0
    assert result["answer_plate_truth"] == "by eye on cam01"  # the dashcam's plates legible by eye
    assert 0.0 <= result["answer_reference_recall_all_reads"] <= 1.0
    assert result["files_engine_faces_embedded"] > 0  # the face stage's counters are reported
    # the plate cascade's batched time per plate found: the dashcam shows plates in these seconds
    assert result["files_reference_plates_detected"] > 0
    assert result["files_reference_plate_cascade_ms_per_plate_found"] > 0
    assert result["baseline_fps"] is None and result["files_cpu_ratio"] is None  # --no-baseline
