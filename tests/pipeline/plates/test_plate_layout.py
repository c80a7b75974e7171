"""Plate layouts (``pipeline.plates.layout``): a three-line motorcycle crop re-laid into the two-line car form the
reader reads, checked with synthetic band images whose colours show where every band lands, and on real crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.plates.dataset import read_labels
from pipeline.plates.layout import (
    CAR,
    GAP,
    LAYOUTS,
    MOTO_BANDS,
    MOTORCYCLE,
    REGISTRATION_SHARE,
    car_to_motorcycle_form,
    motorcycle_to_car_form,
    series_gap,
    to_reader_form,
)

RED, GREEN, BLUE, WHITE, GREY = (0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (128, 128, 128)


def three_bands(h: int = 168, w: int = 192) -> np.ndarray:
    """A motorcycle-like crop: red above the province band (the top line's own part), green over the province
    band (:data:`MOTO_BANDS` overlap: the overlaps are green), blue below it (the number line's own part), a white
    marker at the left end of the top line and one at the right end of the number line."""
    img = np.empty((h, w, 3), np.uint8)
    _, (prov_lo, prov_hi), _ = MOTO_BANDS
    img[: int(round(prov_lo * h))] = RED
    img[int(round(prov_lo * h)): int(round(prov_hi * h))] = GREEN
    img[int(round(prov_hi * h)):] = BLUE
    img[int(0.05 * h): int(0.2 * h), int(0.05 * w): int(0.2 * w)] = WHITE
    img[int(0.8 * h): int(0.95 * h), int(0.8 * w): int(0.95 * w)] = WHITE
    return img


def share(region: np.ndarray, colour: tuple[int, int, int]) -> float:
    """Share of the pixels of ``region`` that have ``colour`` (within 40 levels per channel)."""
    return float((np.abs(region.astype(np.int16) - np.int16(colour)).max(axis=-1) <= 40).mean())


@pytest.mark.parametrize("out_hw", [(64, 128), (72, 144), (50, 101)])
def test_output_has_the_asked_size_and_type(out_hw: tuple[int, int]) -> None:
    out = motorcycle_to_car_form(three_bands(), out_hw)
    assert out.shape == (*out_hw, 3) and out.dtype == np.uint8


def test_top_and_bottom_lines_go_side_by_side_above_the_province() -> None:
    """The series (top line) fills the upper-left, the number (bottom line) the upper-right, the province the
    lower part, all across the width; the split lies at :data:`REGISTRATION_SHARE` of the height."""
    oh, ow = 64, 128
    out = motorcycle_to_car_form(three_bands(), (oh, ow))
    reg = int(round(oh * REGISTRATION_SHARE))
    half = (ow - int(round(ow * GAP))) // 2
    upper_left, upper_right = out[: reg - 2, : half], out[: reg - 2, ow - half:]
    lower = out[reg + 2:]
    assert share(upper_left, RED) > 0.6 and share(upper_left, BLUE) == 0.0 and share(upper_left, GREEN) < 0.25
    assert share(upper_right, BLUE) > 0.6 and share(upper_right, RED) == 0.0 and share(upper_right, GREEN) < 0.25
    assert share(lower, GREEN) > 0.6 and share(lower, RED) == 0.0 and share(lower, BLUE) == 0.0
    # the bands are cut at MOTO_BANDS: the top line's band ends before the green province band's own part, so the
    # top of the upper-left quarter is pure red and the bottom of the upper-right pure blue
    assert share(out[: reg // 2, : half], RED) > 0.75
    assert share(out[reg // 2: reg - 1, ow - half:], BLUE) > 0.75


def test_left_to_right_order_is_kept() -> None:
    """Nothing is mirrored: the marker at the start of the top line is at the far left of the registration line,
    the one at the end of the number line at its far right."""
    oh, ow = 64, 128
    out = motorcycle_to_car_form(three_bands(), (oh, ow))
    white = (np.abs(out.astype(np.int16) - 255).max(axis=-1) <= 40)
    ys, xs = np.nonzero(white)
    assert len(xs) > 10
    left, right = xs < ow // 2, xs >= ow // 2
    assert left.any() and right.any()
    assert xs[left].max() < ow * 0.25 and xs[right].min() > ow * 0.75
    reg = oh * REGISTRATION_SHARE
    assert ys.max() < reg  # both markers are in the registration line


def test_gap_is_filled_with_the_plate_background() -> None:
    """The blank between the two halves takes the crop's median colour (the plate's background), not black."""
    crop = np.full((168, 192, 3), WHITE, np.uint8)
    crop[10:40, 20:170] = RED  # "characters" on every line, the background stays the majority
    crop[70:90, 20:170] = GREEN
    crop[120:160, 20:170] = BLUE
    out = motorcycle_to_car_form(crop, (64, 128))
    gap = int(round(128 * GAP))
    half = (128 - gap) // 2
    reg = int(round(64 * REGISTRATION_SHARE))
    between = out[:reg, half: 128 - half]
    assert between.shape[1] >= gap > 0
    assert share(between, WHITE) == 1.0
    assert share(out[:reg, :half], RED) > 0.2 and share(out[:reg, 128 - half:], BLUE) > 0.2


def test_real_motorcycle_crops_are_cut_into_their_bands(shared_dir: Path) -> None:
    """On real crops the upper-left of the car form is the crop's top band, the upper-right its bottom band and
    the lower part its province band, each resized on its own (and the two halves differ: not one band twice)."""
    samples = read_labels(shared_dir / "data" / "plates_thai_moto" / "labels.csv")
    oh, ow = 64, 128
    reg = int(round(oh * REGISTRATION_SHARE))
    half = (ow - int(round(ow * GAP))) // 2
    for s in samples[:10]:
        crop = cv2.imread(str(s.path))
        assert crop is not None
        out = motorcycle_to_car_form(crop, (oh, ow)).astype(np.float32)
        h = crop.shape[0]
        top, prov, bottom = (crop[int(round(lo * h)):int(round(hi * h))] for lo, hi in MOTO_BANDS)

        def fit(band: np.ndarray, width: int, height: int) -> np.ndarray:
            shrink = band.shape[0] > height or band.shape[1] > width
            return cv2.resize(band, (width, height),
                              interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR).astype(np.float32)

        assert np.abs(out[:reg, :half] - fit(top, half, reg)).max() == 0
        assert np.abs(out[:reg, ow - half:] - fit(bottom, half, reg)).max() == 0
        assert np.abs(out[reg:] - fit(prov, ow, oh - reg)).max() == 0
        assert np.abs(out[:reg, :half] - out[:reg, ow - half:]).mean() > 5


def test_to_reader_form_dispatches_on_the_layout() -> None:
    """Car crops are only resized, motorcycle crops re-laid; an unknown layout is refused with the known ones."""
    crop = three_bands()
    car = to_reader_form(crop, CAR, (64, 128))
    assert car.shape == (64, 128, 3)
    assert np.array_equal(car, cv2.resize(crop, (128, 64), interpolation=cv2.INTER_AREA))
    assert np.array_equal(to_reader_form(crop, MOTORCYCLE, (64, 128)), motorcycle_to_car_form(crop, (64, 128)))
    assert set(LAYOUTS) == {CAR, MOTORCYCLE}
    for bad in ("auto", "truck", "", "Car"):
        with pytest.raises(ValueError, match="unknown plate layout") as err:
            to_reader_form(crop, bad, (64, 128))
        assert "car" in str(err.value) and "motorcycle" in str(err.value)


def test_small_crops_do_not_crash() -> None:
    """A crop a few pixels tall still gives a full-size car form (every band at least one row)."""
    for hw in ((2, 2), (3, 4), (7, 30)):
        out = motorcycle_to_car_form(np.full((*hw, 3), 90, np.uint8), (64, 128))
        assert out.shape == (64, 128, 3) and (out == 90).all()


def test_one_pixel_tall_crop_does_not_crash() -> None:
    """A 1-pixel-tall crop (a degenerate detector box read with layout ``auto``) should give a car form too."""
    out = motorcycle_to_car_form(np.full((1, 40, 3), 90, np.uint8), (64, 128))
    assert out.shape == (64, 128, 3)


def _text_line(series: str, number: str, h: int = 60) -> np.ndarray:
    """A white registration line with dark blocks for characters: ``series`` blocks, a wide gap, ``number``."""
    w = 300
    img = np.full((h, w, 3), 235, np.uint8)
    for k, ch in enumerate(series + " " + number):
        if ch != " ":
            img[10:50, 10 + 26 * k + 3:10 + 26 * k + 22] = 20
    return img


def test_series_gap_finds_the_blank_between_series_and_number() -> None:
    line = _text_line("1กข", "1234")
    gap = series_gap(line)
    assert gap is not None and 10 + 3 * 26 <= gap <= 10 + 4 * 26 + 3  # inside the blank character slot
    solid = np.full((60, 300, 3), 235, np.uint8)
    solid[10:50, 10:290] = 20  # ink without any blank column: no gap to cut at
    assert series_gap(solid) is None


def test_car_plates_become_motorcycle_plates_with_their_own_characters(shared_dir: Path) -> None:
    samples = [s for s in read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")[:400]
               if len(s.label) == 7 and s.label[0].isdigit() and not s.label[1].isdigit()]
    assert len(samples) >= 40
    made = 0
    for sample in samples[:60]:
        crop = cv2.imread(str(sample.path))
        moto = car_to_motorcycle_form(crop, 4)
        if moto is None:
            continue
        made += 1
        assert moto.shape == (112, 128, 3)
        # three lines of ink: series on top, province in the middle, number at the bottom, blank between them
        grey = cv2.cvtColor(moto, cv2.COLOR_BGR2GRAY)
        rows = (grey < grey.mean() - 40).mean(1)
        assert rows[15:40].max() > 0.15 and rows[72:105].max() > 0.15
    assert made >= 0.6 * 60
    # a plate whose number has a digit count the gap model does not know is not used
    assert car_to_motorcycle_form(cv2.imread(str(samples[0].path)), 1) is None
