"""Motorcycle plates collaged from the real characters of car crops (``pipeline.plates.collage``), built from
real crops of the car training split."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.plates.collage import (
    MOTO_SERIES_ROWS,
    NUMBER_ROWS,
    PROVINCE_ROWS,
    SERIES_ROWS,
    GlyphBank,
    build_bank,
    character_boxes,
    collage_motorcycle,
    doubled_series,
    edge_cut,
    motorcycle_series_glyphs,
    random_motorcycle_label,
    restyle,
    split_characters,
    swap_series,
)
from pipeline.plates.dataset import PlateSample, plate_disjoint_split, read_labels
from pipeline.plates.grammar import DIGITS, THAI_CONSONANTS, is_motorcycle_registration, normalise_plate
from pipeline.plates.layout import motorcycle_to_car_form
from pipeline.plates.reader import load_plate_reader

N_CROPS = 400


@pytest.fixture(scope="module")
def car_train(shared_dir: Path) -> list[PlateSample]:
    """The first crops of the car training split (the trainer's split: the validation plates are never used)."""
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    train, _ = plate_disjoint_split(samples, 0.15, 0)
    return [samples[i] for i in train[:N_CROPS]]


@pytest.fixture(scope="module")
def bank(car_train: list[PlateSample]) -> GlyphBank:
    return build_bank(car_train)


def test_real_car_crops_split_into_their_characters(car_train: list[PlateSample]) -> None:
    """A crop splits into exactly as many character images as its label has characters, or not at all; a label
    one character longer than the plate never splits."""
    split = 0
    for s in car_train[:150]:
        crop = cv2.imread(str(s.path))
        pieces = split_characters(crop, len(s.label))
        if pieces is not None:
            split += 1
            assert len(pieces) == len(s.label)
            assert all(p.ndim == 3 and min(p.shape[:2]) >= 2 for p in pieces)
            # characters are taller than a fifth of the registration line and come left to right without overlap
            assert all(p.shape[0] >= 0.2 * 0.67 * crop.shape[0] for p in pieces)
        assert split_characters(crop, len(s.label) + 1) is None or pieces is None
    assert split >= 0.2 * 150, split


def test_bank_holds_every_digit_and_province_lines(bank: GlyphBank) -> None:
    assert all(bank.glyphs.get(d) for d in DIGITS)
    assert len([c for c in THAI_CONSONANTS if bank.glyphs.get(c)]) >= 25
    assert len(bank.provinces) >= 50
    assert all(line.shape[1] > line.shape[0] for line, _ in bank.provinces)  # a line of text, wider than tall


def test_labels_are_motorcycle_registrations_with_both_series_kinds() -> None:
    rng = np.random.default_rng(0)
    labels = [random_motorcycle_label(rng) for _ in range(3000)]
    assert all(is_motorcycle_registration(lbl) for lbl in labels)
    three = np.mean([not lbl[0].isdigit() for lbl in labels])
    assert 0.45 <= three <= 0.55, three
    assert set("".join(lbl[:3] for lbl in labels)) >= set(THAI_CONSONANTS)
    assert all(lbl[3] != "0" for lbl in labels)


def _band(img: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h = grey.shape[0]
    return grey[int(rows[0] * h):int(rows[1] * h)]


def test_collage_is_a_three_line_plate_where_the_real_ones_have_their_lines(bank: GlyphBank) -> None:
    """Ink in the series, province and number rows measured on the real crops, plain paper above and below; the re-laid
    car form has the series on the upper left, the number on the upper right."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        img, label, province = collage_motorcycle(bank, rng)
        assert is_motorcycle_registration(label)
        assert 0 <= province < 77
        h, w = img.shape[:2]
        assert 150 <= h < 190 and 1.05 * h <= w <= 1.55 * h and img.dtype == np.uint8
        margins = np.concatenate([_band(img, (0.0, SERIES_ROWS[0] - 0.02)).ravel(),
                                  _band(img, (NUMBER_ROWS[1] + 0.02, 1.0)).ravel()])
        paper = float(np.median(margins))
        assert np.percentile(margins, 2) > paper - 10  # nothing drawn above the series or below the number
        for rows in (SERIES_ROWS, PROVINCE_ROWS, NUMBER_ROWS):
            assert np.percentile(_band(img, rows), 2) < paper - 40, (label, rows)
        relaid = motorcycle_to_car_form(img, (64, 128))
        assert relaid.shape == (64, 128, 3)
        grey = cv2.cvtColor(relaid, cv2.COLOR_BGR2GRAY)
        assert grey[:40, :60].min() < grey[:40, :60].max() - 40 and grey[:40, 68:].min() < grey[:40, 68:].max() - 40


def test_a_given_label_is_drawn_with_its_own_characters(bank: GlyphBank) -> None:
    """The same label twice gives two different plates (other character images, sizes and paper)."""
    label = next(lbl for lbl in ("1กข1234", "2กค567", "กขง89") if all(bank.glyphs.get(c) for c in lbl))
    a, la, _ = collage_motorcycle(bank, np.random.default_rng(1), label)
    b, lb, _ = collage_motorcycle(bank, np.random.default_rng(2), label)
    assert la == lb == label
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_doubled_series_repeats_a_real_letter_in_place(car_train: list[PlateSample]) -> None:
    """A crop with the series ``XY`` becomes ``XX`` (or ``YY``): only the replaced letter's box changes, and it
    holds the other letter's real image."""
    made = 0
    for s in car_train[:120]:
        crop = cv2.imread(str(s.path))
        for first in (True, False):
            result = doubled_series(crop, s.label, first)
            if result is None:
                continue
            made += 1
            image, label = result
            i = next(k for k in range(len(s.label) - 1) if s.label[k] in THAI_CONSONANTS
                     and s.label[k + 1] in THAI_CONSONANTS and s.label[k] != s.label[k + 1])
            letter = s.label[i] if first else s.label[i + 1]
            assert label == s.label[:i] + letter + letter + s.label[i + 2:]
            assert image.shape == crop.shape
            boxes = character_boxes(crop, len(s.label))
            x0, y0, x1, y1 = boxes[i + 1 if first else i]
            outside = np.ones(crop.shape[:2], bool)
            outside[y0:y1, x0:x1] = False
            assert np.array_equal(image[outside], crop[outside])
            sx0, sy0, sx1, sy1 = boxes[i if first else i + 1]
            pasted = cv2.resize(crop[sy0:sy1, sx0:sx1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
            assert np.array_equal(image[y0:y1, x0:x1], pasted)
    assert made >= 40, made


@pytest.mark.parametrize("label", ["กก1234", "1กก234", "12-3456", "ก1234"])
def test_a_series_without_two_different_letters_is_not_doubled(car_train: list[PlateSample], label: str) -> None:
    crop = cv2.imread(str(car_train[0].path))
    assert doubled_series(crop, label) is None


def test_edge_cut_leaves_the_asked_share_of_the_end_character(car_train: list[PlateSample]) -> None:
    """Cut through the first (last) character: the crop ends inside that character, ``keep`` of its tight width
    left, the rest of the crop untouched; keep 1 cuts at the character's edge."""
    made = 0
    for s in car_train[:80]:
        crop = cv2.imread(str(s.path))
        boxes = character_boxes(crop, len(s.label), margin=0.0)
        if boxes is None:
            assert edge_cut(crop, s.label, 0.5) is None
            continue
        made += 1
        (fx0, _, fx1, _), (lx0, _, lx1, _) = boxes[0], boxes[-1]
        for keep in (1.0, 0.5):
            left = edge_cut(crop, s.label, keep, "left")
            cut = round(fx1 - keep * (fx1 - fx0))
            assert left.shape == (crop.shape[0], crop.shape[1] - cut, 3)
            assert np.array_equal(left, crop[:, cut:])
            right = edge_cut(crop, s.label, keep, "right")
            assert np.array_equal(right, crop[:, :round(lx0 + keep * (lx1 - lx0))])
        # half a character: the cut column runs through its ink
        line = cv2.cvtColor(edge_cut(crop, s.label, 0.5, "left"), cv2.COLOR_BGR2GRAY)[: int(0.67 * crop.shape[0])]
        assert line[:, 0].min() < line.mean() - 30
    assert made >= 20, made


def test_edge_cut_pads_every_side_but_the_cut_one(car_train: list[PlateSample]) -> None:
    s = next(s for s in car_train if character_boxes(cv2.imread(str(s.path)), len(s.label)) is not None)
    crop = cv2.imread(str(s.path))
    bare = edge_cut(crop, s.label, 0.7, "left")
    padded = edge_cut(crop, s.label, 0.7, "left", pad=(9, 5))
    assert padded.shape == (crop.shape[0] + 10, bare.shape[1] + 9, 3)
    assert np.array_equal(padded[5:-5, :bare.shape[1]], bare)
    right = edge_cut(crop, s.label, 0.7, "right", pad=(9, 5))
    assert np.array_equal(right[5:-5, 9:], edge_cut(crop, s.label, 0.7, "right"))


@pytest.mark.parametrize(("keep", "side"), [(0.0, "left"), (1.2, "left"), (-0.1, "right"), (0.5, "top")])
def test_edge_cut_refuses_a_bad_share_or_side(car_train: list[PlateSample], keep: float, side: str) -> None:
    with pytest.raises(ValueError, match="keep|side"):
        edge_cut(cv2.imread(str(car_train[0].path)), car_train[0].label, keep, side)


@pytest.fixture(scope="module")
def moto_train(shared_dir: Path) -> list[PlateSample]:
    """The motorcycle training split of stage 2 (half the plates, split by plate string)."""
    samples = read_labels(shared_dir / "data" / "plates_thai_moto" / "labels.csv")
    train, _ = plate_disjoint_split(samples, 0.5, 0)
    return [samples[i] for i in train]


@pytest.fixture(scope="module")
def moto_glyphs(moto_train: list[PlateSample]) -> dict[str, list[np.ndarray]]:
    glyphs: dict[str, list[np.ndarray]] = {}
    for s in moto_train:
        for ch, images in motorcycle_series_glyphs(cv2.imread(str(s.path)), s.label).items():
            glyphs.setdefault(ch, []).extend(images)
    return glyphs


def test_motorcycle_series_lines_split_into_their_consonants(moto_train: list[PlateSample],
                                                            moto_glyphs: dict[str, list[np.ndarray]]) -> None:
    """Most real motorcycle series lines split into three characters; only consonants of the series are kept."""
    split = sum(character_boxes(cv2.imread(str(s.path)), 3, rows=MOTO_SERIES_ROWS) is not None for s in moto_train)
    assert split >= 0.4 * len(moto_train), (split, len(moto_train))
    series_letters = {ch for s in moto_train for ch in s.label[:3]}
    assert set(moto_glyphs) <= series_letters & set(THAI_CONSONANTS)
    assert len(moto_glyphs) >= 15, sorted(moto_glyphs)
    assert all(img.ndim == 3 and img.shape[0] >= 8 for images in moto_glyphs.values() for img in images)


def test_swapped_series_changes_only_series_boxes(moto_train: list[PlateSample],
                                                   moto_glyphs: dict[str, list[np.ndarray]]) -> None:
    """A swap keeps the number and the province band pixel for pixel, changes the series' letters to consonants
    of the bank (a leading digit too, giving three-consonant series), and draws them in the plate's own light."""
    rng = np.random.default_rng(0)
    made = three = 0
    for s in moto_train:
        crop = cv2.imread(str(s.path))
        result = swap_series(crop, s.label, moto_glyphs, rng)
        boxes = character_boxes(crop, 3, rows=MOTO_SERIES_ROWS)
        if boxes is None:
            assert result is None
            continue
        made += 1
        image, label = result
        assert image.shape == crop.shape
        assert label[3:] == s.label[3:] and is_motorcycle_registration(label), (s.label, label)
        changed = [i for i in range(3) if label[i] != s.label[i]]
        assert all(label[i] in moto_glyphs for i in changed)
        three += label[0] in THAI_CONSONANTS and s.label[0] in DIGITS
        outside = np.ones(crop.shape[:2], bool)
        for x0, y0, x1, y1 in boxes:
            outside[y0:y1, x0:x1] = False
        assert np.array_equal(image[outside], crop[outside])
        for i in changed:
            x0, y0, x1, y1 = boxes[i]
            old, new = (cv2.cvtColor(im[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY) for im in (crop, image))
            assert abs(float(np.percentile(new, 90)) - float(np.percentile(old, 90))) < 40
            assert abs(float(np.percentile(new, 3)) - float(np.percentile(old, 3))) < 40
    assert made >= 0.4 * len(moto_train) and three >= 3, (made, three)


def test_swapped_series_stay_legible(moto_train: list[PlateSample], moto_glyphs: dict[str, list[np.ndarray]]) -> None:
    """The shipped reader reads a good share of swapped plates as their new label (it reads the originals, which
    it trained on, nearly all): the pasted letters are letters, not smears."""
    rng = np.random.default_rng(1)
    made = [swap_series(cv2.imread(str(s.path)), s.label, moto_glyphs, rng) for s in moto_train]
    made = [m for m in made if m is not None]
    reader = load_plate_reader("crnn", Path(__file__).resolve().parents[3] / "models" / "plate_reader", device="cpu")
    reads = reader.read_batch([image for image, _ in made], ["motorcycle"] * len(made))
    right = sum(r.text == label for r, (_, label) in zip(reads, made, strict=True))
    assert right >= 0.3 * len(made), (right, len(made))


def test_swap_without_glyphs_or_series_is_refused(moto_train: list[PlateSample]) -> None:
    crop = cv2.imread(str(moto_train[0].path))
    assert swap_series(crop, moto_train[0].label, {}, np.random.default_rng(0)) is None
    assert swap_series(np.full((60, 80, 3), 200, np.uint8), "กขค12", {"ก": [crop[:10, :10]]},
                       np.random.default_rng(0)) is None


@pytest.mark.parametrize("style", ["red", "graphic"])
def test_restyle_keeps_the_strokes_dark_and_changes_the_paper(car_train: list[PlateSample], style: str) -> None:
    """A restyled crop keeps its characters where they were (dark on the new paper) and its paper takes the
    style's colours: red paper for a dealer plate, a picture of many colours for a vanity plate."""
    crop = cv2.imread(str(car_train[0].path))
    made = restyle(crop, style, np.random.default_rng(0))
    assert made.shape == crop.shape and made.dtype == np.uint8
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    ink, paper = grey <= np.percentile(grey, 5), grey >= np.percentile(grey, 80)
    brightest = made.max(axis=2).astype(np.float32)  # red paper is dark in grey, bright in its red channel
    assert brightest[ink].mean() + 60 < brightest[paper].mean()
    b, g, r = (made[paper][:, k].astype(np.float32) for k in range(3))
    if style == "red":
        assert r.mean() > 1.8 * max(g.mean(), b.mean())
    else:
        assert np.std(made[paper].astype(np.float32), axis=0).max() > 10  # not one flat colour


def test_restyled_plates_stay_legible(car_train: list[PlateSample]) -> None:
    """The shipped reader reads restyled crops of plates it trained on about as well as the originals."""
    crops = [cv2.imread(str(s.path)) for s in car_train[:60]]
    reader = load_plate_reader("crnn", Path(__file__).resolve().parents[3] / "models" / "plate_reader", device="cpu")
    labels = [normalise_plate(s.label) for s in car_train[:60]]

    def right(images: list[np.ndarray]) -> int:
        reads = reader.read_batch(images, ["car"] * len(images))
        return sum(normalise_plate(r.text) == label for r, label in zip(reads, labels, strict=True))

    original = right(crops)
    assert original >= 0.9 * len(crops)
    for style in ("red", "graphic"):
        made = right([restyle(c, style, np.random.default_rng(k)) for k, c in enumerate(crops)])
        assert made >= original - 3, (style, made, original)


def test_restyle_refuses_an_unknown_style(car_train: list[PlateSample]) -> None:
    with pytest.raises(ValueError, match="style"):
        restyle(cv2.imread(str(car_train[0].path)), "blue", np.random.default_rng(0))
