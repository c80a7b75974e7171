"""Plate search typed with the English keyboard layout still on: ``1d-1234`` for ``1กข1234`` is answered as typed
(no hits) with ``did_you_mean`` naming the Thai query, and only when that query has hits."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from tests.api.test_api_plate_search_paging import _publish, _search

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def plates(rclient: redis.Redis) -> None:
    _publish(rclient, [("1กข1234", 10_000.0, "กรุงเทพมหานคร"), ("ABC123", 10_010.0, "")])


@pytest.mark.parametrize("mode", ["auto", "exact", "partial"])
def test_a_query_typed_on_the_english_layout_is_answered_as_typed_with_a_suggestion(
        client: TestClient, tokens: dict, plates: None, mode: str) -> None:
    out = _search(client, tokens["op"], q="1d-1234", mode=mode)
    assert out["query"] == "1d-1234" and out["hits"] == [] and out["total"] == 0  # never rewritten silently
    assert out["did_you_mean"] == "1กข1234"
    thai = _search(client, tokens["op"], q=out["did_you_mean"], mode=mode)
    assert [h["plate"] for h in thai["hits"]] == ["1กข1234"] and thai["did_you_mean"] is None


def test_a_partial_mistyped_query_suggests_its_thai_reading(client: TestClient, tokens: dict, plates: None) -> None:
    assert _search(client, tokens["op"], q="d-12")["did_you_mean"] == "กข12"


@pytest.mark.parametrize("q", [
    "ABC123",  # Latin query with hits (a foreign plate): no suggestion
    "1กข1234",  # Thai query with hits
    "1d-9999",  # reads as a valid plate, but that plate was never seen
    "1dw1234",  # w gives the vowel ไ: no plate
    "zzzz",  # four consonants: no Thai plate
    "9999",  # no Latin letter, no hits
])
def test_no_suggestion_for_a_query_with_hits_or_whose_reading_is_no_plate_with_hits(
        client: TestClient, tokens: dict, plates: None, q: str) -> None:
    assert _search(client, tokens["op"], q=q)["did_you_mean"] is None


def test_the_suggestion_respects_the_callers_cameras(client: TestClient, tokens: dict, plates: None) -> None:
    """The plate was read on bkk-night-01 only: a caller limited to walkway-01 is not told it exists."""
    assert _search(client, tokens["limited"], q="1d-1234")["did_you_mean"] is None
