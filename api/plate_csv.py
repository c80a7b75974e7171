"""Plate watchlist CSV files: reading an import (encoding, size, shape) and writing an export.

An import is a CSV file of at most :data:`MAX_IMPORT_BYTES` and :data:`MAX_IMPORT_ROWS` data rows with a header row
naming its columns (:data:`COLUMNS`; ``plate`` required, the others optional, in any order, case and surrounding
spaces ignored). It may be UTF-8 (with or without a byte-order mark) or Windows-874 / TIS-620 (what Thai Excel saves
as "CSV"); anything else (UTF-16, binary, NUL bytes) is refused with :class:`CsvRefused` naming the line and column.
Rows are returned as cells by column name with their line number; checking the values is the route's business.

An export is UTF-8 with a byte-order mark (so that Excel shows Thai) with every cell that a spreadsheet would run as a
formula (starting with ``= + - @``, tab or carriage return) prefixed with a single quote, as OWASP advises against
CSV injection; an import takes that quote off again, so an export imports back unchanged.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

logger = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 5 * 2**20
"""Largest CSV file accepted (5 MiB; the request body guard refuses a larger upload before reading it)."""
MAX_IMPORT_ROWS = 50_000
"""Most data rows in one import."""
MAX_COLUMNS = 32
"""Most cells a header row may have (a file with a million columns is refused at once)."""
MAX_CELL_CHARS = 1000
"""Longest cell accepted (the csv module stops a single field over 128 KiB while parsing)."""
COLUMNS = ("plate", "province", "reason", "severity", "expires")
"""The columns of an import and an export."""
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet treat a cell as a formula."""
BANGKOK = timezone(timedelta(hours=7), "Asia/Bangkok")
"""Thailand's time zone (UTC+7 all year): times without a zone are read in it, and exports are written in it."""
ENCODINGS = ("utf-8", "windows-874")
"""Encodings an import may be in (Windows-874 is a superset of TIS-620)."""


class CsvRefused(Exception):
    """The file as a whole is refused (``status`` 413, 415 or 422); the message names the line and column."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class CsvRows:
    """The data rows of an import: ``(line, cells by column name)`` and the encoding the file was read in."""

    encoding: str
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[tuple[int, str | None, str]] = field(default_factory=list)
    """Rows refused for their shape (too many cells, a cell too long): ``(line, column or None, reason)``."""


def _line_col(text: str) -> tuple[int, int]:
    """1-based line and column of the position just after ``text`` (any line ending counts)."""
    lines = (text + "x").splitlines()
    return len(lines), len(lines[-1])


def decode(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of an uploaded file: UTF-8 (a byte-order mark dropped), else Windows-874; refused (415)
    when it is UTF-16/32, holds a NUL byte, or is neither, naming where it stops being text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvRefused(415, "file: UTF-16/UTF-32 text is not accepted; save the CSV as UTF-8 or Windows-874 "
                              "(Excel: 'CSV UTF-8')")
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = _line_col(data[:nul].decode("utf-8", errors="replace"))
        raise CsvRefused(415, f"file: a NUL byte at line {line}, column {col}: this is not a text CSV file "
                              f"(UTF-16 or binary?); save it as UTF-8 or Windows-874")
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            raise _undecodable(data, exc.start + len(codecs.BOM_UTF8),
                               "UTF-8 (the file starts with a UTF-8 byte-order mark)") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8:
        try:
            return data.decode("cp874"), "windows-874"
        except UnicodeDecodeError as thai:  # the later failure is where the file stops being either
            raise _undecodable(data, max(utf8.start, thai.start), "UTF-8 nor Windows-874/TIS-620") from None


def _undecodable(data: bytes, start: int, what: str) -> CsvRefused:
    line, col = _line_col(data[:start].decode("utf-8", errors="replace"))
    return CsvRefused(415, f"file: byte 0x{data[start]:02X} at line {line}, column {col} is not {what}; save "
                           f"the CSV as UTF-8 or Windows-874")


def _header(cells: list[str]) -> list[str]:
    """The column names of a header row (lower-cased, stripped); refused (422) when unusable."""
    if len(cells) > MAX_COLUMNS:
        raise CsvRefused(422, f"line 1: the header has {len(cells)} columns; at most {MAX_COLUMNS} (expected "
                              f"{', '.join(COLUMNS)})")
    names = [c.strip().lower().lstrip("\ufeff") for c in cells]
    while names and not names[-1]:  # trailing empty cells (Excel's extra commas)
        names.pop()
    for i, name in enumerate(names, start=1):
        if name not in COLUMNS:
            raise CsvRefused(422, f"line 1, column {i}: unknown column {name[:40]!r}; the columns are "
                                  f"{', '.join(COLUMNS)}")
        if names.index(name) != i - 1:
            raise CsvRefused(422, f"line 1, column {i}: column {name!r} appears twice")
    if "plate" not in names:
        raise CsvRefused(422, f"line 1: no 'plate' column in the header (the columns are {', '.join(COLUMNS)})")
    return names


def unquote(value: str) -> str:
    """A cell as exported, without the quote :func:`neutralise` put before a formula character."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_PREFIXES:
        return value[1:]
    return value


