"""Reading the CSV files of SPEC 8.2: columns, rows, cells and their parsing.

The rows are read one line at a time, from text or from an open binary file, so
that a file of any size is never held whole (issue 10). The imports
(``patients/imports.py``, ``patients/bulk.py``) only orchestrate: they call these.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import IO, Any

from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk.writes import site_zone
from scoring.i18n import error_text
from scoring.i18n import localize as localize_message
from scoring.rules import units
from scoring.rules.days import localize

PATIENTS, LABS, OBSERVATIONS, EVENTS = "patients", "labs", "observations", "events"

# Columns of SPEC 8.2, in order; the optional ones may be absent from the header.
COLUMNS: dict[str, tuple[str, ...]] = {
    PATIENTS: (
        "mrn",
        "name",
        "sex",
        "birth_date",
        "care_team",
        "diagnosis",
        "product",
        "infusion_date",
        "baseline_mrd_pct",
        "post_ld_mrd_pct",
        "lymphodepletion_start",
    ),
    LABS: ("mrn", "collected_at", "analyte", "value", "unit", "note"),
    OBSERVATIONS: (
        "mrn",
        "date",
        "tmax_c",
        "hypotension",
        "oxygen",
        "antipyretic",
        "tocilizumab",
        "corticosteroids",
    ),
    EVENTS: ("mrn", "date", "event", "detail"),
}
OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {
    PATIENTS: frozenset({"lymphodepletion_start"}),
    LABS: frozenset({"unit", "note"}),  # absent: the canonical unit, no note
}

BARE_DATE_HOUR = 12  # a bare date in labs.csv means 12:00 site time, SPEC 8.2
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # the line endings io.StringIO(newline="") splits at
_PLAIN_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")  # a number is never quoted as text


@dataclass(frozen=True)
class RowError:
    """One refused cell: where, what was there, and what is accepted."""

    file: str
    line: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where = _("%(file)s, line %(line)d") % {"file": where, "line": self.line}
        if self.column:
            where = _("%(where)s, column %(column)s") % {"where": where, "column": self.column}
        if self.value:
            return _("%(where)s: value %(value)s: %(reason)s") % {
                "where": where,
                "value": repr(self.value),
                "reason": self.reason,
            }
        return _("%(where)s: %(reason)s") % {"where": where, "reason": self.reason}


# --- reading the file ----------------------------------------------------------------------

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"): the export writes such text with a leading "'", and a leading "'" of the
# text itself too, so that reading back is unambiguous. Numbers are never quoted.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_QUOTED_STARTS = (*FORMULA_TRIGGERS, "'")


def quote_text_cell(text: str) -> str:
    """Text as a CSV cell a spreadsheet shows as text: a leading ' before a formula start."""
    if text.startswith(_QUOTED_STARTS) and not _PLAIN_DECIMAL.match(text):
        return "'" + text
    return text


def unquote_text_cell(text: str) -> str:
    """The text of a cell written by :func:`quote_text_cell` (other cells are unchanged)."""
    if text.startswith("'") and text[1:].startswith(_QUOTED_STARTS):
        return text[1:]
    return text


@dataclass
class _Row:
    line: int
    cells: dict[str, str]


#: What an import reads: its text, its bytes, or an open binary file (read a line at a time).
CsvSource = str | bytes | IO[bytes]


@dataclass(frozen=True)
class NotText(RowError):
    """The file's bytes are not UTF-8 text: the file itself is refused, whatever rows came before."""


def _not_utf8(filename: str, line: int, byte: int) -> RowError:
    return NotText(
        filename,
        line,
        "",
        "",
        _("the file is not UTF-8 text (byte %(byte)d); save it as CSV UTF-8") % {"byte": byte},
    )


