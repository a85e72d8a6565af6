"""Tables rendered as CSV (UTF-8 with BOM), JSON and XLSX, byte for byte the same for the same input.

CSV and JSON are for programs: codes (``green``, ``met``), ISO 8601 times, and numbers without float noise (ratios
and other fractions to at most six decimals, seconds to three). XLSX is for people: a title row and a note above the
headers, the words of codes in the workbook's language, percentages to two decimals, times as date cells.

Nothing here reads a clock: the only date inside an XLSX file is the one the caller passes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
import xlsxwriter

from certmon.core.words import Lang, word

# status, state, band and severity are codes that XLSX shows as words; time is ISO 8601 text that XLSX shows as a date.
Kind = Literal["text", "int", "ratio", "seconds", "number", "status", "state", "band", "severity", "time"]
CSV_MEDIA = "text/csv; charset=utf-8"
JSON_MEDIA = "application/json"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILLS = {"green": "#63BE7B", "yellow": "#FFEB84", "red": "#F8696B"}  # Excel's own traffic-light shades
RATIO_DECIMALS = 6  # a millionth of a ratio: far finer than one incident in a month, and no float noise
SECONDS_DECIMALS = 3
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
HEADER_ROWS = 4  # title, note, Thai header, English header


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    en: str
    th: str
    kind: Kind = "text"
    width: int = 14


@dataclass(frozen=True, slots=True)
class Table:
    """One table: a CSV file, a JSON list and an XLSX sheet; rows are dicts keyed by the columns' keys."""

    name: str  # file stem, e.g. "figures"
    sheet: str  # XLSX sheet title, at most 31 characters
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)


def _csv_value(value: Any, kind: Kind) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "seconds" and isinstance(value, int | float):
        return repr(round(float(value), SECONDS_DECIMALS))
    if kind == "ratio" and isinstance(value, int):
        return repr(float(value))
    if isinstance(value, float):
        # Also in text columns (a restated figure's old and new value): 0.21874999999999997 is written 0.21875.
        return repr(round(value, RATIO_DECIMALS))
    return str(value)


def to_csv(table: Table) -> bytes:
    """UTF-8 with a byte-order mark so that Excel shows Thai names; CRLF line ends as RFC 4180 says."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow([_csv_value(row.get(c.key), c.kind) for c in table.columns])
    return out.getvalue().encode("utf-8-sig")


def to_json(data: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8 (Thai stays readable), final newline."""
    # orjson rather than json: the standard encoder falls back to pure Python whenever it indents.
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def to_xlsx(tables: Sequence[Table], created: datetime, title: str, *, lang: Lang = "th", note: str = "") -> bytes:
    """One sheet per table: the title and the note, a Thai header row above an English one, then the rows; statuses
    as words in cells filled by colour, states and bands as words, times as date cells."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False})
    # xlsxwriter stamps the current time into docProps/core.xml unless told otherwise.
    workbook.set_properties({"title": title, "author": "certmon", "created": created.replace(tzinfo=None)})
    title_format = workbook.add_format({"bold": True, "font_size": 14})
    th_header = workbook.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True})
    en_header = workbook.add_format({"bold": True, "italic": True, "bg_color": "#D9E1F2", "border": 1})
    formats: dict[str, Any] = {
        "ratio": workbook.add_format({"num_format": "0.00%"}),
        "seconds": workbook.add_format({"num_format": "0.0"}),
        "number": workbook.add_format({"num_format": "0.00"}),
        "time": workbook.add_format({"num_format": TIME_FORMAT}),
    }
    fills = {colour: workbook.add_format({"bg_color": fill, "bold": True}) for colour, fill in FILLS.items()}
    for table in tables:
        sheet = workbook.add_worksheet(table.sheet)
        sheet.write_string(0, 0, title, title_format)
        if note:
            sheet.write_string(1, 0, note)
        for col, column in enumerate(table.columns):
            sheet.set_column(col, col, column.width)
            sheet.write_string(HEADER_ROWS - 2, col, column.th, th_header)
            sheet.write_string(HEADER_ROWS - 1, col, column.en, en_header)
        sheet.freeze_panes(HEADER_ROWS, 0)
        for r, row in enumerate(table.rows, start=HEADER_ROWS):
            for col, column in enumerate(table.columns):
                _write_cell(sheet, r, col, row.get(column.key), column.kind, lang, formats, fills)
        if table.rows:
            sheet.autofilter(HEADER_ROWS - 1, 0, HEADER_ROWS - 1 + len(table.rows), len(table.columns) - 1)
    workbook.close()
    return buffer.getvalue()


def _write_cell(
    sheet: Any, r: int, col: int, value: Any, kind: Kind, lang: Lang, formats: dict[str, Any], fills: dict[str, Any]
) -> None:
    if value is None:
        return
    if kind in ("status", "state", "band", "severity") and isinstance(value, str):
        sheet.write_string(r, col, word(kind, value, lang), fills.get(value) if kind == "status" else None)
    elif kind == "time" and isinstance(value, str):
        # The text is already local (Bangkok) time with its offset; a cell has no zone, and people read seconds.
        local = datetime.fromisoformat(value).replace(tzinfo=None, microsecond=0)
        sheet.write_datetime(r, col, local, formats["time"])
    elif isinstance(value, bool):
        sheet.write_boolean(r, col, value)
    elif isinstance(value, int | float) and kind != "text":
        sheet.write_number(r, col, value, formats.get(kind))
    else:
        sheet.write_string(r, col, str(value))
