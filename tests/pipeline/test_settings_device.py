"""``CCTV_DEVICE`` takes only the devices the models know (auto, cpu, cuda): anything else is one line naming the
variable, exit 2 from the CLI, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import SettingsError, get_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda"])
def test_the_known_devices_are_accepted(monkeypatch: pytest.MonkeyPatch, fresh_settings: None, value: str) -> None:
    monkeypatch.setenv("CCTV_DEVICE", value)
    assert get_settings().device == value


@pytest.mark.parametrize("value", ["gpu", "cuda:0", "CPU", "", "cpu\nCCTV_FORGED: x"])
def test_another_device_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, fresh_settings: None,
                                                        value: str) -> None:
    monkeypatch.setenv("CCTV_DEVICE", value)
    with pytest.raises(SettingsError) as err:
        get_settings()
    problems = str(err.value).splitlines()[1:]
    assert len(problems) == 1 and problems[0].startswith("  CCTV_DEVICE: Input should be 'auto', 'cpu' or 'cuda'")


def test_cli_refuses_a_bad_device_with_exit_2_and_one_line() -> None:
    """A bad port comes with it, so that the command never runs, whatever the device check does."""
    env = {**os.environ, "CCTV_DEVICE": "cuda:1", "CCTV_REDIS_PORT": "abc"}
    run = subprocess.run([sys.executable, "-m", "pipeline", "redis-setup"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(line for line in run.stderr.splitlines() if "CCTV_" in line) == [
        "  CCTV_DEVICE: Input should be 'auto', 'cpu' or 'cuda' (got 'cuda:1')",
        "  CCTV_REDIS_PORT: Input should be a valid integer, unable to parse string as an integer (got 'abc')"]
