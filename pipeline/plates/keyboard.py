"""A plate query typed with the English (US QWERTY) layout still on, read as the Thai Kedmanee keys it was meant for.

Thai operators often start typing a plate with the wrong layout active, so ``1d-1234`` arrives for ``1กข1234``
(``d`` is the Kedmanee key of ``ก``, ``-`` that of ``ข``). :data:`KEDMANEE` holds only the keys that matter for a
plate: the unshifted and shifted keys of the standard Thai Kedmanee layout (TIS 820-2538) that produce a Thai
consonant or a Thai digit. Arabic digits are left as typed: on a plate they are digits whatever the layout (and
typed on the number pad, or with the English layout, they are digits), so the number-row keys that give ``ภ ถ ค ต
จ`` in Thai (``4 5 8 9 0``) are never read as consonants, nor ``*`` (shifted ``8``, ``๕``), a search wildcard.

:func:`thai_plate_query` is what the plate search uses to suggest "Did you mean 1กข1234?"."""

from __future__ import annotations

from pipeline.plates.grammar import is_valid_plate, is_valid_prefix, normalise_plate

KEDMANEE_CONSONANTS: dict[str, str] = {
    # number row, unshifted
    "4": "ภ", "5": "ถ", "8": "ค", "9": "ต", "0": "จ", "-": "ข", "=": "ช",
    # top row
    "r": "พ", "i": "ร", "o": "น", "p": "ย", "[": "บ", "]": "ล", "\\": "ฃ",
    "E": "ฎ", "R": "ฑ", "T": "ธ", "I": "ณ", "P": "ญ", "{": "ฐ", "|": "ฅ",
    # home row
    "a": "ฟ", "s": "ห", "d": "ก", "f": "ด", "l": "ส", ";": "ว", "'": "ง",
    "S": "ฆ", "D": "ฏ", "G": "ฌ", "K": "ษ", "L": "ศ", ":": "ซ",
    # bottom row
    "z": "ผ", "x": "ป", "v": "อ", "m": "ท", ",": "ม", "/": "ฝ",
    "C": "ฉ", "V": "ฮ", "<": "ฒ", ">": "ฬ",
}
"""Each US QWERTY character whose key gives a Thai consonant on the Kedmanee layout (all 44 consonants)."""

KEDMANEE_DIGITS: dict[str, str] = {
    "@": "๑", "#": "๒", "$": "๓", "%": "๔", "*": "๕", "(": "๖", ")": "๗", "_": "๘", "+": "๙", "Q": "๐",
}
"""Each US QWERTY character whose key gives a Thai digit on the Kedmanee layout (shifted)."""

KEDMANEE: dict[str, str] = {**KEDMANEE_CONSONANTS, **KEDMANEE_DIGITS}
"""The Kedmanee keys that give a Thai consonant or a Thai digit, by the US QWERTY character of the same key."""

_KEPT = frozenset("0123456789*? ")
"""Characters a mistyped query keeps as typed: Arabic digits, the search wildcards and spaces."""


def _as_thai(ch: str) -> str | None:
    """The Thai character the key of ``ch`` gives, ``ch`` itself when it is kept as typed, else None."""
    if ch in _KEPT:
        return ch
    return KEDMANEE.get(ch)


def thai_plate_query(query: str) -> str | None:
    """``query`` read on the Kedmanee layout when it holds a Latin letter and that reading is a Thai plate query
    (a plate, the start of one, or a wildcard pattern of consonants and digits); else None. Every character must
    be a Kedmanee consonant or digit key, an Arabic digit, a space or a wildcard: a key that gives a vowel, a tone
    mark or nothing a plate holds means the query was not a mistyped plate."""
    if not any(ch.isascii() and ch.isalpha() for ch in query):
        return None
    chars = [_as_thai(ch) for ch in query.strip()]
    if not chars or None in chars:
        return None
    thai = "".join(chars)  # type: ignore[arg-type]  # None ruled out above
    runs = [normalise_plate(run) for run in thai.replace("?", "*").split("*")]
    if not any(ch in KEDMANEE_CONSONANTS.values() for run in runs for ch in run):
        return None
    if "*" in thai or "?" in thai:
        return thai if all(is_valid_prefix(run) or _is_digits_and_consonants(run) for run in runs) else None
    plate = normalise_plate(thai)
    return plate if is_valid_plate(plate) or is_valid_prefix(plate) else None


def _is_digits_and_consonants(run: str) -> bool:
    """Whether a canonical run holds only digits and Thai consonants (a piece of a wildcard pattern)."""
    return all(ch.isdigit() or ch in KEDMANEE_CONSONANTS.values() for ch in run)
