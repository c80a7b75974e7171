"""The rectifier benchmark's command line on a few real held-out plates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import rectifier

REPO = Path(__file__).resolve().parents[2]


def test_classical_quad_orders_corners() -> None:
    """The classical fit finds a bright upright rectangle on a dark ground and orders its corners TL, TR, BR, BL."""
    img = np.zeros((100, 200, 3), np.uint8)
    img[20:80, 30:170] = 230
    quad = rectifier.classical_quad(img)
    assert np.allclose(quad, [[30, 20], [169, 20], [169, 79], [30, 79]], atol=4), quad


def test_rectifier_cli_writes_table_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rect.json"
    rectifier.main(["--n", "12", "--model-dir", str(REPO / "models" / "plate_rectifier"), "--json", str(out)])
    printed = capsys.readouterr().out
    assert "learned+refine" in printed and "classical" in printed
    res = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert set(res) == {"box", "classical", "learned", "learned+refine"}
    # The learned corners are far closer than the detector box's own corners on every run.
    assert res["learned+refine"]["mean_pct"] < res["box"]["mean_pct"] / 3
    assert 0.0 <= res["learned"]["within_10pct"] <= 1.0
    assert out.with_suffix(".png").stat().st_size > 1000
