"""The Kedmanee reading of plate queries typed with the English layout on, checked against the standard layout."""

from __future__ import annotations

import pytest

from pipeline.plates.grammar import THAI_CONSONANTS
from pipeline.plates.keyboard import KEDMANEE, KEDMANEE_CONSONANTS, KEDMANEE_DIGITS, thai_plate_query

# The standard Thai Kedmanee layout (TIS 820-2538), row by row, as (US QWERTY keys, Thai characters) for the
# unshifted and shifted layers, written out independently of the module's table. Keys that give a vowel, a tone
# mark or a symbol are written "~" here (not wanted in the map).
_ROWS = [
    ("`1234567890-=", "~~~~ภถ~~คตจขช"),
    ("qwertyuiop[]\\", "~~~พ~~~รนยบลฃ"),
    ("asdfghjkl;'", "ฟหกด~~~~สวง"),
    ("zxcvbnm,./", "ผป~อ~~ทม~ฝ"),
    ("~!@#$%^&*()_+", "~~๑๒๓๔~~๕๖๗๘๙"),
    ("QWERTYUIOP{}|", "๐~ฎฑธ~~ณ~ญฐ~ฅ"),
    ("ASDFGHJKL:\"", "~ฆฏ~ฌ~~ษศซ~"),
    ("ZXCVBNM<>?", "~~ฉฮ~~~ฒฬ~"),
]


def _standard() -> dict[str, str]:
    out = {}
    for keys, thai in _ROWS:
        assert len(keys) == len(thai)
        out.update({k: t for k, t in zip(keys, thai, strict=True) if t != "~"})
    return out


def test_the_map_is_the_kedmanee_layout_s_consonant_and_digit_keys() -> None:
    assert _standard() == KEDMANEE


def test_every_thai_consonant_and_digit_has_exactly_one_key() -> None:
    consonants = (THAI_CONSONANTS + "ฃฅ").replace("ฤ", "").replace("ฦ", "")  # ฤ ฦ: vowels the grammar allows
    assert len(consonants) == 44
    assert sorted(KEDMANEE_CONSONANTS.values()) == sorted(consonants)
    assert sorted(KEDMANEE_DIGITS.values()) == sorted("๐๑๒๓๔๕๖๗๘๙")


@pytest.mark.parametrize("typed, meant", [
    ("1d-1234", "1กข1234"),
    ("1d- 1234", "1กข1234"),
    ("vm,888", "อทม888"),
    ("x1234", "ป1234"),
    ("d-12", "กข12"),
    ("m-123", "ทข123"),
    ("1d-*", "1กข*"),
    ("1Cd5678", "1ฉก5678"),
])
def test_a_mistyped_plate_query_reads_as_the_thai_plate(typed: str, meant: str) -> None:
    assert thai_plate_query(typed) == meant


@pytest.mark.parametrize("query", [
    "1กข1234",  # Thai already
    "1234",  # digits only: nothing was mistyped
    "70-1234",  # a commercial plate as typed (no Latin letter)
    "-123",  # no Latin letter: a query without one is never read as mistyped
    "ABC123",  # A and B give a vowel sign and ฤ: not a plate
    "1dw1234",  # w gives the vowel ไ
    "ddddd1234",  # five consonants: no Thai plate
    "1d-12345",  # five digits
    "",
])
def test_no_reading_for_what_is_not_a_mistyped_plate(query: str) -> None:
    assert thai_plate_query(query) is None
