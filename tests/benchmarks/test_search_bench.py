"""The search benchmark runs end to end at a small volume and writes its JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_search_benchmark_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.search", "--reads", "20000", "--faces", "5000",
                           "--queries", "40", "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    for key in ("reads", "exact_p95_ms", "partial_p95_ms", "fuzzy_p95_ms", "face_p95_ms", "faces"):
        assert key in data, key
    assert data["reads"] == 20000 and data["faces"] == 5000
    assert data["distinct_plates"] > 500
    assert data["fuzzy_found_rate"] > 0.9  # misread queries find their plate through the look-alike index
    assert "exact" in proc.stdout and "fuzzy" in proc.stdout
