"""The README's lines about /api/health and /metrics say what they give now (camera counts; per-camera metrics)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _paragraph_with(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", README.read_text(encoding="utf-8"))
    hits = [p for p in paragraphs if text in p]
    assert hits, f"README has no paragraph with {text!r}"
    return " ".join(" ".join(hits).split())


def test_readme_metrics_line_names_the_camera_metrics() -> None:
    paragraph = _paragraph_with("/metrics")
    assert "cctv_camera_up" in paragraph
    assert "cctv_camera_last_frame_age_seconds" in paragraph


def test_readme_health_line_says_counts_degraded_and_503_only_for_redis() -> None:
    paragraph = _paragraph_with("/api/health")
    for state in ("online", "offline", "stale", "unknown"):
        assert state in paragraph, state
    assert re.search(r"200 `?degraded", paragraph), paragraph
    assert re.search(r"503[^.;]*only when Redis is down", paragraph), paragraph
