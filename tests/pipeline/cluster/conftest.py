"""Fixtures for the multi-worker tests: real loopback RTSP cameras and `pipeline run --role worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.testcams import TestCameraServer

REPO = Path(__file__).resolve().parents[3]
CLIP = "short_hamilton_clip"  # 640x360, 10 s: the cheapest sample to serve


@pytest.fixture(scope="module")
def h264_cameras(shared_dir: Path) -> Iterator[TestCameraServer]:
    """RTSP server (H.264) for the short sample clip, per test module."""
    with TestCameraServer(shared_dir / "data" / "videos", 0, codec="h264", names=[CLIP]) as server:
        yield server


class Workers:
    """`python -m pipeline run --role worker` processes, each with its own recordings folder (its own "host")."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, worker_id: str, slots: int) -> subprocess.Popen:
        env = {**os.environ, "CCTV_REDIS_URL": self.redis_url, "CCTV_RECORDINGS_DIR": str(self.tmp_path / worker_id),
               "CCTV_HOST_NAME": f"host-{worker_id}"}  # fmt: skip
        env.pop("CCTV_REDIS_SENTINELS", None)
        log = self.tmp_path / f"{worker_id}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--role", "worker", "--worker-id",
                                     worker_id, "--slots", str(slots)], cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        self.procs[worker_id] = proc
        self.logs[worker_id] = log
        return proc

    def log(self, worker_id: str) -> str:
        return self.logs[worker_id].read_text(errors="replace")

    def kill(self, worker_id: str) -> None:
        """SIGKILL the worker's supervisor (a crashed host: its children notice their parent is gone)."""
        self.procs[worker_id].send_signal(signal.SIGKILL)
        self.procs[worker_id].wait(timeout=30)

    def stop_all(self) -> None:
        tree: list[psutil.Process] = []
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    tree += psutil.Process(proc.pid).children(recursive=True)
                except psutil.NoSuchProcess:
                    pass
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _, alive = psutil.wait_procs(tree, timeout=15)
        for leftover in alive:
            leftover.kill()


@pytest.fixture()
def workers(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes started by the test; all stopped (SIGTERM, then SIGKILL) afterwards."""
    group = Workers(redis_url, tmp_path)
    yield group
    group.stop_all()
