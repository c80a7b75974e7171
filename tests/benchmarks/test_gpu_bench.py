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


def test_the_engine_runtime_taken_is_the_fastest_that_keeps_the_answers() -> None:
    engines = {"torch": {"files_engine_fps": 74.0, "reference_recall": 1.0, "extra_event_rate": 0.0},
               "torch-fp16": {"files_engine_fps": 90.0, "reference_recall": 0.974, "extra_event_rate": 0.095}}
    assert gpu.fastest_keeping_answers(engines) == "torch"  # faster, but it moved plate reads
    engines["torch-fp16"].update(reference_recall=0.99, extra_event_rate=0.01)
    assert gpu.fastest_keeping_answers(engines) == "torch-fp16"
    assert gpu.fastest_keeping_answers({"auto": {"files_engine_fps": 5.0}}) == "auto"  # no check: taken


def test_device_report_takes_torch_where_onnxruntime_has_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.models import torch_runtime

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(gpu.shutil, "which", lambda _name: None)
    monkeypatch.setattr(torch_runtime, "torch_available", lambda: (True, "torch 9.9"))
    monkeypatch.setattr(torch_runtime, "torch_cuda_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda _index=0: "Test GPU")
    report = gpu.device_report()
    assert report["gpu"] is True and report["cuda"] is False and report["gpu_name"] == "Test GPU"
    assert report["engine_runtimes"] == ["torch", "torch-fp16"]
    assert "through torch" in report["reason"]


@pytest.mark.timeout(600)
def test_parallel_engines_meet_at_the_barrier_and_add_up(tmp_path: Path) -> None:
    """Step 4 on the CPU: two real file-mode engine processes, started together, their frames summed."""
    result = gpu.parallel_engines("cpu", "onnxruntime", 2, fps=1.0, streams=1, seconds=2.0, work=tmp_path)
    assert "error" not in result, result
    assert result["processes"] == 2 and result["frames"] >= 2 * 2 and len(result["per_process_fps"]) == 2
    assert result["frames_per_s"] > 0 and result["wall_s"] > 0
    assert len(list(tmp_path.glob("parallel-onnxruntime-2-auto-*/barrier/ready-*"))) == 2
    again = gpu.parallel_engines("cpu", "onnxruntime", 2, fps=1.0, streams=1, seconds=1.0, work=tmp_path)
    assert "error" not in again and len(list(tmp_path.glob("parallel-onnxruntime-2-auto-*"))) == 2  # fresh folder


def test_one_failing_engine_process_stops_the_others_at_once() -> None:
    import subprocess
    import sys
    import time

    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
             subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])]
    assert gpu.wait_all(procs, timeout_s=120) == ["killed", 3]
    assert time.monotonic() - start < 30  # not the sleeper's 60 s, nor the timeout
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert gpu.wait_all([sleeper], timeout_s=0.5) == ["timeout"]


def test_processes_argument_is_checked() -> None:
    with pytest.raises(SystemExit):
        gpu.main(["--processes", "two"])
    with pytest.raises(SystemExit):
        gpu.main(["--processes", "0"])


def test_reference_run_reads_with_the_reader_and_rectifier_on_onnxruntime() -> None:
    """The answer check judges the runtime of the small models too: a reader moved to torch is replaced by one on
    ONNX Runtime in the reference run; one already there is kept."""
    from pipeline.engine.process import load_plate_reader_or_none, load_plate_rectifier_or_none
    from pipeline.models.onnx_utils import session_runtime
    from pipeline.models.torch_runtime import torch_available

    if not torch_available()[0]:
        pytest.skip("torch / onnx2torch are not installed")
    from benchmarks.throughput import reference_small_models
    from pipeline.config import EngineConfig

    reader = load_plate_reader_or_none("crnn", device="cpu", runtime="torch")
    rectifier = load_plate_rectifier_or_none("cpu", "torch")
    assert session_runtime(reader.session) == session_runtime(rectifier.session) == "torch"
    ref_reader, ref_rectifier = reference_small_models(reader, rectifier, EngineConfig())
    assert session_runtime(ref_reader.session) == session_runtime(ref_rectifier.session) == "onnxruntime"
    kept = load_plate_reader_or_none("crnn", device="cpu")
    assert reference_small_models(kept, None, EngineConfig()) == (kept, None)
    # engine.runtime openvino keeps the small networks on ONNX Runtime (they were not faster there)
    assert session_runtime(load_plate_reader_or_none("crnn", device="cpu", runtime="openvino").session) \
        == "onnxruntime"
