"""The naive baseline's per-plate reader wrapper reads like the batched reader, including the second read's
network outputs (a crash there once stopped three of the eight baseline processes)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from benchmarks.throughput import _PerItem
from pipeline.engine.process import load_plate_reader_or_none
from pipeline.plates.layout import CAR, MOTORCYCLE


@pytest.mark.timeout(300)
def test_per_item_reader_matches_the_batched_reader(shared_dir: Path) -> None:
    reader = load_plate_reader_or_none("crnn", device="cpu")
    assert reader is not None
    folder = shared_dir / "data" / "plates_thai" / "images"
    crops = [cv2.imread(str(folder / f"train_{i:05d}.jpg")) for i in range(4)]
    layouts = [CAR, CAR, MOTORCYCLE, "auto"]
    batched_out: dict = {}
    naive_out: dict = {}
    batched = reader.read_batch(crops, layouts, outputs=batched_out)
    naive = _PerItem(reader).read_batch(crops, layouts, outputs=naive_out)
    assert [r.text for r in naive] == [r.text for r in batched]
    assert set(naive_out) == set(batched_out)  # outputs keyed by the crop's index in the whole batch
    views = [[crop, cv2.resize(crop, None, fx=1.1, fy=1.1)] for crop in crops[:2]]
    known = {(k, form): batched_out[(k, form)] for k in range(2) for form in (CAR, MOTORCYCLE)
             if (k, form) in batched_out}
    assert [r.text for r in _PerItem(reader).read_views(views, layouts[:2], known=known)] == \
        [r.text for r in reader.read_views(views, layouts[:2], known=known)]


def test_per_item_wrapper_takes_every_argument_of_the_models_it_wraps() -> None:
    """The baseline crashed on ``look_again(..., tiles=...)`` after the plate detector gained ``tiles``: every
    wrapped method must accept the parameters of the real one (the engine passes them by name)."""
    import inspect

    from pipeline.models.faces import FaceAnalyzer
    from pipeline.models.plate_detector import PlateDetector
    from pipeline.models.yolo import YoloOnnxDetector
    from pipeline.plates.crnn_backend import CrnnPlateReader
    from pipeline.plates.rectifier import PlateRectifier

    for model in (PlateDetector, YoloOnnxDetector, FaceAnalyzer, CrnnPlateReader, PlateRectifier):
        for name in ("detect_batch", "look_again", "read_batch", "read_views", "rectify_batch"):
            if not hasattr(model, name):
                continue
            real = set(inspect.signature(getattr(model, name)).parameters) - {"self"}
            wrapped = inspect.signature(getattr(_PerItem, name)).parameters
            takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in wrapped.values())
            missing = real - set(wrapped) - {"self"}
            assert takes_any or not missing, f"_PerItem.{name} lacks {sorted(missing)} of {model.__name__}.{name}"