def decode(data: bytes | str, filename: str) -> tuple[str, list[RowError]]:
    """Decode UTF-8 text, with or without a byte-order mark."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff"), []
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        return "", [_not_utf8(filename, data[: exc.start].count(b"\n") + 1, exc.start + 1)]


def text_lines(source: CsvSource, filename: str, errors: list[RowError]) -> Iterator[str]:
    """The lines of a CSV source, one at a time, with their line endings.

    The line endings are those ``io.StringIO(newline="")`` splits at. An open file is
    read from its start each time (a file is read twice: its MRNs, then its rows) and
    decoded a line at a time, so neither its bytes nor its text are held whole; a byte
    that is not UTF-8 stops the reading with an error in ``errors``.
    """
    if isinstance(source, str):
        yield from (m.group() for m in _LINE.finditer(source.removeprefix("\ufeff")))
        return
    if isinstance(source, bytes):
        source = io.BytesIO(source)  # a view of the bytes, not a copy of them as text
    source.seek(0)
    offset, number, encoding = 0, 1, "utf-8-sig"
    for raw in source:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            errors.append(_not_utf8(filename, number, offset + exc.start + 1))
            return
        encoding = "utf-8"  # a byte-order mark only at the start
        offset += len(raw)
        number += 1
        if "\r" in text.rstrip("\r\n") or text.endswith("\r"):
            yield from (m.group() for m in _LINE.finditer(text))  # an old Mac line ending inside
        else:
            yield text


def read_rows(text: str, *, kind: str, filename: str) -> tuple[list[_Row], list[RowError], set[str]]:
    """Split CSV text into rows keyed by column; check the header of SPEC 8.2."""
    errors: list[RowError] = []
    rows, seen = iter_rows(text, kind=kind, filename=filename, errors=errors)
    return list(rows), errors, seen


def iter_rows(
    text: CsvSource, *, kind: str, filename: str, errors: list[RowError]
) -> tuple[Iterator[_Row], set[str]]:
    """The rows of CSV text, one at a time, and the header's columns; errors go to ``errors``.

    The header is checked at once (no rows when it is wrong); the rows' own errors are
    added as the rows are read.
    """
    expected = COLUMNS[kind]
    optional = OPTIONAL_COLUMNS.get(kind, frozenset())
    # Lines one at a time: no copy of the whole text (io.StringIO) is made, nor of a file's bytes.
    reader = csv.reader(text_lines(text, filename, errors), strict=True)
    accepted_header = ",".join(expected)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        reason = _("the header row cannot be read as CSV: %(error)s") % {"error": exc}
        errors.append(RowError(filename, 1, "", "", reason))
        return iter(()), set()
    if header is None or not any(h.strip() for h in header):
        errors.append(
            RowError(
                filename,
                1,
                "",
                "",
                _("the file is empty; the header row must be %(header)s") % {"header": accepted_header},
            )
        )
        return iter(()), set()
    names = [h.strip() for h in header]
    if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
        errors.append(
            RowError(
                filename,
                1,
                "",
                names[0],
                _(
                    "columns must be separated by commas, not semicolons or tabs; the header row must be "
                    "%(header)s"
                )
                % {"header": accepted_header},
            )
        )
        return iter(()), set()
    seen: set[str] = set()
    for name in names:
        if name not in expected:
            errors.append(
                RowError(
                    filename,
                    1,
                    name,
                    name,
                    _("unknown column %(column)s; the accepted columns are %(header)s")
                    % {"column": name, "header": accepted_header},
                )
            )
        elif name in seen:
            errors.append(RowError(filename, 1, name, name, _("this column appears twice in the header")))
        seen.add(name)
    for name in expected:
        if name not in seen and name not in optional:
            errors.append(
                RowError(
                    filename,
                    1,
                    name,
                    "",
                    _("required column %(column)s is missing; the header must be %(header)s")
                    % {"column": name, "header": accepted_header},
                )
            )
    if errors:
        return iter(()), seen
    return _records(reader, names, filename, errors), seen


def column_cells(text: CsvSource, *, kind: str, column: str) -> Iterator[str]:
    """One column's cells, as :func:`iter_rows` gives them, for a first pass that needs no more.

    Neither the rows' dicts nor errors are made: the second, full pass reports the file's
    problems. A row with the wrong number of cells is skipped, as there.
    """
    reader = csv.reader(text_lines(text, "", []), strict=True)
    try:
        header = next(reader, None)
        names = [h.strip() for h in header or ()]
        if column not in names or len(set(names)) != len(names) or not set(names) <= set(COLUMNS[kind]):
            return
        index, width = names.index(column), len(names)
        for record in reader:
            if len(record) == width:
                yield unquote_text_cell(record[index].strip())
    except csv.Error:
        return


def _records(reader: Any, names: list[str], filename: str, errors: list[RowError]) -> Iterator[_Row]:
    line = reader.line_num + 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if len(record) != len(names):
                errors.append(
                    RowError(
                        filename,
                        start,
                        "",
                        "",
                        _(
                            "this row has %(cells)d cell(s), the header has %(columns)d; "
                            "a value containing a comma must be quoted"
                        )
                        % {"cells": len(record), "columns": len(names)},
                    )
                )
                continue
            # unquote_text_cell only for the cells that start with its quote (a call per cell is
            # a good part of reading a big file).
            cells = {
                n: unquote_text_cell(v) if v.startswith("'") else v
                for n, v in zip(names, map(str.strip, record), strict=True)
            }
            yield _Row(start, cells)
    except csv.Error as exc:
        reason = _("this row cannot be read as CSV: %(error)s") % {"error": exc}
        errors.append(RowError(filename, reader.line_num, "", "", reason))


class _Cells:
    """Typed access to one row's cells, collecting every error instead of stopping."""

    def __init__(self, row: _Row, filename: str, errors: list[RowError]) -> None:
        self.row = row
        self.filename = filename
        self.errors = errors
        self.bad = False
        self.comparators: dict[str, str] = {}  # an MRD below detection: column -> "<"

    def raw(self, column: str) -> str:
        return self.row.cells.get(column, "")

    def error(self, column: str, reason: str, value: str | None = None) -> None:
        self.bad = True
        self.errors.append(
            RowError(
                self.filename, self.row.line, column, self.raw(column) if value is None else value, reason
            )
        )

    def text(self, column: str, *, required: bool = False, max_length: int | None = None) -> str:
        value = self.raw(column)
        if required and not value:
            self.error(column, _("%(column)s is required") % {"column": column})
        elif max_length is not None and len(value) > max_length:
            self.error(
                column,
                _("%(column)s is %(length)d characters long; at most %(max)d are accepted")
                % {"column": column, "length": len(value), "max": max_length},
            )
        return value

    def date(self, column: str, *, required: bool = False) -> date | None:
        value = self.raw(column)
        if not value:
            if required:
                self.error(column, _("%(column)s is required, as a date YYYY-MM-DD") % {"column": column})
            return None
        if _ISO_DATE.match(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.error(column, _("not a valid date; accepted: an ISO 8601 date YYYY-MM-DD, e.g. 2025-03-01"))
        return None

    def decimal(self, column: str, *, low: Decimal, high: Decimal, unit: str, places: int) -> Decimal | None:
        value = self.raw(column)
        if not value:
            return None
        number = parse_decimal(value, allow_exponent=True)
        if isinstance(number, str):
            self.error(column, number)
            return None
        if not low <= number <= high:
            self.error(
                column,
                _(
                    "%(value)s %(unit)s is outside the accepted range %(low)s–%(high)s %(unit)s "
                    "(or leave it empty)"
                )
                % {
                    "value": units.format_decimal(number),
                    "unit": unit,
                    "low": units.format_decimal(low),
                    "high": units.format_decimal(high),
                },
            )
            return None
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            self.error(column, _("at most %(places)d decimal places are accepted") % {"places": places})
            return None
        return number

    def mrd(self, column: str, notes: list[str]) -> Decimal | None:
        """An MRD percentage, "<0.01" below detection, exponents allowed; rounded with a note."""
        value = self.raw(column)
        if not value:
            return None
        try:
            comparator, number, messages = units.parse_mrd(value, allow_exponent=True)
        except units.RuleError as exc:
            self.error(column, error_text(exc))
            return None
        self.comparators[column] = comparator
        for message in messages:
            notes.append(
                _("%(file)s, line %(line)d, column %(column)s: %(note)s")
                % {
                    "file": self.filename,
                    "line": self.row.line,
                    "column": column,
                    "note": localize_message(message),
                }
            )
        return number

    def boolean(self, column: str) -> bool:
        value = self.raw(column)
        if value in ("", "0"):
            return False
        if value == "1":
            return True
        self.error(column, _("booleans are 0 or 1 (an empty cell means 0)"))
        return False

    def choice(self, column: str, choices: Sequence[str], default: str) -> str:
        value = self.raw(column)
        if not value:
            return default
        if value in choices:
            return value
        self.error(
            column,
            _("not accepted; accepted: %(choices)s (an empty cell means %(default)s)")
            % {"choices": ", ".join(choices), "default": default},
        )
        return default


def parse_decimal(text: str, *, allow_exponent: bool) -> Decimal | str:
    """A decimal with a point, read by the lab panel's rules (``units.parse_value``); or the reason."""
    try:
        comparator, number = units.parse_value(text, allow_exponent=allow_exponent)
    except units.ValueFormatError as exc:
        return error_text(exc)
    if comparator is not None:
        return _("a comparator (<, >) is not accepted here; enter the number alone, e.g. 12.5")
    return number


def _accepted_times() -> str:
    return _(
        "accepted: ISO 8601 such as 2025-03-08T06:30, 2025-03-08 06:30:00+08:00 or 2025-03-08T06:30Z "
        "(site time when no offset is given), or a bare date 2025-03-08 meaning 12:00 site time"
    )


def parse_collected_at(text: str) -> datetime | str:
    """ISO 8601 in site time when naive; a bare date means 12:00 site time. Else the reason."""
    if not text:
        return _("collected_at is required; %(accepted)s") % {"accepted": _accepted_times()}
    try:
        if _ISO_DATE.match(text):
            parsed = datetime.combine(date.fromisoformat(text), time(BARE_DATE_HOUR))
        elif _ISO_DATETIME.match(text):
            parsed = datetime.fromisoformat(text)
        else:
            return _("not a valid date and time; %(accepted)s") % {"accepted": _accepted_times()}
    except ValueError:
        return _("not a valid date and time; %(accepted)s") % {"accepted": _accepted_times()}
    if timezone.is_aware(parsed):
        # In UTC, so that the same instant compares equal whatever offset it was written with.
        return parsed.astimezone(UTC)
    try:
        return localize(parsed, site_zone())
    except ValueError as exc:  # a daylight-saving gap or fold
        return error_text(exc)
