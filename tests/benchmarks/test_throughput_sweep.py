"""The throughput benchmark's camera-count sweep: argument parsing, the JSON of a sweep built from fake
measurements, the table and the plot of fps and latency p95 against the number of cameras (no cameras, no models)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.throughput import (
    ALL_STAGES,
    MODEL_STAGES,
    live_flat,
    parse_sweep,
    plot_sweep,
    print_sweep,
    sweep_result,
)


def _measured(streams: int, fps: float) -> dict:
    """What ``measure`` returns, made up: the engine keeps up to 12 cameras, then falls behind."""
    analysed = min(streams * fps, 12.0)
    stages = {stage: 10.0 for stage in ALL_STAGES}
    return {"analysed_fps": analysed, "detector_fps": analysed * 0.6, "frames": analysed * 30, "seconds": 30.0,
            "latency_p50_s": 0.8, "latency_p95_s": 1.2 + max(streams - 12, 0) * 0.3, "latency_samples": 20.0,
            "stage_ms_per_frame": stages, "batch_size_mean": 3.0, "dropped_frames": max(streams - 12, 0) * 10.0,
            "cpu_cores": 1.8, "rss_mb": 900.0, "events": {"plate_events": 3.0, "face_events": 4.0},
            "events_per_100_frames": {"plate_events": 1.0, "face_events": 1.5},
            "models_only_ms_per_frame": sum(stages[s] for s in MODEL_STAGES), "engine_cpu_ms_per_frame": 70.0,
            "engine_busy_ms_per_frame": 60.0}


def _args(baseline: bool) -> argparse.Namespace:
    return argparse.Namespace(fps=1.0, seconds=30.0, no_baseline=not baseline, queue_size=2, oldest_first=False,
                              settle=10.0, baseline_threads=0)


def test_parse_sweep() -> None:
    assert parse_sweep("4,8,12,16,24") == [4, 8, 12, 16, 24]
    assert parse_sweep(" 8, 4,8,") == [8, 4]
    for bad in ("", "4,0", "4,x"):
        with pytest.raises(ValueError):
            parse_sweep(bad)


@pytest.mark.parametrize("baseline", [False, True])
def test_sweep_json_and_plot_shape(tmp_path: Path, baseline: bool, capsys: pytest.CaptureFixture[str]) -> None:
    counts = [4, 8, 12, 16, 24]
    points = [live_flat(_measured(n, 1.0), _measured(n, 0.5) if baseline else None, n, _args(baseline))
              for n in counts]
    result = sweep_result(points, _args(baseline), wall_s=512.3)
    out = tmp_path / "sweep.json"
    out.write_text(json.dumps(result))
    loaded = json.loads(out.read_text())
    assert loaded["mode"] == "sweep" and loaded["streams_sweep"] == counts and loaded["sweep_wall_s"] == 512.3
    for point, n in zip(loaded["sweep"], counts, strict=True):
        assert point["streams"] == n
        assert {"analysed_fps", "latency_p95_s", "models_only_ms_per_frame", "engine_ms_per_frame",
                "engine_over_models_only", "dropped_frames"} <= set(point)
        assert point["models_only_ms_per_frame"] == 50.0 and point["engine_ms_per_frame"] == 60.0
        assert point["queue_size"] == 2 and point["freshest_when_full"] is True  # the frame bus's policy
        assert point["settle_s"] == 10.0 and point["baseline_model_threads"] == (0 if baseline else None)
        assert point["engine_over_models_only"] == pytest.approx(1.2)
        assert (point["baseline_fps"] is not None) == baseline and (point["ratio"] is not None) == baseline
    assert loaded["sweep"][-1]["analysed_fps"] == 12.0 and loaded["sweep"][0]["analysed_fps"] == 4.0

    print_sweep(points)
    table = capsys.readouterr().out
    assert len([line for line in table.splitlines() if line.strip()]) == 1 + len(counts)

    png = tmp_path / "sweep.png"
    plot_sweep(points, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
