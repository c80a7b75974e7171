"""N-grams of plate strings and the operator query language (partial and wildcard) compiled safely.

Operators type plates, never regular expressions:

- ``1กข1234``: exact (when it is a whole plate) or partial;
- ``1234`` / ``กข``: partial (substring anywhere in the plate);
- ``กข?234``: ``?`` is exactly one character; ``*1234``: ``*`` is any run of characters (possibly empty).

A query is bounded (:data:`MAX_QUERY_LEN` characters, :data:`MAX_WILDCARDS` wildcards, at least
:data:`MIN_LITERAL` literal characters) and compiled into a plain-Python matcher over a short plate string,
so no query can make the server backtrack for long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GRAM_SIZES = (2, 3)
"""Sizes of the n-grams indexed over distinct plates (bigrams for two-letter series, trigrams otherwise)."""

MAX_QUERY_LEN = 16
MAX_WILDCARDS = 4
MIN_LITERAL = 2


class QueryError(ValueError):
    """A plate query that is not allowed; the message says why."""


def plate_grams(plate: str) -> set[str]:
    """Every n-gram of :data:`GRAM_SIZES` in ``plate`` (the whole plate if it is shorter)."""
    grams: set[str] = set()
    for n in GRAM_SIZES:
        if len(plate) < n:
            continue
        grams.update(plate[i:i + n] for i in range(len(plate) - n + 1))
    if not grams and plate:
        grams.add(plate)
    return grams


def query_grams(literal: str) -> set[str]:
    """The most selective grams of a literal run: trigrams if it has 3+ characters, else the bigram."""
    n = 3 if len(literal) >= 3 else 2
    if len(literal) < n:
        return set()
    return {literal[i:i + n] for i in range(len(literal) - n + 1)}


@dataclass(frozen=True)
class PlatePattern:
    """A compiled operator query: literal runs for the index and a safe matcher for verification."""

    text: str
    literals: tuple[str, ...]
    has_wildcards: bool
    _regex: re.Pattern[str]

    def matches(self, plate: str) -> bool:
        """Whether ``plate`` contains the query (partial) or matches the wildcard pattern."""
        return self._regex.search(plate) is not None

    def server_match(self) -> tuple[str, bytes]:
        """(mode, pattern) for the server-side walk: ``find`` a plain substring, or ``match`` a Lua pattern.

        Lua patterns work on bytes: ``?`` becomes one UTF-8 sequence (a lead byte and its continuation bytes) and
        ``*`` any bytes; both match exactly the plates the Python matcher accepts (the walk's hits are checked
        again with :meth:`matches`).
        """
        if not self.has_wildcards:
            return "find", self.text.encode()
        parts = [b"^"]
        for ch in re.sub(r"\*+", "*", self.text):
            if ch == "?":
                parts.append(b"[^\x80-\xbf][\x80-\xbf]*")
            elif ch == "*":
                parts.append(b".*")
            elif ch.isascii() and not ch.isalnum():
                parts.append(b"%" + ch.encode())
            else:
                parts.append(ch.encode())
        parts.append(b"$")
        return "match", b"".join(parts)

    def index_grams(self) -> set[str]:
        """Grams every matching plate must contain."""
        grams: set[str] = set()
        for lit in self.literals:
            grams |= query_grams(lit)
        return grams


def compile_query(text: str) -> PlatePattern:
    """Validate and compile an operator query; raises :class:`QueryError` with the reason.

    Without wildcards the query matches as a substring. With wildcards it matches a whole plate unless it
    starts/ends with ``*``. Literal characters are escaped, so the query can never act as a regular expression.
    """
    if len(text) > MAX_QUERY_LEN:
        raise QueryError(f"query is longer than {MAX_QUERY_LEN} characters")
    wildcards = sum(text.count(c) for c in "?*")
    if wildcards > MAX_WILDCARDS:
        raise QueryError(f"query has more than {MAX_WILDCARDS} wildcards (? or *)")
    literals = tuple(part for part in re.split(r"[?*]+", text) if part)
    if sum(len(p) for p in literals) < MIN_LITERAL or max((len(p) for p in literals), default=0) < MIN_LITERAL:
        raise QueryError(f"query needs a run of at least {MIN_LITERAL} plain characters")
    has_wildcards = wildcards > 0
    # "**" collapses to one "*"; each "*" is bounded by the plate length, so matching stays tiny.
    body = re.sub(r"\*+", "*", text)
    parts = []
    for ch in body:
        if ch == "?":
            parts.append(".")
        elif ch == "*":
            parts.append(".*")
        else:
            parts.append(re.escape(ch))
    pattern = "".join(parts)
    if has_wildcards:
        pattern = "^" + pattern + "$"
    return PlatePattern(text=text, literals=literals, has_wildcards=has_wildcards, _regex=re.compile(pattern))
