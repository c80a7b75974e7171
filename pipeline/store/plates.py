"""Plate text normalisation and the index keys of one distinct plate."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

from pipeline.plates.fuzzy import deletion_variants, fold
from pipeline.plates.grams import plate_grams
from pipeline.store import keys

logger = logging.getLogger(__name__)

_DASHES = re.compile(r"[\u2010-\u2015\u2212_]")
_DROP = re.compile(r"[\s.·]")


def _fallback_normalise(text: str) -> str:
    """Local normaliser used until ``pipeline.plates.grammar.normalise_plate`` exists."""
    text = unicodedata.normalize("NFC", text)
    text = _DASHES.sub("-", text)
    return _DROP.sub("", text).upper()


try:  # the canonical normaliser, owned by the plate-reader engineer
    from pipeline.plates.grammar import normalise_plate as _normalise
except ImportError:  # pragma: no cover - depends on what is merged
    _normalise = _fallback_normalise


def normalise_plate(text: str) -> str:
    """Canonical storage/search form of a plate text (delegates to ``pipeline.plates.grammar``)."""
    try:
        return _normalise(text)
    except ValueError:
        return _fallback_normalise(text)


def gram_keys(plate: str) -> list[str]:
    """The gram sorted-set keys one distinct plate is a member of (the writer script computes the same)."""
    return [keys.plate_gram(g) for g in sorted(plate_grams(plate))]


def variant_keys(plate: str) -> list[str]:
    """The symmetric-delete set keys one distinct plate is a member of (the writer script computes the same)."""
    return [keys.plate_variant(v) for v in sorted(deletion_variants(fold(plate)))]


def is_series_bigram(gram: str) -> bool:
    """Whether ``gram`` is two non-digit characters (a registration series; it has a time-ordered set)."""
    return len(gram) == 2 and not any(ch in "0123456789" for ch in gram)


def series_keys(plate: str) -> list[str]:
    """The series-bigram sorted-set keys of one distinct plate (the writer script computes the same)."""
    return sorted({keys.plate_series(plate[i:i + 2]) for i in range(len(plate) - 1)
                   if is_series_bigram(plate[i:i + 2])})


@lru_cache(maxsize=200_000)
def index_keys(plate: str) -> tuple[str, ...]:
    """Every gram and symmetric-delete key one distinct plate is a member of."""
    return tuple(gram_keys(plate) + variant_keys(plate))


def clean_token(value: str | None) -> str:
    """A member-safe token (no ``|``, tab or newline)."""
    return re.sub(r"[|\t\n]", " ", value or "")
