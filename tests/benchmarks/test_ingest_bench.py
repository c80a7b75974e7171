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
