"""``benchmarks.throughput --engine-set``: engine settings of the measured engine, checked before anything runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import report, throughput


def test_engine_setting_reads_yaml_values() -> None:
    assert report.engine_setting("plate_search=all_windows") == ("plate_search", "all_windows")
    assert report.engine_setting("plate_second_look=false") == ("plate_second_look", False)
    assert report.engine_setting(" max_batch_size = 4") == ("max_batch_size", 4)


@pytest.mark.parametrize("text", ["plate_search", "=coarse_first", ""])
def test_engine_setting_without_key_and_value_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        report.engine_setting(text)


@pytest.mark.parametrize("setting", ["plate_search=everything", "no_such_field=1", "max_batch_size=0"])
def test_an_invalid_engine_setting_stops_before_any_run(setting: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        throughput.main(["--mode", "files", "--engine-set", setting])
    assert exc.value.code == 2
    assert "--engine-set" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_keep_every_below_one_is_refused_before_any_run(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        throughput.main(["--mode", "files", "--keep-every", value])
    assert exc.value.code == 2
    assert "--keep-every" in capsys.readouterr().err


def test_barrier_waits_for_every_process_and_times_out_with_the_count(tmp_path: Path) -> None:
    from benchmarks.throughput import wait_at_barrier

    (tmp_path / "ready-1").touch()  # another process is already there
    assert wait_at_barrier(tmp_path, 2) >= 0.0
    with pytest.raises(TimeoutError, match="2 of 3 processes ready"):
        wait_at_barrier(tmp_path, 3, timeout_s=0.05)


def test_barrier_is_refused_outside_file_mode() -> None:
    with pytest.raises(SystemExit):
        throughput.main(["--barrier", "/tmp/x", "--mode", "live"])
    with pytest.raises(SystemExit):
        throughput.main(["--barrier-count", "0", "--mode", "files"])
