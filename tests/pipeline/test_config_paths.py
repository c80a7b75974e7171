"""Model and spool paths of cameras.yaml: one with a NUL or a control character is refused with the key path and
the line; where a path points (``../``, absolute) stays the operator's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config, parse_config

CONFIG = """\
version: 1
engine:
  device: cpu
  {field}: {value}
cameras:
  - id: cam-1
    name: Silom
    url: rtsp://10.0.0.4/main
"""


@pytest.mark.parametrize("field", ["detector_model", "plate_detector_model", "face_model_pack", "spool_dir"])
@pytest.mark.parametrize(("value", "said"), [('"yolo/\\0evil.onnx"', "a NUL"),
                                             ('"yolo/a\\nb.onnx"', "a control character (U+000A)"),
                                             ('"yolo/a\\tb.onnx"', "a control character (U+0009)"),
                                             ('"yolo/a\\x1bb.onnx"', "a control character (U+001B)")])
def test_a_path_with_a_control_character_is_refused_naming_field_and_line(tmp_path: Path, field: str, value: str,
                                                                          said: str) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(CONFIG.format(field=field, value=value))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"  {path}:4: engine.{field}: the path holds {said}"), lines[1]
    assert "\n" not in lines[1] and "\x00" not in str(err.value) and "\x1b" not in str(err.value)


@pytest.mark.parametrize("value", ["../outside/det.onnx", "/opt/models/det.onnx", "yolo/Thai ชื่อ.onnx"])
def test_an_operator_chosen_source_path_is_accepted(value: str) -> None:
    config = parse_config(CONFIG.format(field="detector_model", value=f'"{value}"'))
    assert config.engine.detector_model == value
