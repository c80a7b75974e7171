"""benchmarks.cluster: the capacity arithmetic from a throughput result, the percentiles, and the report files
(JSON with the issue's keys, PNG plot) from a result; the measurements themselves run in tests/cluster/."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.cluster import capacity, flat, main, percentile, plot, print_table

THROUGHPUT = {"streams": 4, "fps_per_camera": 1.0, "analysed_fps": 4.0, "cpu_cores": 1.0,
              "engine_cpu_ms_per_frame": 200.0, "models_only_ms_per_frame": 180.0, "engine_ms_per_frame": 200.0,
              "latency_p95_s": 1.5}


def test_capacity_counts_servers_from_the_measured_cost_per_frame() -> None:
    cap = capacity(THROUGHPUT, city=500, fps=1.0)
    # 1 core / 4 frames/s = 0.25 core per camera at 1 fps; 2 cores x 75 % -> 6 cameras; 500/6 -> 84, +1 spare
    assert cap["cpu_server"]["cameras_per_server"] == 6 and cap["cpu_server"]["servers"] == 85
    # models: 200 ms x 0.9 = 180 ms CPU -> 6 ms on the GPU (30x): 750/6 = 125 cameras; the CPU rest is
    # 250 - 180 = 70 ms a frame: 16 x 0.75 x 1000 / 70 = 171 cameras -> GPU-bound, 125 a server, 4 + 1 servers
    assert cap["gpu_server"]["cameras_per_server"] == 125 and cap["gpu_server"]["bound"] == "gpu"
    assert cap["gpu_server"]["servers"] == 5
    assert capacity(THROUGHPUT, city=500, fps=2.0)["cpu_server"]["cameras_per_server"] == 3


GPU = {"gpu_measured": True, "engine_runtime": "torch", "engine_frames_per_s": 357.6, "engine_cpu_ms_per_frame": 31.5,
       "device": {"gpu_name": "NVIDIA H200"}, "models": {"host": {"cores": 16}},
       "parallel": [{"processes": 4, "frames_per_s": 240.2, "engine_cpu_ms_per_frame": 32.9},
                    {"processes": 8, "frames_per_s": 357.6, "engine_cpu_ms_per_frame": 35.0},
                    {"processes": 12, "error": "process 3: exit 1"}]}


def test_a_measured_gpu_run_replaces_the_assumed_gpu_row() -> None:
    cap = capacity(THROUGHPUT, city=500, fps=1.0, gpu=GPU)
    gpu = cap["gpu_server"]
    # rate: 357.6 x 0.75 / 1 fps = 268 cameras; cores: decode etc. 0.25 - 0.2 = 0.05 core a camera, engine 35 ms:
    # 16 x 0.75 / (0.035 + 0.05) = 141 cameras -> CPU-bound, 141 a server, 4 + 1 servers
    assert gpu["measured"] is True and gpu["cameras_per_server"] == 141 and gpu["bound"].startswith("cpu")
    assert gpu["servers"] == 5 and "NVIDIA H200 in a 16-core server" in gpu["kind"]
    assert any("measured by benchmarks.gpu" in a for a in cap["assumptions"])
    at_5 = capacity(THROUGHPUT, city=500, fps=5.0, gpu=GPU)["gpu_server"]
    assert at_5["cameras_per_server"] == 28  # 12 / (0.175 + 0.25) cores a camera at 5 fps
    unmeasured = capacity(THROUGHPUT, city=500, fps=1.0, gpu={**GPU, "gpu_measured": False})["gpu_server"]
    assert unmeasured["measured"] is False and unmeasured["cameras_per_server"] == 125  # the assumption again


def test_percentiles() -> None:
    assert percentile([], 95) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert abs(percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) - 4.8) < 1e-9


def test_report_has_the_issue_keys_and_a_plot(tmp_path: Path, capsys) -> None:
    failover = {"failover_s": [3.0, 4.0, 5.0], "write_gap_s": [6.0, 7.0, 8.0], "events_lost": 0,
                "events_duplicated": 0, "events_made": 900}
    handover = {"handover_online_s": [8.0, 9.0, 12.0], "handover_lease_s": [6.0, 6.5, 7.0]}
    result = flat(failover, handover, capacity(THROUGHPUT, 500, 1.0), {})
    assert result["failover_s"] == 4.0 and result["events_lost"] == 0 and result["events_duplicated"] == 0
    assert result["handover_p50_s"] == 9.0 and abs(result["handover_p95_s"] - 11.7) < 1e-9
    print_table(result)
    assert "85 servers" in capsys.readouterr().out
    plot(result, tmp_path / "cluster.png")
    assert (tmp_path / "cluster.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = flat(None, None, None, {"handover": "not measured"})
    assert empty["handover_p95_s"] is None and empty["failover_s"] is None
    plot(empty, tmp_path / "empty.png")


def test_command_line_with_nothing_to_measure_still_reports(tmp_path: Path) -> None:
    source = tmp_path / "throughput.json"
    source.write_text(json.dumps(THROUGHPUT))
    out = tmp_path / "cluster.json"
    assert main(["--failovers", "0", "--handovers", "0", "--throughput-json", str(source), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"handover_p95_s", "events_lost", "events_duplicated", "failover_s"} <= set(data)
    assert data["capacity"]["cpu_server"]["servers"] == 85 and data["notes"]["failover"].startswith("skipped")
    assert out.with_suffix(".png").exists()
