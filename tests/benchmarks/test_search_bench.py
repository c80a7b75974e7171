"""The search benchmark runs end to end at a small volume, and its fast fill path writes what the store writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.search import bench_event, check_fast_path, fast_plate_args
from pipeline.store import EventStore

REPO = Path(__file__).resolve().parents[2]


def test_fast_fill_arguments_equal_the_store_encoding() -> None:
    samples = [(7, "1กข1234", "cam01", 0.912, "car", "กรุงเทพมหานคร", "Bangkok", 1_763_000_000.123),
               (123456, "701234", "cam49", 0.4, "motorcycle", "ชลบุรี", "Chon Buri", 1_763_000_001.5)]
    check_fast_path(samples)
    changed = list(samples[0])
    changed[3] = 0.9121  # the codec keeps the full float in the record; the member keeps 3 decimals
    assert fast_plate_args(*changed)[4] == "0.912"
    assert [str(a) for a in fast_plate_args(*changed)] == [
        str(a) for a in EventStore.plate_event_args(bench_event(*changed))]


@pytest.mark.timeout(300)
def test_search_benchmark_writes_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "search.json", tmp_path / "search.png"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.search", "--reads", "20000", "--faces", "3000",
                           "--queries", "30", "--checkpoints", "5000", "--json", str(out), "--plot", str(png)],
                          cwd=REPO, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    for key in ("reads", "exact_p95_ms", "partial_p95_ms", "fuzzy_p95_ms", "face_p95_ms", "faces",
                "redis_used_memory_mb", "fill_seconds", "distinct_plates", "face_recall_at_10"):
        assert key in data, key
    assert data["reads"] == 20000 and data["faces"] == 3000
    assert [c["reads"] for c in data["curve"]] == [5000, 20000]
    assert data["distinct_plates"] > 500 and data["redis_used_memory_mb"] > 1
    assert data["fuzzy_found_rate"] > 0.9  # misread queries find their plate through the look-alike index
    assert data["face_recall_at_10"] > 0.95  # float16 + float32 re-rank against float32 brute force
    assert png.stat().st_size > 10_000
    assert "exact" in proc.stdout and "fuzzy" in proc.stdout and "plate reads" in proc.stderr
