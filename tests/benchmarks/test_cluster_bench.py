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
