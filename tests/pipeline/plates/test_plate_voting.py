"""Multi-frame voting of plate reads."""

from __future__ import annotations

import pytest

from pipeline.plates.reader import PlateRead
from pipeline.plates.voting import vote


def _read(text: str, conf: float, prov: str | None = "กรุงเทพมหานคร", pconf: float = 0.9,
          valid: bool = True) -> PlateRead:
    return PlateRead(text, conf, [conf] * len(text), [(text, conf)], prov, None, pconf, valid)


def test_majority_with_noise() -> None:
    reads = [_read("1กข1234", 0.9), _read("1กข1284", 0.6), _read("1กข1234", 0.8), _read("70-1234", 0.3, "ชลบุรี")]
    v = vote(reads, [1000, 800, 1200, 300])
    assert v is not None
    assert v.text == "1กข1234"
    assert v.agreeing_frames == 2 and v.total_frames == 4
    assert v.province == "กรุงเทพมหานคร" and v.province_latin == "Bangkok"
    assert 0 < v.confidence <= 1
    assert v.candidates[0][0] == "1กข1234"
    assert {c[0] for c in v.candidates} >= {"1กข1234", "1กข1284", "70-1234"}


def test_crop_size_weighting() -> None:
    # Two small confident crops vs one big slightly less confident: size matters.
    reads = [_read("กข1234", 0.9), _read("กข1234", 0.9), _read("ฮฮ9999", 0.85)]
    assert vote(reads, [100, 100, 40000]).text == "ฮฮ9999"
    assert vote(reads, [1000, 1000, 1000]).text == "กข1234"


def test_province_voted_separately() -> None:
    reads = [_read("70-1234", 0.9, "ชลบุรี", 0.4), _read("70-1234", 0.9, "ระยอง", 0.9), _read("70-1234", 0.9, "ระยอง", 0.8)]
    v = vote(reads, [500, 500, 500])
    assert v.text == "70-1234"
    assert v.province == "ระยอง" and v.province_latin == "Rayong"
    assert v.agreeing_frames == 3


def test_normalised_forms_agree_and_empty() -> None:
    v = vote([_read("70-1234", 0.8), _read("701234", 0.8), _read("70 1234", 0.8)], [100, 100, 100])
    assert v.text == "70-1234" and v.agreeing_frames == 3
    assert vote([], []) is None
    assert vote([_read("", 0.0)], [10]) is None
    with pytest.raises(ValueError):
        vote([_read("กข1", 0.5)], [])


@pytest.mark.parametrize("plate", ["อคม888", "งบล7970", "1กช4986"])
def test_motorcycle_registration_wins_over_noise(plate: str) -> None:
    """Three-line motorcycle registrations vote like car ones: display forms agree, the text stays canonical."""
    noisy = plate[:-1] + ("1" if plate[-1] != "1" else "2")
    shown = plate[:3] + " " + plate[3:]
    reads = [_read(plate, 0.9, "สระแก้ว"), _read(shown, 0.8, "สระแก้ว"), _read(noisy, 0.7, "สระแก้ว", 0.5)]
    v = vote(reads, [900, 900, 900])
    assert v is not None
    assert v.text == plate and v.agreeing_frames == 2 and v.total_frames == 3
    assert v.province == "สระแก้ว" and v.province_latin == "Sa Kaeo"
    assert v.candidates[0][0] == plate


def test_character_vote_can_pick_a_four_digit_three_consonant_motorcycle_plate() -> None:
    """The per-position vote only overrides the heaviest text with a valid plate: ``งบล7971`` must count as one."""
    reads = [_read("งบล7971", 1.0), _read("งบล7970", 0.6), _read("งบล7970", 0.6), _read("งบม7971", 0.5)]
    # text weights: งบล7970 1.2 > งบล7971 1.0, but position by position ล (2.2) and 1 (1.5) win
    v = vote(reads, [100, 100, 100, 100])
    assert v is not None
    assert v.text == "งบล7971"
    assert v.agreeing_frames == 1
