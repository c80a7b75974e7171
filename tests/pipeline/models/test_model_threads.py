"""``CCTV_MODEL_THREADS`` caps the CPU threads of every model session, on both runtimes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.models.onnx_utils import create_session
from pipeline.models.openvino_runtime import openvino_available
from pipeline.settings import PROJECT_ROOT, Settings, get_settings

READER = PROJECT_ROOT / "models" / "plate_reader" / "plate_reader.onnx"


@pytest.fixture()
def model_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CCTV_MODEL_THREADS", "1")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("CCTV_MODEL_THREADS")
    get_settings.cache_clear()


def test_setting_defaults_to_the_runtime_choice_and_refuses_negatives(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().model_threads == 0
    monkeypatch.setenv("CCTV_MODEL_THREADS", "-2")
    with pytest.raises(ValueError, match="model_threads"):
        Settings()


def test_onnxruntime_session_takes_the_cap(model_threads: None) -> None:
    session = create_session(Path(READER), "cpu", runtime="onnxruntime")
    assert session.get_session_options().intra_op_num_threads == 1


def test_an_explicit_thread_count_wins_over_the_setting(model_threads: None) -> None:
    session = create_session(Path(READER), "cpu", threads=2, runtime="onnxruntime")
    assert session.get_session_options().intra_op_num_threads == 2


@pytest.mark.skipif(not openvino_available()[0], reason="openvino is not installed (pip install .[openvino])")
def test_openvino_session_takes_the_cap(model_threads: None) -> None:
    session = create_session(Path(READER), "cpu", runtime="openvino")
    assert int(session.compiled.get_property("INFERENCE_NUM_THREADS")) == 1
