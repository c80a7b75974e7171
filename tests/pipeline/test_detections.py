"""The Detections container: indexing, merging, offsets and validation."""

import numpy as np
import pytest

from pipeline.detections import Detections


def _two() -> Detections:
    return Detections(
        xyxy=[[0, 0, 10, 10], [5, 5, 25, 15]],
        confidence=[0.9, 0.4],
        class_id=[2, 0],
        data={"plate_text": ["1กข1234", None]},
    )


def test_parallel_arrays_and_defaults() -> None:
    det = _two()
    assert len(det) == 2
    assert det.tracker_id.tolist() == [-1, -1]
    assert det.area.tolist() == [100.0, 200.0]


def test_mask_selection_keeps_extras_aligned() -> None:
    det = _two()[np.array([False, True])]
    assert len(det) == 1
    assert det.class_id.tolist() == [0]
    assert det.data["plate_text"] == [None]


def test_merge_pads_missing_extras() -> None:
    other = Detections(xyxy=[[1, 1, 2, 2]], confidence=[0.5], class_id=[7], data={"embedding": [np.ones(4)]})
    merged = Detections.merge([_two(), Detections.empty(), other])
    assert len(merged) == 3
    assert merged.data["plate_text"] == ["1กข1234", None, None]
    assert merged.data["embedding"][0] is None and merged.data["embedding"][2].shape == (4,)


def test_offset_maps_crop_to_frame() -> None:
    shifted = _two().with_offset(100, 50)
    assert shifted.xyxy[0].tolist() == [100, 50, 110, 60]


def test_extras_of_wrong_length_rejected() -> None:
    with pytest.raises(ValueError, match="plate_text"):
        Detections(xyxy=[[0, 0, 1, 1]], confidence=[1], class_id=[0], data={"plate_text": []})
