"""``python -m benchmarks.canvas`` at its smallest size: both input canvases timed, agreement, table, JSON, PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import canvas


@pytest.mark.timeout(600)
def test_canvas_benchmark_writes_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "canvas.json", tmp_path / "canvas.png"
    canvas.main(["--batches", "1,2", "--repeat", "2", "--per-video", "2", "--json", str(out), "--png", str(png)])
    result = json.loads(out.read_text())
    assert [row["batch"] for row in result["batches"]] == [1, 2]
    assert all(row["square_ms_per_frame"] > 0 and row["fit_ms_per_frame"] > 0 for row in result["batches"])
    assert [384, 640] in result["canvases"]  # the clips are 16:9
    assert result["agreement"]["boxes"] > 0 and result["agreement"]["match_rate"] >= 0.9
    assert png.stat().st_size > 5_000
    assert "square / fit" in capsys.readouterr().out