def _row(line: int, names: list[str], cells: list[str], out: CsvRows) -> None:
    """Add one data row to ``out`` (blank rows are ignored, a malformed one goes to ``out.errors``)."""
    if not any(c.strip() for c in cells):
        return
    extra = [c for c in cells[len(names):] if c.strip()]
    if extra:
        out.errors.append((line, None, f"{len(cells)} cells, but the header names {len(names)} columns"))
        return
    for name, cell in zip(names, cells, strict=False):
        if len(cell) > MAX_CELL_CHARS:
            out.errors.append((line, name, f"longer than {MAX_CELL_CHARS} characters"))
            return
    out.rows.append((line, {name: unquote(cell.strip()) for name, cell in zip(names, cells, strict=False)}))


def read_rows(data: bytes) -> CsvRows:
    """The rows of an uploaded CSV file (:func:`decode`, the header, every data row with its line number); a file
    refused as a whole raises :class:`CsvRefused`."""
    if len(data) > MAX_IMPORT_BYTES:
        raise CsvRefused(413, f"file: larger than {MAX_IMPORT_BYTES} bytes")
    text, encoding = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise CsvRefused(422, "file: empty; the first line must name the columns (plate, ...)")
        out = CsvRows(encoding=encoding, columns=_header(header))
        line = reader.line_num + 1  # where the next row starts (a quoted cell may span lines)
        for cells in reader:
            _row(line, out.columns, cells, out)
            if len(out.rows) + len(out.errors) > MAX_IMPORT_ROWS:
                raise CsvRefused(413, f"line {line}: more than {MAX_IMPORT_ROWS} rows; split the file")
            line = reader.line_num + 1
    except csv.Error as exc:
        raise CsvRefused(422, f"line {reader.line_num}: not readable as CSV ({exc})") from None
    logger.debug("read %d CSV rows (%s), %d malformed", len(out.rows), encoding, len(out.errors))
    return out


# -- export -------------------------------------------------------------------------------------------------------
def neutralise(value: str) -> str:
    """A cell a spreadsheet will not run as a formula: a single quote before a leading ``= + - @``, tab or CR."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def expiry_text(expires_at: float | None) -> str:
    """An entry's expiry as an ISO time in Bangkok time (``2026-12-31T23:59:59+07:00``), empty for none."""
    if expires_at is None:
        return ""
    return datetime.fromtimestamp(float(expires_at), BANGKOK).isoformat(timespec="seconds")


def write_csv(entries: Iterable[dict]) -> bytes:
    """The export of plate entries: a header and one row per entry, UTF-8 with a byte-order mark, CRLF lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for e in entries:
        cells = [e.get("plate") or "", e.get("province") or "", e.get("reason") or "", e.get("severity") or "",
                 expiry_text(e.get("expires_at"))]
        writer.writerow([neutralise(str(c)) for c in cells])
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
