"""Fixtures for ingest tests: real loopback RTSP cameras serving the real footage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.testcams import TestCameraServer

CLIP = "short_hamilton_clip"  # 640x360, 10 s: the cheapest sample to decode


@pytest.fixture(scope="module")
def h264_cameras(shared_dir: Path) -> Iterator[TestCameraServer]:
    """RTSP server (H.264) for the short sample clip, per test module (its source stops afterwards)."""
    with TestCameraServer(shared_dir / "data" / "videos", 0, codec="h264", names=[CLIP]) as server:
        yield server
