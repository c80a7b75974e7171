"""Smoke test of the ingest benchmark (one camera, ramp only): it runs end to end and writes its JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import ingest


@pytest.mark.timeout(180)
def test_ingest_benchmark_runs_and_writes_results(shared_dir: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "ingest.json", tmp_path / "ingest.png"
    code = ingest.main(["--streams", "1", "--seconds", "3", "--skip-compare", "--videos",
                        str(shared_dir / "data" / "videos"), "--json", str(out), "--png", str(png)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert {"max_streams", "cpu_s_per_frame", "rss_mb_per_stream"} <= set(result)
    assert result["cpu_s_per_frame"] > 0 and result["rss_mb_per_stream"] > 10
    assert result["ramp_1_mean_fps"] > 0  # frames really flowed through the frame bus
    assert png.stat().st_size > 10_000


@pytest.mark.timeout(300)
def test_ingest_benchmark_compares_decode_modes(shared_dir: Path, tmp_path: Path) -> None:
    """``--decode all keyframes`` at 1 fps (the test cameras send a keyframe every second, so keyframes fit):
    both modes, main and sub-stream, in the JSON; keyframe mode really used and delivering frames."""
    out, png = tmp_path / "ingest.json", tmp_path / "ingest.png"
    code = ingest.main(["--decode", "all", "keyframes", "--decode-fps", "1", "--decode-streams", "1", "--seconds", "4",
                        "--skip-compare", "--skip-ramp", "--videos", str(shared_dir / "data" / "videos"),
                        "--json", str(out), "--png", str(png)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    rows = {(r["stream"], r["decode"]): r for r in result["decode_compare"]}
    assert set(rows) == {("main", "all"), ("main", "keyframes"), ("sub", "all"), ("sub", "keyframes")}
    for (_, mode), row in rows.items():
        assert row["decode_used"] == mode and row["cores_per_camera"] > 0
        assert row["analysed_fps_per_camera"] > 0 and row["segments"] >= 0
    assert result["decode_main_keyframes_cores_per_camera"] > 0
    assert png.stat().st_size > 10_000
