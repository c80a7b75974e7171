"""Synthetic plate renderer: label grammar, image sizes, styles, doubled series letters, determinism."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.plates.grammar import THAI_CONSONANTS, plate_format
from pipeline.plates.provinces import PROVINCES
from pipeline.plates.render import (
    CAR_SIZE,
    CAR_STYLES,
    MOTO_HEIGHT,
    available_fonts,
    main,
    random_label,
    render_batch,
    render_plate,
)

needs_fonts = pytest.mark.skipif(not available_fonts(), reason="Thai TLWG fonts are not installed")

CONS = f"[{THAI_CONSONANTS}]"
CAR_RE = re.compile(f"^(?:[1-9]{CONS}{{2}}|{CONS}{{1,2}})[1-9][0-9]{{0,3}}$|^[1-9][0-9]{{5}}$")
MOTO_RE = re.compile(f"^([1-9]{CONS}{{2}}|{CONS}{{3}})([1-9][0-9]{{0,3}})$")


def _series_pair(label: str) -> str | None:
    """The two series consonants that ``doubled`` controls (None when the series has fewer)."""
    letters = "".join(c for c in label if c in THAI_CONSONANTS)
    return letters[-2:] if len(letters) >= 2 else None


def test_car_labels_follow_the_grammar() -> None:
    rng = np.random.default_rng(0)
    labels = [random_label(rng, "car") for _ in range(3000)]
    assert all(plate_format(lbl) is not None and CAR_RE.match(lbl) for lbl in labels)
    commercial = [lbl for lbl in labels if lbl.isdigit()]
    assert 0.2 < len(commercial) / len(labels) < 0.4
    assert all(len(lbl) == 6 and 10 <= int(lbl[:2]) <= 99 for lbl in commercial)
    series_digit = [lbl for lbl in labels if lbl[0].isdigit() and not lbl.isdigit()]
    assert series_digit and all(lbl[0] != "0" and _series_pair(lbl) == lbl[1:3] for lbl in series_digit)
    one_letter = [lbl for lbl in labels if sum(c in THAI_CONSONANTS for c in lbl) == 1]
    assert one_letter and all(lbl[0] in THAI_CONSONANTS for lbl in one_letter)
    assert {len(lbl) - len(lbl.rstrip("0123456789")) for lbl in labels if not lbl.isdigit()} == {1, 2, 3, 4}


def test_motorcycle_labels_have_the_three_line_form() -> None:
    rng = np.random.default_rng(1)
    labels = [random_label(rng, "motorcycle") for _ in range(2000)]
    assert all(plate_format(lbl) is not None and MOTO_RE.match(lbl) for lbl in labels)
    tops = [MOTO_RE.match(lbl).group(1) for lbl in labels]  # type: ignore[union-attr]
    assert any(t[0].isdigit() for t in tops) and any(not t[0].isdigit() for t in tops)


@pytest.mark.parametrize("layout", ["car", "motorcycle"])
@pytest.mark.parametrize("doubled", [0.0, 0.25, 0.8])
def test_doubled_series_letters_at_the_requested_rate(layout: str, doubled: float) -> None:
    rng = np.random.default_rng(2)
    pairs = [p for p in (_series_pair(random_label(rng, layout, doubled)) for _ in range(4000)) if p]
    rate = sum(p[0] == p[1] for p in pairs) / len(pairs)
    assert abs(rate - doubled) < 0.035


def test_unknown_layout_is_rejected() -> None:
    with pytest.raises(ValueError):
        random_label(np.random.default_rng(0), "truck")


def _check_image(img: np.ndarray, layout: str) -> None:
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    h, w = img.shape[:2]
    if layout == "car":
        assert (w, h) == CAR_SIZE
    else:
        assert MOTO_HEIGHT[0] <= h <= MOTO_HEIGHT[1] and 1.05 <= w / h <= 1.55
    assert img.std() > 20  # something is drawn


@needs_fonts
@pytest.mark.parametrize("style", CAR_STYLES)
def test_every_car_style_renders(style: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(4):
        plate = render_plate(rng, "car", style=style)
        _check_image(plate.image, "car")
        assert plate.layout == "car" and plate.style == style and 0 <= plate.province < len(PROVINCES)
        assert plate_format(plate.label) is not None
        if style == "yellow":
            assert plate_format(plate.label) == "commercial"
        elif style == "red":
            assert not plate.label[0].isdigit()
        else:
            assert plate_format(plate.label) == "private"


@needs_fonts
def test_motorcycle_plates_render() -> None:
    rng = np.random.default_rng(4)
    for _ in range(6):
        plate = render_plate(rng, "motorcycle")
        _check_image(plate.image, "motorcycle")
        assert plate.style == "moto" and plate.layout == "motorcycle" and MOTO_RE.match(plate.label)


@needs_fonts
def test_given_label_province_and_style_are_kept() -> None:
    rng = np.random.default_rng(5)
    plate = render_plate(rng, "car", label="ผผ9959", province=13, style="red")
    assert (plate.label, plate.province, plate.style) == ("ผผ9959", 13, "red")
    assert render_plate(rng, "car", label="701234").style == "yellow"
    assert render_plate(rng, "motorcycle", label="อคม888").label == "อคม888"
    with pytest.raises(ValueError):
        render_plate(rng, "car", label="1กข1234", style="red")  # dealer plates have no series digit
    with pytest.raises(ValueError):
        render_plate(rng, "car", label="1กข1234", style="yellow")
    with pytest.raises(ValueError):
        render_plate(rng, "motorcycle", style="white")


@needs_fonts
def test_rendering_is_deterministic() -> None:
    a = render_plate(np.random.default_rng(6), "car")
    b = render_plate(np.random.default_rng(6), "car")
    assert a.label == b.label and a.province == b.province and np.array_equal(a.image, b.image)


@needs_fonts
def test_batch_mixes_layouts() -> None:
    plates = render_batch(30, np.random.default_rng(7), layout_mix=0.5)
    assert len(plates) == 30
    assert {p.layout for p in plates} == {"car", "motorcycle"}
    assert all(p.layout == "car" for p in render_batch(5, np.random.default_rng(8), layout_mix=0.0))


@needs_fonts
def test_cli_writes_contact_sheets(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--n", "3", "--cols", "3"])
    assert (tmp_path / "sheet_car.png").stat().st_size > 0
    assert (tmp_path / "sheet_motorcycle.png").stat().st_size > 0
    assert len((tmp_path / "labels.csv").read_text(encoding="utf-8").splitlines()) == 7
