"""Thai licence-plate grammar: normalisation, validation and display.

Canonical form (used everywhere for storage, search and watchlists): :func:`normalise_plate` returns the
registration **without spaces and without hyphens**, Thai consonants plus Arabic digits, e.g. ``"1กข1234"``,
``"กข12"`` and, for a commercial ``70-1234`` plate, ``"701234"``. Steps:

1. Unicode NFKC (full-width ``１ＡＢ``, typed with East Asian input methods, becomes ``1AB``); Thai digits
   ``๐``-``๙`` become ``0``-``9``; Latin letters are upper-cased.
2. Spaces, hyphens, dots and any other punctuation or Thai vowel/tone marks are dropped.
3. If the text is Thai (contains a Thai consonant) or is digits apart from look-alike Latin letters, the
   look-alikes are mapped to digits (``O``/``Q``/``D``->0, ``I``/``L``/``|``->1, ``Z``->2, ``S``->5, ``G``->6,
   ``T``->7, ``B``->8); Thai registrations never contain Latin letters. Any other Latin text (foreign plates)
   keeps its letters.

:func:`display_plate` formats a canonical string for people: commercial six digits as ``NN-NNNN``, the others
as series, space, number (``1กข 1234``, ``อคม 888``). :func:`compact_display` is the form
:class:`~pipeline.plates.reader.PlateRead` uses in ``text``: no spaces, hyphen only for commercial plates
(``"70-1234"``).

Formats (:data:`PATTERNS`, in the order :func:`plate_format` tries them):

- ``private``: ``(?:[0-9][ก-ฮ]{2}|[ก-ฮ]{1,2})[0-9]{1,4}`` (cars, pick-ups, taxis, also red dealer plates such as
  ``ป 1234``);
- ``commercial``: six digits shown ``NN-NNNN`` (vans, trucks, buses);
- ``motorcycle``: ``(?:[0-9][ก-ฮ]{2}|[ก-ฮ]{3})[0-9]{1,4}``: three-line plates with the series on top (a digit and
  two consonants ``1กช``, or three consonants ``อคม``), the province in the middle and 1 to 4 digits at the
  bottom; written ``1กช4986`` / ``อคม888``, displayed ``1กช 4986`` / ``อคม 888``.

A digit-series motorcycle registration (``1กช4986``) is also a valid private-car text: the string alone does not
say which plate layout it came from. :func:`plate_format` returns the first matching format (``private`` for
it), :func:`plate_formats` every matching one and :func:`is_motorcycle_text` whether a text can be a motorcycle
registration.
"""

from __future__ import annotations

import functools
import re
import unicodedata

THAI_DIGITS = "๐๑๒๓๔๕๖๗๘๙"
DIGITS = "0123456789"
# The 44 Thai consonants used on plates (ก-ฮ without the obsolete ฃ and ฅ).
THAI_CONSONANTS = "".join(chr(c) for c in range(0x0E01, 0x0E2F) if chr(c) not in "ฃฅ")
# Recogniser alphabet (index 0 of the CTC output is the blank, then these characters).
CHARSET = DIGITS + THAI_CONSONANTS

_LOOKALIKES = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "|": "1", "!": "1", "Z": "2", "S": "5",
               "G": "6", "T": "7", "B": "8"}
_THAI_DIGIT_MAP = {ord(t): a for t, a in zip(THAI_DIGITS, DIGITS, strict=True)}
_THAI_CONS_SET = frozenset(THAI_CONSONANTS + "ฃฅ")

PATTERNS: dict[str, re.Pattern[str]] = {
    # One or two consonants, or a series digit followed by exactly two (``1กข 1234``; no ``1ก 1234`` exists).
    "private": re.compile(r"^(?:[0-9][ก-ฮ]{2}|[ก-ฮ]{1,2})[0-9]{1,4}$"),
    "commercial": re.compile(r"^[0-9]{6}$"),
    # Three-line plates: series (digit + two consonants, or three consonants) / province / 1-4 digits.
    "motorcycle": re.compile(r"^(?:[0-9][ก-ฮ]{2}|[ก-ฮ]{3})[0-9]{1,4}$"),
}
"""Thai plate formats by name, tried in this order by :func:`plate_format` (canonical text, see above)."""


