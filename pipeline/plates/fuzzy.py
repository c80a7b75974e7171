"""Weighted edit distance between plate strings where OCR look-alikes are cheap substitutions.

A plate read by OCR is most often wrong by one *look-alike* character: Thai consonants that differ by a small
stroke (ข/ช, ค/ด/ต, ภ/ถ, บ/ป, ฎ/ฏ ...) or a digit mistaken for a Latin letter (0/O, 8/B, 1/I ...). Substituting
within one look-alike class costs :data:`LOOKALIKE_COST`; any other substitution, insertion or deletion costs 1.

:func:`fold` maps each character to the canonical member of its class, so two strings that differ only by
look-alike substitutions fold to the same string; the store indexes folded plates for fuzzy candidate generation.
"""

from __future__ import annotations

from functools import lru_cache

LOOKALIKE_COST = 0.4
"""Cost of substituting one character by another of the same look-alike class."""

LOOKALIKE_CLASSES: tuple[str, ...] = (
    "ขชฃซ",   # kho khai / cho chang / kho khuat / so so
    "คดตศฅ",  # kho khwai / do dek / to tao / so sala / kho khon
    "ภถ",     # pho samphao / tho thung
    "บปษ",    # bo baimai / po pla / so ruesi
    "ฎฏ",     # do chada / to patak
    "ผฝ",     # pho phueng / fo fa
    "พฟ",     # pho phan / fo fan
    "ทฑ",     # tho thahan / tho montho
    "มฆ",     # mo ma / kho rakhang
    "0OQD",
    "8B",
    "1IL",
    "5S",
    "2Z",
    "6G",
)
"""Groups of characters OCR confuses; the first of each group is its canonical (folded) form."""

_CANONICAL: dict[str, str] = {ch: group[0] for group in LOOKALIKE_CLASSES for ch in group}


def fold(text: str) -> str:
    """Map every look-alike character to the canonical member of its class."""
    return "".join(_CANONICAL.get(ch, ch) for ch in text)


def substitution_cost(a: str, b: str) -> float:
    """Cost of reading ``b`` where ``a`` is written: 0 if equal, cheap for look-alikes, else 1."""
    if a == b:
        return 0.0
    ca = _CANONICAL.get(a)
    if ca is not None and ca == _CANONICAL.get(b):
        return LOOKALIKE_COST
    return 1.0


@lru_cache(maxsize=65536)
def plate_distance(a: str, b: str) -> float:
    """Weighted Levenshtein distance between two (normalised) plate strings.

    Insertions and deletions cost 1, substitutions cost :func:`substitution_cost`. Symmetric; 0 iff equal.
    """
    if a == b:
        return 0.0
    if not a:
        return float(len(b))
    if not b:
        return float(len(a))
    previous = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, start=1):
        current = [float(i)] + [0.0] * len(b)
        for j, cb in enumerate(b, start=1):
            current[j] = min(
                previous[j] + 1.0,
                current[j - 1] + 1.0,
                previous[j - 1] + substitution_cost(ca, cb),
            )
        previous = current
    return round(previous[-1], 6)


def deletion_variants(text: str) -> set[str]:
    """The string and every string obtained by deleting one character (symmetric-delete neighbourhood, d=1)."""
    variants = {text}
    variants.update(text[:i] + text[i + 1:] for i in range(len(text)))
    variants.discard("")
    return variants
