"""Plate grammar, provinces and CTC decoding (no model needed)."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest

from pipeline.plates.decoding import beam_search, best_path
from pipeline.plates.grammar import (
    CHARSET,
    compact_display,
    display_plate,
    is_car_registration,
    is_motorcycle_registration,
    is_motorcycle_text,
    is_valid_car_prefix,
    is_valid_motorcycle_prefix,
    is_valid_plate,
    is_valid_prefix,
    normalise_plate,
    plate_format,
    plate_formats,
)
from pipeline.plates.provinces import PROVINCES, match_province, province_by_name


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("1กข 1234", "1กข1234"),
        ("1 กข-1234", "1กข1234"),
        ("70-1234", "701234"),
        ("๗๐-๑๒๓๔", "701234"),
        ("7O-I234", "701234"),
        ("กข ๑๒", "กข12"),
        ("ก.ข. 12", "กข12"),
        ("yg9x2g", "YG9X2G"),
        ("", ""),
    ],
)
def test_normalise(raw: str, canon: str) -> None:
    assert normalise_plate(raw) == canon
    assert normalise_plate(canon) == canon  # idempotent


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("1กข1234", "private"),
        ("กข1234", "private"),
        ("ก1", "private"),
        ("701234", "commercial"),
        ("กขค123", "motorcycle"),
        ("อคม888", "motorcycle"),
        ("งบล7970", "motorcycle"),  # three consonants and four digits
        ("อคม1", "motorcycle"),
        ("1กช4986", "private"),  # also a motorcycle text: the first format in PATTERNS order wins
        ("กขค12345", None),
        ("กขคง12", None),
        ("กขค", None),
        ("1กขค1234", None),
        ("2ฎ6847", None),  # a series digit is always followed by two consonants
        ("ฎ6847", "private"),
        ("12345", None),
        ("1234567", None),
        ("กข12345", None),
    ],
)
def test_formats(text: str, fmt: str | None) -> None:
    assert plate_format(text) == fmt
    assert is_valid_plate(text) is (fmt is not None)


@pytest.mark.parametrize(
    ("text", "formats", "motorcycle"),
    [
        ("1กช4986", ["private", "motorcycle"], True),
        ("1กช 4986", [], True),  # plate_formats takes canonical text, is_motorcycle_text normalises first
        ("อคม888", ["motorcycle"], True),
        ("งบล 7970", [], True),
        ("งบล7970", ["motorcycle"], True),
        ("กข1234", ["private"], False),
        ("701234", ["commercial"], False),
        ("1กช12345", [], False),
        ("อคม", [], False),
        ("", [], False),
    ],
)
def test_plate_formats_and_motorcycle_text(text: str, formats: list[str], motorcycle: bool) -> None:
    assert plate_formats(text) == formats
    assert plate_format(text) == (formats[0] if formats else None)
    assert is_motorcycle_text(text) is motorcycle


def test_display() -> None:
    assert display_plate("701234") == "70-1234"
    assert display_plate("1กข1234") == "1กข 1234"
    assert display_plate("1กช4986") == "1กช 4986"
    assert display_plate("1กช4986", "motorcycle") == "1กช 4986"
    assert display_plate("อคม888") == "อคม 888"
    assert display_plate("งบล7970") == "งบล 7970"
    assert compact_display("70 1234") == "70-1234"
    assert compact_display("1กข 1234") == "1กข1234"
    assert compact_display("อคม 888") == "อคม888"
    assert compact_display("1กช 4986") == "1กช4986"


def test_prefixes() -> None:
    for good in ["", "1", "1ก", "1กข", "1กข1", "12345", "กขค", "กขค12", "กขค1234", "1กช4986"]:
        assert is_valid_prefix(good), good
    for bad in ["1กขค1", "1234567", "1ก12345", "1ก1", "กขค12345", "กขคง", "1กช49861", "A1"]:
        assert not is_valid_prefix(bad), bad


def test_prefix_grammar_is_exactly_the_prefixes_of_the_formats() -> None:
    """Every digit/consonant shape up to 8 characters: a prefix is accepted iff some valid plate starts with it."""
    shapes = ["".join(p) for n in range(9) for p in itertools.product("dc", repeat=n)]
    as_text = {shape: shape.replace("d", "1").replace("c", "ก") for shape in shapes}
    valid = [shape for shape in shapes if plate_format(as_text[shape]) is not None]
    assert {"dccdddd", "cccdddd", "cccd", "dccd"} <= set(valid)
    prefixes = {shape[:i] for shape in valid for i in range(len(shape) + 1)}
    for shape in shapes:
        assert is_valid_prefix(as_text[shape]) is (shape in prefixes), shape


def test_motorcycle_prefix_grammar_is_exactly_the_prefixes_of_the_motorcycle_format() -> None:
    """The grammar a three-line plate is decoded with: every digit/consonant shape up to 8 characters is accepted
    iff some motorcycle registration starts with it, so a series of one or two consonants (a car series) never
    completes, and the car-only shapes are refused."""
    shapes = ["".join(p) for n in range(9) for p in itertools.product("dc", repeat=n)]
    as_text = {shape: shape.replace("d", "1").replace("c", "ก") for shape in shapes}
    valid = {shape for shape in shapes if is_motorcycle_registration(as_text[shape])}
    assert valid == {s + "d" * k for s in ("dcc", "ccc") for k in range(1, 5)}
    prefixes = {shape[:i] for shape in valid for i in range(len(shape) + 1)}
    for shape in shapes:
        assert is_valid_motorcycle_prefix(as_text[shape]) is (shape in prefixes), shape
    for car_only in ("กข1234", "ก1", "123456", "กข"):
        assert not is_motorcycle_registration(car_only) and is_valid_prefix(car_only), car_only
    assert not is_valid_motorcycle_prefix("กข1") and not is_valid_motorcycle_prefix("1A")


def test_car_prefix_grammar_is_exactly_the_prefixes_of_the_two_line_formats() -> None:
    """The grammar a plate read in the car form is decoded with: private and commercial registrations, never a
    three-consonant series (a motorcycle plate's, read in the motorcycle form)."""
    shapes = ["".join(p) for n in range(9) for p in itertools.product("dc", repeat=n)]
    as_text = {shape: shape.replace("d", "1").replace("c", "ก") for shape in shapes}
    valid = {shape for shape in shapes if plate_format(as_text[shape]) in ("private", "commercial")}
    assert {shape for shape in shapes if is_car_registration(as_text[shape])} == valid
    assert "cccd" not in valid and "dccd" in valid and "dddddd" in valid
    prefixes = {shape[:i] for shape in valid for i in range(len(shape) + 1)}
    for shape in shapes:
        assert is_valid_car_prefix(as_text[shape]) is (shape in prefixes), shape
    assert not is_valid_car_prefix("ตรร") and not is_car_registration("ตรร1055") and is_car_registration("ตร1055")


def test_car_form_beam_never_grows_a_third_series_letter() -> None:
    """Frames whose likeliest text is ``กขข1`` (a doubled letter the network half-sees): read in the car form, the
    beam keeps a two-consonant series."""
    idx = {ch: i + 1 for i, ch in enumerate(CHARSET)}
    frames = []
    for ch, p in (("ก", 0.9), ("", 0.9), ("ข", 0.9), ("", 0.6), ("ข", 0.6), ("", 0.9), ("1", 0.9)):
        row = np.full(len(CHARSET) + 1, (1 - p) / len(CHARSET), np.float32)
        row[idx[ch] if ch else 0] = p
        frames.append(row / row.sum())
    probs = np.stack(frames)
    assert best_path(probs, CHARSET).text == "กขข1"
    reads = beam_search(probs, CHARSET, beam=8, top_k=3, prefix_ok=is_valid_car_prefix,
                        final_ok=is_car_registration)
    assert reads and reads[0].text == "กข1"


def test_motorcycle_grammar_completes_a_series_a_car_read_would_cut() -> None:
    """Beam search with the motorcycle grammar on frames where a two-consonant car read is the likeliest text
    (``วล458``) but a third series consonant has some probability: the three-line grammar finds ``วลพ458``."""
    frames = ["ว", "-", "ล", "-", "พ?", "-", "4", "-", "5", "-", "8", "-"]
    probs = np.full((len(frames), len(CHARSET) + 1), 1e-4)
    for t, f in enumerate(frames):
        if f == "-":
            probs[t, 0] = 1.0
        elif f.endswith("?"):  # the faint third consonant: blank likelier than the letter
            probs[t, 0], probs[t, CHARSET.index(f[0]) + 1] = 0.6, 0.4
        else:
            probs[t, CHARSET.index(f) + 1] = 1.0
    probs /= probs.sum(1, keepdims=True)
    car = beam_search(probs, CHARSET, prefix_ok=is_valid_prefix, final_ok=lambda s: plate_format(s) is not None)
    moto = beam_search(probs, CHARSET, prefix_ok=is_valid_motorcycle_prefix, final_ok=is_motorcycle_registration)
    assert car[0].text == "วล458"
    assert moto[0].text == "วลพ458" and all(is_motorcycle_registration(r.text) for r in moto)


def test_every_motorcycle_label_is_a_valid_motorcycle_plate(shared_dir: Path) -> None:
    """The real three-line motorcycle labels: canonical, valid, motorcycle texts, displayed ``top bottom``."""
    labels_csv = shared_dir / "data" / "plates_thai_moto" / "labels.csv"
    if not labels_csv.is_file():
        pytest.skip(f"{labels_csv} not found")
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        label = row["label"]
        assert normalise_plate(label) == label, label
        assert is_valid_plate(label), label
        assert "motorcycle" in plate_formats(label), label
        assert is_motorcycle_text(f"{row['top_line']} {row['bottom_line']}"), label
        assert display_plate(label) == f"{row['top_line']} {row['bottom_line']}", label
        assert all(is_valid_prefix(label[:i]) for i in range(len(label) + 1)), label
    # both series kinds (digit + two consonants, three consonants) and four-digit numbers are in the data
    assert any(r["top_line"][0].isdigit() for r in rows) and any(not r["top_line"][0].isdigit() for r in rows)
    assert any(len(r["bottom_line"]) == 4 for r in rows)


def test_provinces_table() -> None:
    assert len(PROVINCES) == 77
    assert len({p.thai for p in PROVINCES}) == 77
    assert len({p.latin for p in PROVINCES}) == 77
    assert PROVINCES[0].thai == "กรุงเทพมหานคร" and PROVINCES[0].latin == "Bangkok"
    assert province_by_name("บึงกาฬ").latin == "Bueng Kan"
    assert province_by_name("bueng kan").thai == "บึงกาฬ"
    assert match_province("กรุงเทพ").latin == "Bangkok"
    assert match_province("สมุทรปราการ").latin == "Samut Prakan"
    assert match_province("สมุทรปรากร").latin == "Samut Prakan"  # one character dropped
    assert match_province("Nakorn Pathom").thai == "นครปฐม"
    assert match_province("zzzzqqq") is None
    assert match_province("") is None


def _probs(seq: list[str], n_t: int = 32, p: float = 0.9) -> np.ndarray:
    """Synthetic CTC output spelling ``seq`` with blanks in between."""
    c = len(CHARSET) + 1
    probs = np.full((n_t, c), (1 - p) / (c - 1), np.float32)
    probs[:, 0] = p  # blank by default
    for i, ch in enumerate(seq):
        t = 2 + 3 * i
        probs[t] = (1 - p) / (c - 1)
        probs[t, CHARSET.index(ch) + 1] = p
    return probs / probs.sum(1, keepdims=True)


def test_best_path_and_beam() -> None:
    probs = _probs(list("1กข1234"))
    assert best_path(probs, CHARSET).text == "1กข1234"
    res = beam_search(probs, CHARSET, prefix_ok=is_valid_prefix, final_ok=lambda s: plate_format(s) is not None)
    assert res[0].text == "1กข1234"
    assert res[0].valid
    assert len(res[0].char_confidences) == 7
    assert 0.0 < res[0].score <= 1.0


def test_beam_grammar_constraint() -> None:
    # Best path reads an invalid "1กขค1234" (3 letters after a digit); the constrained search must drop
    # the weakest letter.
    probs = _probs(list("1กขค1234"))
    t_weak = 2 + 3 * 3
    k = CHARSET.index("ค") + 1
    probs[t_weak, k] = 0.5
    probs[t_weak, 0] = 0.45
    probs /= probs.sum(1, keepdims=True)
    assert best_path(probs, CHARSET).text == "1กขค1234"
    res = beam_search(probs, CHARSET, prefix_ok=is_valid_prefix, final_ok=lambda s: plate_format(s) is not None)
    assert res and res[0].text == "1กข1234"
    assert all(plate_format(r.text) for r in res)


@pytest.mark.parametrize("plate", ["งบล7970", "อคม888", "1กช4986"])
def test_beam_reads_motorcycle_registrations(plate: str) -> None:
    """The grammar-constrained beam keeps three-consonant and four-digit motorcycle registrations."""
    probs = _probs(list(plate))
    res = beam_search(probs, CHARSET, prefix_ok=is_valid_prefix, final_ok=lambda s: plate_format(s) is not None)
    assert res and res[0].text == plate and res[0].valid


def test_beam_scores_are_exact_ctc_probabilities() -> None:
    """With a beam wide enough to keep everything, each text's score is its CTC probability summed over every
    alignment (brute force), including frames where only the blank is likely (the decoder's fast path)."""
    import itertools

    charset = "1กข"
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(len(charset) + 1), size=7)
    probs[[1, 4]] = [0.9997, 0.0001, 0.0001, 0.0001]  # blank-only frames: characters below the pruning level
    prune = 1e-3
    kept = np.where(probs > prune, probs, 0.0)
    kept[:, 0] = probs[:, 0]
    expected: dict[str, float] = {}
    for path in itertools.product(range(len(charset) + 1), repeat=len(probs)):
        p = float(np.prod(kept[np.arange(len(probs)), path]))
        collapsed = [k for i, k in enumerate(path) if k and (i == 0 or path[i - 1] != k)]
        text = "".join(charset[k - 1] for k in collapsed)
        expected[text] = expected.get(text, 0.0) + p
    res = beam_search(probs, charset, beam=10_000, top_k=10_000, prune=prune)
    assert len(res) == sum(1 for text, p in expected.items() if text and p > 0)
    for r in res:
        assert r.score == pytest.approx(expected[r.text], rel=1e-9, abs=1e-15)
    assert [r.score for r in res] == sorted((r.score for r in res), reverse=True)


def test_full_width_input_is_folded_not_dropped() -> None:
    """A registration typed with an East Asian input method (full-width digits and Latin) is the same plate: it
    used to lose every full-width character (a watchlist entry ``１กข１２３４`` became ``กข``)."""
    assert normalise_plate("１กข １２３４") == "1กข1234"
    assert normalise_plate("ＡＢ－１２３４") == "AB1234"
    assert normalise_plate("๑กข๑๒๓๔") == "1กข1234"  # Thai digits as before
