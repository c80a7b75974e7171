"""Weighted plate distance and the safe query compiler."""

from __future__ import annotations

import pytest

from pipeline.plates.fuzzy import LOOKALIKE_COST, deletion_variants, fold, plate_distance
from pipeline.plates.grams import QueryError, compile_query


@pytest.mark.parametrize("a,b", [("ข", "ช"), ("ค", "ด"), ("ด", "ต"), ("ภ", "ถ"), ("บ", "ป"), ("ฎ", "ฏ"),
                                 ("0", "O"), ("8", "B"), ("1", "I")])
def test_lookalikes_are_cheap(a: str, b: str) -> None:
    assert plate_distance(f"1ก{a}1234", f"1ก{b}1234") == LOOKALIKE_COST
    assert fold(a) == fold(b)


def test_other_edits_cost_one_and_distance_is_symmetric() -> None:
    assert plate_distance("1กข1234", "1กข1234") == 0
    assert plate_distance("1กข1234", "1กม1234") == 1
    assert plate_distance("1กข1234", "1กข123") == 1
    assert plate_distance("กข1234", "1กช1234") == pytest.approx(1 + LOOKALIKE_COST)
    assert plate_distance("ab", "ba") == plate_distance("ba", "ab") == 2
    assert plate_distance("", "abc") == 3


def test_one_edit_neighbourhoods_intersect() -> None:
    assert deletion_variants(fold("1กข1234")) & deletion_variants(fold("1กช1284"))
    assert not deletion_variants("1กข1234") & deletion_variants("9ฮฮ9999")


def test_queries_match_like_operators_type() -> None:
    assert compile_query("1234").matches("1กข1234")
    assert compile_query("กข").matches("1กข1234")
    assert compile_query("กข?234").matches("กข1234") and not compile_query("กข?234").matches("กข12345")
    assert compile_query("*1234").matches("1กข1234") and not compile_query("*1234").matches("1กข12345")
    assert not compile_query("a.c").matches("abc")  # a dot is a literal, never a regex


@pytest.mark.parametrize("query", ["1", "*", "??", "a" * 40, "1*2*3*4*5*6", "1?2"])
def test_bad_queries_are_refused(query: str) -> None:
    with pytest.raises(QueryError):
        compile_query(query)
