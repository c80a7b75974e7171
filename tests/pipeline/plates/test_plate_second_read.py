"""Second read of uncertain plates (:mod:`pipeline.plates.second_read`): the CTC likelihood, the margin views and
the gain on real held-out plates with the shipped rectifier and reader."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from benchmarks.plates import read_crop_batch, with_reading_pad
from pipeline.plates.collage import edge_cut
from pipeline.plates.dataset import plate_disjoint_split, read_labels
from pipeline.plates.geometry import reading_pad_pixels
from pipeline.plates.grammar import normalise_plate
from pipeline.plates.reader import PlateRead, load_plate_reader
from pipeline.plates.rectifier import PlateRectifier, RectifiedPlate, load_plate_rectifier
from pipeline.plates.second_read import (
    MARGIN_VIEWS,
    ctc_log_likelihood,
    margin_views,
    needs_second_read,
    read_plates,
    slant_views,
    unread,
)

REPO = Path(__file__).resolve().parents[3]


def brute_force_likelihood(probs: np.ndarray, text: str, charset: str) -> float:
    """``P(text)`` summed over every frame path that collapses to it (blank 0): the definition of CTC."""
    total = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        collapsed = [k for i, k in enumerate(path) if k != 0 and (i == 0 or k != path[i - 1])]
        if "".join(charset[k - 1] for k in collapsed) == text:
            total += float(np.prod(probs[np.arange(len(path)), path]))
    return total


def test_ctc_likelihood_equals_the_sum_over_alignments() -> None:
    rng = np.random.default_rng(3)
    charset = "ab"
    views = rng.dirichlet(np.ones(3), size=(2, 6))  # 2 views, 6 frames, blank + 2 characters
    texts = ["a", "ab", "aa", "aba", "bb", "abab"]  # doubled letters need a blank between them
    got = np.exp(ctc_log_likelihood(views, texts, charset))
    want = np.array([[brute_force_likelihood(v, t, charset) for t in texts] for v in views])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_ctc_likelihood_of_an_impossible_text_is_negligible() -> None:
    probs = np.zeros((1, 4, 3))
    probs[0, :, 1] = 1.0  # every frame is "a": "aa" needs a blank in between and "b" never appears
    ll = ctc_log_likelihood(probs, ["a", "aa", "b"], "ab")[0]
    assert ll[0] == pytest.approx(0.0, abs=1e-9)
    assert ll[1] < -100 and ll[2] < -100


@pytest.fixture(scope="module")
def reader() -> Any:
    return load_plate_reader("crnn", REPO / "models" / "plate_reader", device="cpu")


@pytest.fixture(scope="module")
def rectifier() -> PlateRectifier:
    return load_plate_rectifier(REPO / "models" / "plate_rectifier", device="cpu")


def held_out(shared_dir: Path, name: str, fraction: float, every: int = 1) -> tuple[list[np.ndarray], list[str]]:
    """Reading crops (tight crop grown by the engine's reading pad) of a plate-disjoint validation split."""
    samples = read_labels(shared_dir / "data" / name / "labels.csv")
    _, val = plate_disjoint_split(samples, fraction, 0)
    pick = val[::every]
    return [with_reading_pad(cv2.imread(str(samples[i].path))) for i in pick], [samples[i].label for i in pick]


def exact(reads: list[PlateRead], labels: list[str]) -> int:
    return sum(normalise_plate(r.text) == normalise_plate(gt) for r, gt in zip(reads, labels, strict=True))


def test_margin_views_frame_the_same_plate(rectifier: PlateRectifier, shared_dir: Path) -> None:
    crops, _ = held_out(shared_dir, "plates_thai_moto", 0.5, every=13)
    for crop, rect in zip(crops, rectifier.rectify_batch(crops), strict=True):
        views = margin_views(crop, rect)
        assert len(views) == len(MARGIN_VIEWS) and rect.applied
        assert all(v.shape == rect.image.shape for v in views)
        tight, loose = (cv2.cvtColor(v, cv2.COLOR_BGR2GRAY).astype(np.float32) for v in views)
        assert not np.array_equal(tight, loose)
    passed = RectifiedPlate(crops[0], np.zeros((4, 2), np.float32), "auto", 0.0, False)
    assert margin_views(crops[0], passed) == []


def edge_cut_held_out(shared_dir: Path, every: int = 2) -> tuple[list[np.ndarray], list[str]]:
    """Held-out car crops cut through their first or last character, 60 % of it left, with the reading pad on the
    other sides (:func:`pipeline.plates.collage.edge_cut`): plates at a frame edge, which the reader reads less
    surely than whole ones."""
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    _, val = plate_disjoint_split(samples, 0.15, 0)
    crops, labels = [], []
    for k, i in enumerate(val[::every]):
        crop = cv2.imread(str(samples[i].path))
        cut = edge_cut(crop, samples[i].label, 0.6, "left" if k % 2 == 0 else "right",
                       reading_pad_pixels(crop.shape))
        if cut is not None:
            crops.append(cut)
            labels.append(samples[i].label)
    return crops, labels


def test_second_read_gains_on_uncertain_plates(reader: Any, rectifier: PlateRectifier, shared_dir: Path) -> None:
    """Plates cut at a frame edge, never seen in training: the shipped (stage-7) reader reads 256 of all 303 with
    one read, 268 with the second; at least two more exact, and none of the plates the first read got right and read
    confidently touched. All 303, not a half: the gain is not spread evenly (stage 7 on ``val[::2]``: 134 -> 133,
    on the other half +13), so a half is too small a sample for it. (On the 52 held-out motorcycle plates, before
    the reader trained on them, the second read took 33 to 37: see the reader's model card.)"""
    crops, labels = edge_cut_held_out(shared_dir, every=1)
    assert len(crops) >= 100
    first, rectified = read_crop_batch(crops, reader, "car", rectifier, second_read=False)
    second, _ = read_crop_batch(crops, reader, "car", rectifier, second_read=True)
    assert exact(second, labels) >= exact(first, labels) + 2, (exact(first, labels), exact(second, labels))
    again = [needs_second_read(rd, r) for rd, r in zip(first, rectified, strict=True)]
    assert 0 < sum(again) < len(crops)
    for a, b, was_due in zip(first, second, again, strict=True):
        if not was_due or not b.valid:  # read confidently, or no view found a valid registration: first read kept
            assert b.text == a.text and b.confidence == a.confidence
        else:
            assert b.layout == a.layout and 0.0 < b.confidence <= 1.0
            assert len(b.char_confidences) == len(b.text) and b.candidates[0][0] == b.text


def test_second_read_keeps_car_plates(reader: Any, rectifier: PlateRectifier, shared_dir: Path) -> None:
    """Held-out car crops through the rectifier: few are read again and no fewer are exact."""
    crops, labels = held_out(shared_dir, "plates_thai", 0.15, every=4)
    first, rectified = read_crop_batch(crops, reader, "car", rectifier, second_read=False)
    second, _ = read_crop_batch(crops, reader, "car", rectifier, second_read=True)
    assert exact(second, labels) >= exact(first, labels)
    assert sum(needs_second_read(rd, r) for rd, r in zip(first, rectified, strict=True)) < 0.2 * len(crops)


def test_read_plates_without_views_support_keeps_the_first_reads(rectifier: PlateRectifier,
                                                                 shared_dir: Path) -> None:
    """A reader without ``read_views`` (EasyOCR) gets one read per plate, even an uncertain one."""

    class OneLook:
        calls = 0

        def read_batch(self, crops: list[np.ndarray], layouts: list[str] | None = None) -> list[PlateRead]:
            OneLook.calls += 1
            return [PlateRead("กข12", 0.1, [0.1] * 4, valid=True) for _ in crops]

    crops, _ = held_out(shared_dir, "plates_thai_moto", 0.5, every=20)
    rectified = rectifier.rectify_batch(crops)
    reads = read_plates(OneLook(), crops, rectified, ["car"] * len(crops))
    assert [r.text for r in reads] == ["กข12"] * len(crops) and OneLook.calls == 1


def rolled(crop: np.ndarray, degrees: float) -> np.ndarray:
    """``crop`` turned in the image plane by ``degrees`` (counter-clockwise) on a grey canvas that holds all of it."""
    h, w = crop.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    size = (int(h * s + w * c), int(h * c + w * s))
    m[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    return cv2.warpAffine(crop, m, size, borderMode=cv2.BORDER_CONSTANT, borderValue=(110, 110, 110))


@pytest.mark.parametrize("degrees", [90.0, -75.0])
def test_turned_look_reads_plates_rolled_past_the_rectifier(reader: Any, rectifier: PlateRectifier,
                                                            shared_dir: Path, degrees: float) -> None:
    """Held-out car plates standing on their end (the rectifier is trained up to 35 degrees of roll): unread without
    the turned look (measured 0 and 1 of 98), read with it (98 and 96 of 98)."""
    crops, labels = held_out(shared_dir, "plates_thai", 0.15, every=40)
    crops = [rolled(c, degrees) for c in crops]
    rectified = rectifier.rectify_batch(crops)
    without = read_plates(reader, crops, rectified, ["car"] * len(crops))
    turned = read_plates(reader, crops, rectified, ["car"] * len(crops), rectifier=rectifier)
    assert exact(without, labels) <= 0.2 * len(crops)
    assert exact(turned, labels) >= 0.8 * len(crops), [r.text for r in turned]


def test_deslant_uprights_a_sheared_plate(rectifier: PlateRectifier, shared_dir: Path) -> None:
    """A rectified plate sheared by a known factor comes back (nearly) upright: the chosen shear undoes it."""
    crops, _ = held_out(shared_dir, "plates_thai", 0.15, every=120)
    for crop in crops:
        image = rectifier.rectify_batch([crop])[0].image
        h, w = image.shape[:2]
        sheared = cv2.warpAffine(image, np.float32([[1, 0.6, -0.3 * h], [0, 1, 0]]), (w, h),
                                 borderMode=cv2.BORDER_REPLICATE)
        back = slant_views(sheared, neighbours=0)[0]
        grey = [cv2.cvtColor(v, cv2.COLOR_BGR2GRAY).astype(np.float32) for v in (image, sheared, back)]
        inner = np.s_[int(0.1 * h):int(0.6 * h), int(0.2 * w):int(0.8 * w)]
        assert np.abs(grey[2][inner] - grey[0][inner]).mean() < np.abs(grey[1][inner] - grey[0][inner]).mean()


def test_only_unread_plates_in_crops_large_enough_get_the_turned_look() -> None:
    bad, good = PlateRead("ก4", 0.01, [0.5, 0.5], valid=True), PlateRead("1กข1234", 0.6, [0.9] * 7, valid=True)
    invalid = PlateRead("79", 0.9, [0.9, 0.9], valid=False)
    big, small = np.zeros((60, 30, 3), np.uint8), np.zeros((26, 19, 3), np.uint8)
    assert unread(bad, big) and unread(invalid, big)
    assert not unread(good, big) and not unread(bad, small)


def test_read_views_reuses_the_first_views_outputs(reader: Any, rectifier: PlateRectifier, shared_dir: Path) -> None:
    """Outputs left by ``read_batch`` stand in for the first view: the same reads, one network pass fewer each."""
    crops, _ = held_out(shared_dir, "plates_thai_moto", 0.5, every=6)
    rectified = rectifier.rectify_batch(crops)
    views = [[r.image, *margin_views(c, r)] for c, r in zip(crops, rectified, strict=True)]
    layouts = ["motorcycle"] * (len(crops) - 1) + ["auto"]
    outputs: dict[tuple[int, str], Any] = {}
    reader.read_batch([v[0] for v in views], layouts, outputs=outputs)
    assert set(outputs) >= {(len(crops) - 1, "car"), (len(crops) - 1, "motorcycle"), (0, "motorcycle")}
    fresh = reader.read_views(views, layouts)
    reused = reader.read_views(views, layouts, known=outputs)
    assert [(r.text, r.layout) for r in reused] == [(r.text, r.layout) for r in fresh]
    np.testing.assert_allclose([r.confidence for r in reused], [r.confidence for r in fresh], rtol=1e-4)
