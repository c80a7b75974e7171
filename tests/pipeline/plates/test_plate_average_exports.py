"""Averaging exported plate readers (stage 7's recipe): element-wise mean, same graph only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pipeline.plates.average_exports import ExportMismatch, average_exports, main

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "plate_reader"
RECTIFIER = Path(__file__).resolve().parents[3] / "models" / "plate_rectifier"


def _weights(folder: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(folder / "plate_reader.onnx"))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _scaled_copy(folder: Path, factor: float) -> Path:
    """A copy of the shipped export whose floating-point weights are multiplied by ``factor``."""
    folder.mkdir()
    model = onnx.load(str(SHIPPED / "plate_reader.onnx"))
    for i, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if np.issubdtype(array.dtype, np.floating):
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array * factor, tensor.name))
    onnx.save(model, str(folder / "plate_reader.onnx"))
    shutil.copy(SHIPPED / "plate_reader.json", folder / "plate_reader.json")
    return folder


def test_the_mean_lies_halfway_and_integer_tensors_stay(tmp_path: Path) -> None:
    doubled = _scaled_copy(tmp_path / "doubled", 3.0)
    average_exports([SHIPPED, doubled], tmp_path / "mean")
    shipped, mean = _weights(SHIPPED), _weights(tmp_path / "mean")
    assert shipped.keys() == mean.keys()
    floats = [k for k, v in shipped.items() if np.issubdtype(v.dtype, np.floating)]
    assert floats, "the reader has floating-point weights"
    for name, value in shipped.items():
        expected = value * 2.0 if name in floats else value  # (1 + 3) / 2
        np.testing.assert_allclose(mean[name], expected, rtol=1e-6, atol=1e-7)
    meta = json.loads((tmp_path / "mean" / "plate_reader.json").read_text(encoding="utf-8"))
    assert "mean of the ONNX initialisers" in meta["weights"] and str(doubled) in meta["weights"]
    assert meta["charset"] == json.loads((SHIPPED / "plate_reader.json").read_text(encoding="utf-8"))["charset"]


def test_exports_of_another_graph_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "rectifier"
    other.mkdir()
    shutil.copy(RECTIFIER / "plate_rectifier.onnx", other / "plate_reader.onnx")
    shutil.copy(SHIPPED / "plate_reader.json", other / "plate_reader.json")
    with pytest.raises(ExportMismatch, match="graph differs"):
        average_exports([SHIPPED, other], tmp_path / "mean")
    assert not (tmp_path / "mean").exists()  # nothing written


def test_command_line_names_a_folder_without_an_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(SHIPPED), str(tmp_path / "missing"), "--out", str(tmp_path / "mean")])
    assert exc.value.code == 2
    assert "missing: no plate_reader.onnx" in capsys.readouterr().err
