"""Text fields shown to operators (person and watchlist names, entry reasons, notes): no control characters.

A name or reason ends up on alert cards, lists and audit views. A line break in it can fake a second line (another
name, another reason), and a bidirectional override or isolate (U+202A-U+202E, U+2066-U+2069) can show it reversed
or reordered (``U+202E`` turns ``ABC`` into what reads as ``CBA``), so such characters are refused with a 422 naming
the field. Thai text, its combining vowels and tone marks (category Mn) included, is untouched: only the control
characters (category Cc) and the bidi controls above are refused. Free text (notes, descriptions) may still hold
line breaks and tabs.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
"""Bidirectional embeddings, overrides and isolates (LRE, RLE, PDF, LRO, RLO; LRI, RLI, FSI, PDI)."""
FREE_TEXT_CONTROLS = frozenset("\n\r\t")
"""Control characters that free text (notes, descriptions) may hold."""


def _refused(value: str, allowed: frozenset[str]) -> str | None:
    """The first character of ``value`` that is a control (Cc, other than ``allowed``) or a bidi control, or None."""
    for char in value:
        if char in BIDI_CONTROLS or (unicodedata.category(char) == "Cc" and char not in allowed):
            return char
    return None


def _check(value: str, allowed: frozenset[str]) -> str:
    """``value`` unchanged, or ValueError naming the first refused character."""
    char = _refused(value, allowed)
    if char is not None:
        raise ValueError(f"must not contain control or bidirectional-override characters "
                         f"(found U+{ord(char):04X})")
    return value


def one_line(value: str) -> str:
    """Validator of a one-line text (name, reason): no control character at all, no bidi control."""
    return _check(value, frozenset())


def free_text(value: str) -> str:
    """Validator of a free text (notes, description): line breaks and tabs allowed, no other control character and
    no bidi control."""
    return _check(value, FREE_TEXT_CONTROLS)


OneLine = Annotated[str, AfterValidator(one_line)]
"""A one-line text shown to operators: refuses control characters and bidi controls (422 on the field)."""
FreeText = Annotated[str, AfterValidator(free_text)]
"""A free text shown to operators: refuses control characters other than line breaks and tabs, and bidi controls."""
