"""The throughput benchmark's plot is drawn with and without a baseline phase (``--no-baseline`` wrote its JSON
and then crashed on ``ratio`` being None)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.throughput import plot


def _phase(fps: float) -> dict:
    return {"analysed_fps": fps, "stage_ms_per_frame": {"decode_wait": 1.0, "detect": 50.0, "plates": 30.0}}


@pytest.mark.parametrize("with_baseline", [True, False])
def test_plot_is_written_with_or_without_baseline(tmp_path: Path, with_baseline: bool) -> None:
    result = {"streams": 8, "fps": 1.0, "engine": _phase(7.5),
              "baseline": _phase(4.0) if with_baseline else None,
              "ratio": 7.5 / 4.0 if with_baseline else None}
    out = tmp_path / "plot.png"
    plot(result, out)
    assert out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