def normalise_plate(text: str) -> str:
    """Return the canonical registration (see module docstring): no spaces/hyphens, Arabic digits."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).translate(_THAI_DIGIT_MAP).upper()  # NFKC: full-width 1AB -> 1AB
    kept = [ch for ch in text if ch in _THAI_CONS_SET or ch.isascii() and (ch.isalnum() or ch in "|!")]
    has_thai = any(ch in _THAI_CONS_SET for ch in kept)
    core = [ch for ch in kept if ch not in "|!"]
    lookalike_digits = all(ch.isdigit() or ch in _LOOKALIKES for ch in core)
    if has_thai or (lookalike_digits and any(ch.isdigit() for ch in core)):
        return "".join(_LOOKALIKES.get(ch, ch) for ch in kept)
    return "".join(core)


def plate_format(text: str) -> str | None:
    """The Thai format name (``private``, ``commercial``, ``motorcycle``) of a canonical string, or None."""
    for name, pattern in PATTERNS.items():
        if pattern.match(text):
            return name
    return None


def plate_formats(text: str) -> list[str]:
    """Every Thai format name a canonical string matches, in :data:`PATTERNS` order (empty if none).

    ``plate_formats("1กช4986") == ["private", "motorcycle"]``: a digit-series registration fits both layouts.
    """
    return [name for name, pattern in PATTERNS.items() if pattern.match(text)]


def is_motorcycle_text(text: str) -> bool:
    """True when the (canonical or display) text can be a motorcycle registration (``1กช 4986``, ``อคม888``).

    A digit-series text such as ``1กช4986`` is also a private-car text, so True does not mean it *is* a
    motorcycle plate; three-consonant series (``อคม888``) are motorcycle-only.
    """
    return PATTERNS["motorcycle"].match(normalise_plate(text)) is not None


def is_valid_plate(text: str) -> bool:
    """True when the (canonical or display) text matches one of the Thai plate formats."""
    return plate_format(normalise_plate(text)) is not None


def _kinds(text: str) -> str:
    """``text`` as a character-class string: ``d`` a digit, ``c`` a Thai consonant, ``x`` anything else."""
    return "".join("d" if ch.isdigit() else "c" if ch in _THAI_CONS_SET else "x" for ch in text)


@functools.lru_cache(maxsize=1 << 16)
def is_valid_prefix(prefix: str) -> bool:
    """True when ``prefix`` (canonical characters) can still be completed into a valid plate."""
    kinds = _kinds(prefix)
    if "x" in kinds:
        return False
    return bool(_PREFIX_RE.match(kinds))


@functools.lru_cache(maxsize=1 << 16)
def is_valid_motorcycle_prefix(prefix: str) -> bool:
    """True when ``prefix`` (canonical characters) can still be completed into a motorcycle registration
    (``[0-9][ก-ฮ]{2}`` or ``[ก-ฮ]{3}`` then 1-4 digits): the reader's grammar for a plate it knows has three lines,
    so that a top line read with one consonant too few (``วล458`` for ``วลพ458``) is not taken for a car plate."""
    kinds = _kinds(prefix)
    return "x" not in kinds and bool(_MOTO_PREFIX_RE.match(kinds))


@functools.lru_cache(maxsize=1 << 16)
def is_valid_car_prefix(prefix: str) -> bool:
    """True when ``prefix`` (canonical characters) can still be completed into a two-line plate's registration
    (``private`` or ``commercial``): the reader's grammar for a plate it reads in the car form, whose top line never
    holds three consonants (a three-consonant series is a motorcycle plate's, read in the motorcycle form)."""
    kinds = _kinds(prefix)
    return "x" not in kinds and bool(_CAR_PREFIX_RE.match(kinds))


def is_car_registration(text: str) -> bool:
    """True when the canonical ``text`` is a complete two-line plate registration (:data:`PATTERNS` ``private`` or
    ``commercial``)."""
    return PATTERNS["private"].match(text) is not None or PATTERNS["commercial"].match(text) is not None


def is_motorcycle_registration(text: str) -> bool:
    """True when the canonical ``text`` is a complete motorcycle registration (:data:`PATTERNS` ``motorcycle``)."""
    return PATTERNS["motorcycle"].match(text) is not None


_MOTO_PREFIX_RE = re.compile(r"^(?:d|dc{1,2}|dccd{1,4}|c{1,3}|cccd{1,4})?$")

# Prefixes of the PATTERNS over character kinds: private dccd{1,4} | c{1,2}d{1,4}, commercial d{6}, motorcycle
# dccd{1,4} | cccd{1,4} (every prefix, including the empty one and the bare series).
_PREFIX_RE = re.compile(r"^(?:dc?|dccd{0,4}|c{1,3}d{0,4}|d{0,6})$")
_CAR_PREFIX_RE = re.compile(r"^(?:dc?|dccd{0,4}|c{1,2}d{0,4}|d{0,6})$")  # private and commercial only


def display_plate(text: str, fmt: str | None = None) -> str:
    """Human display: ``70-1234`` for commercial plates, series space number for the others (``1กข 1234``,
    ``อคม 888``); text that is neither is returned canonical."""
    canon = normalise_plate(text)
    fmt = fmt or plate_format(canon)
    if fmt and fmt.startswith("commercial") and len(canon) == 6 and canon.isdigit():
        return f"{canon[:2]}-{canon[2:]}"
    m = re.match(r"^([0-9]?[ก-ฮ]{1,3})([0-9]{1,4})$", canon)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return canon


def compact_display(text: str) -> str:
    """Form used by ``PlateRead.text``: canonical, plus the hyphen for commercial plates (``70-1234``)."""
    canon = normalise_plate(text)
    if plate_format(canon) == "commercial":
        return f"{canon[:2]}-{canon[2:]}"
    return canon
