"""The face benchmark's metrics (TAR at FAR, rank-1) and its labels reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.faces import rank1, read_labels, tar_at_far


def test_tar_at_far_accepts_at_most_that_fraction_of_impostors() -> None:
    impostor = np.linspace(0.0, 0.5, 1000)
    genuine = np.array([0.9, 0.8, 0.45, 0.3])
    tar, threshold = tar_at_far(genuine, impostor, 1e-2)
    assert (impostor > threshold).mean() <= 1e-2
    assert (impostor >= threshold).mean() > 1e-2  # the loosest such threshold
    assert tar == pytest.approx(2 / 4)
    tar3, threshold3 = tar_at_far(genuine, impostor, 1e-3)
    assert threshold3 >= threshold and (impostor > threshold3).mean() <= 1e-3 and tar3 == pytest.approx(2 / 4)


def test_rank1_enrols_the_first_photo_of_each_identity() -> None:
    a, b, c = np.eye(3, dtype=np.float32)
    near_a = (a + 0.1 * b) / np.linalg.norm(a + 0.1 * b)
    near_b = (b + 0.6 * a) / np.linalg.norm(b + 0.6 * a)
    embeddings = [a, b, None, near_a, near_b, c]
    labels = ["x", "y", "y", "x", "x", "z"]  # near_b is labelled x but is closer to y: a miss
    rate, probes = rank1(embeddings, labels)
    assert probes == 2 and rate == pytest.approx(0.5)


def test_labels_reader_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("path,identity\na.jpg,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="labels.csv.*relative_path,label"):
        read_labels(bad)
    bad.write_text("relative_path,label\na.jpg,x\nb.jpg,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="labels.csv:3"):
        read_labels(bad)
    bad.write_text("relative_path,label\nimg/a.jpg,x\n", encoding="utf-8")
    assert read_labels(bad) == [(tmp_path / "img/a.jpg", "x")]
