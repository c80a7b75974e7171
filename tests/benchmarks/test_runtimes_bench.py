"""The runtime benchmark's comparisons, its choice of the fastest runtime, its table and plot (no models run)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import runtimes
from pipeline.detections import Detections


def _dets(boxes: list[list[float]], classes: list[int]) -> Detections:
    return Detections(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
                      confidence=np.linspace(0.9, 0.5, len(boxes)).astype(np.float32),
                      class_id=np.asarray(classes, np.int32))


def test_match_detections_needs_same_class_and_iou_above_0_9() -> None:
    ref = [_dets([[0, 0, 100, 100], [200, 200, 260, 260]], [2, 0]), _dets([], [])]
    same = runtimes.match_detections(ref, ref)
    assert same["match_rate"] == 1.0 and same["ok"] and same["min_iou"] == 1.0
    moved = [_dets([[0, 0, 100, 100], [215, 200, 275, 260]], [2, 0]), _dets([], [])]  # IoU 0.6 on the second
    other_class = [_dets([[0, 0, 100, 100], [200, 200, 260, 260]], [2, 3]), _dets([], [])]
    extra = [_dets([[0, 0, 100, 100], [200, 200, 260, 260], [400, 0, 450, 50]], [2, 0, 7]), _dets([], [])]
    for other in (moved, other_class):
        result = runtimes.match_detections(ref, other)
        assert result["matched"] == 1 and result["match_rate"] == 0.5 and not result["ok"]
    result = runtimes.match_detections(ref, extra)
    assert result["matched"] == 2 and result["match_rate"] == pytest.approx(0.8) and not result["ok"]


def test_embedding_read_and_corner_comparisons() -> None:
    a = np.eye(3, dtype=np.float32)
    assert runtimes.compare_embeddings(list(a), list(a))["ok"]
    tilted = a.copy()
    tilted[0] = [0.98, 0.199, 0]
    tilted[0] /= np.linalg.norm(tilted[0])
    assert not runtimes.compare_embeddings(list(a), list(tilted))["ok"]
    read = SimpleNamespace(text="กข1234", province="กรุงเทพมหานคร")
    other = SimpleNamespace(text="กข1235", province="กรุงเทพมหานคร")
    assert runtimes.compare_reads([read, read], [read, read])["ok"]
    assert runtimes.compare_reads([read, read], [read, other])["differ"] == 1
    quad = np.float32([[0, 0], [100, 0], [100, 50], [0, 50]])
    close = runtimes.compare_corners([(quad, "car", 200)], [(quad + 0.5, "car", 200)])
    assert close["ok"] and close["max_corner_diff_pct"] == pytest.approx(0.25)
    assert not runtimes.compare_corners([(quad, "car", 200)], [(quad, "motorcycle", 200)])["ok"]


def test_pick_fastest_wants_agreement_and_a_clear_gain_at_every_batch() -> None:
    ort = {1: 10.0, 4: 8.0, 8: 7.0}
    ok = {"openvino": {"ok": True}}
    assert runtimes.pick_fastest({"onnxruntime": ort, "openvino": {1: 8.0, 4: 6.0, 8: 5.5}}, ok) == "openvino"
    # faster, but different outputs
    assert runtimes.pick_fastest({"onnxruntime": ort, "openvino": {1: 5.0, 4: 4.0, 8: 3.0}},
                                 {"openvino": {"ok": False}}) == "onnxruntime"
    # faster on average, but clearly slower at one batch size the engine uses
    assert runtimes.pick_fastest({"onnxruntime": ort, "openvino": {1: 5.0, 4: 4.0, 8: 8.0}}, ok) == "onnxruntime"
    # within noise
    assert runtimes.pick_fastest({"onnxruntime": ort, "openvino": {1: 9.8, 4: 7.9, 8: 6.9}}, ok) == "onnxruntime"


def test_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"model": m, "runtime": rt, "batch": b, "ms_per_frame": ms, "ratio": 10.0 / ms, "agree": True,
             "note": ""}
            for m in ("vehicles", "plates") for rt, ms in (("onnxruntime", 10.0), ("openvino", 12.5)) for b in (1, 4, 8)]
    result = {"host": {"cpu": "test CPU", "cores": 2}, "batches": [1, 4, 8], "repeat": 3, "rows": rows,
              "fastest": {"vehicles": "onnxruntime", "plates": "onnxruntime"}}
    runtimes.print_table(result)
    out = capsys.readouterr().out
    assert "vehicles" in out and "0.80x" in out and "engine.runtime: auto" in out
    png = tmp_path / "runtimes.png"
    runtimes.plot(result, png)
    assert png.stat().st_size > 1000


def test_available_runtimes_explains_what_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    have, skipped = runtimes.available_runtimes()
    assert have[0] == "onnxruntime" and "openvino" not in have
    assert "not importable" in skipped["openvino"]
