"""The one-command GPU measurement falls back cleanly on a machine without CUDA: it measures on the CPU, says why
there is no GPU figure, exits 0, and writes its table, JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from benchmarks import gpu, runtimes


def test_device_report_names_the_missing_cuda_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(gpu.shutil, "which", lambda _name: None)  # no nvidia-smi either
    report = gpu.device_report()
    assert report["cuda"] is False and report["tensorrt"] is False and report["gpu_name"] is None
    assert "no CUDAExecutionProvider" in report["reason"]
    have, skipped = runtimes.available_runtimes()
    assert "ort-cuda" not in have and "ort-tensorrt" not in have
    assert "CUDAExecutionProvider" in skipped["ort-cuda"] and "TensorrtExecutionProvider" in skipped["ort-tensorrt"]


def test_gpu_runtimes_are_never_what_auto_takes_on_the_cpu() -> None:
    timings = {"onnxruntime": {1: 10.0, 8: 8.0}, "ort-cuda": {1: 1.0, 8: 0.5}}
    agreement = {"ort-cuda": {"ok": True}}
    assert runtimes.pick_fastest(timings, agreement) == "onnxruntime"


@pytest.mark.timeout(600)
def test_one_command_measures_and_reports_without_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    assert gpu.main(["--models", "plates", "--plates", "10", "--repeat", "1", "--batches", "1,2", "--streams", "3",
                     "--seconds", "2", "--fps", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert result["gpu_measured"] is has_cuda
    assert result["engine_device"] == ("cuda" if has_cuda else "cpu")
    assert result["engine_frames_per_s"] > 0 and result["cameras_at_fps"] > 0
    assert result["reference_recall"] is None or 0.0 <= result["reference_recall"] <= 1.0
    rows = result["models"]["rows"]
    assert {r["runtime"] for r in rows} >= {"onnxruntime"} and {r["model"] for r in rows} == {"plates"}
    assert not {r["runtime"] for r in rows} & {"openvino", "openvino-bf16"}  # the GPU script times ORT's providers
    printed = capsys.readouterr().out
    assert "cameras at 1 fps" in printed
    if not has_cuda:
        assert "no GPU" in printed and "no CUDAExecutionProvider" in printed
    assert out.with_suffix(".png").stat().st_size > 1000
