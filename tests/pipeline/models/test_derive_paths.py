"""Derived model files always land inside the derived folder, whatever path the config gives the source model
(``../``, absolute, odd characters): the source stays the operator's choice, the derived name is a sanitised form of
it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.models.derive import batch_model_path, derived_path


def _tiny_batch1_model(path: Path) -> Path:
    """A float ONNX Conv with a fixed batch of 1 (derivable in well under a second)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["images", "w"], ["out"], pads=[1, 1, 1, 1])], "tiny",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 32, 32])],
                              [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("configured", ["../outside/tiny.onnx", "ABSOLUTE"])
def test_a_model_outside_the_model_dir_is_derived_inside_the_derived_folder(tmp_path: Path,
                                                                           configured: str) -> None:
    source = _tiny_batch1_model(tmp_path / "outside" / "tiny.onnx")
    model_dir, out_dir = tmp_path / "models", tmp_path / "derived"
    model_dir.mkdir()
    relative = str(source) if configured == "ABSOLUTE" else configured
    before = _files(tmp_path)
    loaded = batch_model_path(relative, model_dir, out_dir)
    assert loaded != source and loaded.resolve().is_relative_to(out_dir.resolve()), loaded
    new = _files(tmp_path) - before
    assert new and all(p.resolve().is_relative_to(out_dir.resolve()) for p in new), new
    assert _files(tmp_path / "outside") == {source}
    assert batch_model_path(relative, model_dir, out_dir) == loaded  # found again, valid: not derived twice


@pytest.mark.parametrize("relative", ["../../etc/cron.d/x.onnx", "/etc/x.onnx", "yolo/../../../x.onnx",
                                      "a\x00b.onnx", "line\nbreak.onnx", "..", "_external/../../x.onnx"])
@pytest.mark.parametrize("precision", ["int8", "fp32", "int8-static"])
def test_derived_paths_never_leave_the_derived_folder(tmp_path: Path, relative: str, precision: str) -> None:
    target = derived_path(relative, tmp_path / "derived", precision)
    assert target.resolve().is_relative_to((tmp_path / "derived").resolve()), target
    assert ".." not in target.relative_to(tmp_path / "derived").parts
    assert all(ord(c) >= 32 for c in str(target)), target


def test_plain_paths_keep_their_layout_and_odd_ones_do_not_collide(tmp_path: Path) -> None:
    assert derived_path("yolo/yolov8n_int8.onnx", tmp_path) == tmp_path / "yolo" / "yolov8n_int8.batch.onnx"
    odd = ["../a/b.onnx", "../a_b.onnx", "/a/b.onnx", "../../a/b.onnx", "_external/a_b.onnx"]
    assert len({derived_path(p, tmp_path) for p in odd}) == len(odd)
