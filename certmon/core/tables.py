"""Tables rendered as CSV (UTF-8 with BOM), JSON and XLSX, byte for byte the same for the same input.

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

Kind = Literal["text", "int", "ratio", "seconds", "number", "status"]
CSV_MEDIA = "text/csv; charset=utf-8"
JSON_MEDIA = "application/json"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILLS = {"green": "#63BE7B", "yellow": "#FFEB84", "red": "#F8696B"}  # Excel's own traffic-light shades
RATIO_DECIMALS = 6
SECONDS_DECIMALS = 3


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
    if kind == "ratio" and isinstance(value, int | float):
        return repr(round(float(value), RATIO_DECIMALS))
    if kind == "seconds" and isinstance(value, int | float):
        return repr(round(float(value), SECONDS_DECIMALS))
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


def to_xlsx(tables: Sequence[Table], created: datetime, title: str) -> bytes:
    """One sheet per table, a Thai header row above an English one, status cells filled by colour."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False})
    # xlsxwriter stamps the current time into docProps/core.xml unless told otherwise.
    workbook.set_properties({"title": title, "author": "certmon", "created": created.replace(tzinfo=None)})
    th_header = workbook.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True})
    en_header = workbook.add_format({"bold": True, "italic": True, "bg_color": "#D9E1F2", "border": 1})
    formats: dict[str, Any] = {
        "ratio": workbook.add_format({"num_format": "0.00%"}),
        "seconds": workbook.add_format({"num_format": "0.0"}),
        "number": workbook.add_format({"num_format": "0.00"}),
    }
    fills = {colour: workbook.add_format({"bg_color": fill, "bold": True}) for colour, fill in FILLS.items()}
    for table in tables:
        sheet = workbook.add_worksheet(table.sheet)
        for col, column in enumerate(table.columns):
            sheet.set_column(col, col, column.width)
            sheet.write_string(0, col, column.th, th_header)
            sheet.write_string(1, col, column.en, en_header)
        sheet.freeze_panes(2, 0)
        for r, row in enumerate(table.rows, start=2):
            for col, column in enumerate(table.columns):
                _write_cell(sheet, r, col, row.get(column.key), column.kind, formats, fills)
        if table.rows:
            sheet.autofilter(1, 0, len(table.rows) + 1, len(table.columns) - 1)
    workbook.close()
    return buffer.getvalue()


def _write_cell(
    sheet: Any, r: int, col: int, value: Any, kind: Kind, formats: dict[str, Any], fills: dict[str, Any]
) -> None:
    if value is None:
        return
    if kind == "status" and value in fills:
        sheet.write_string(r, col, str(value), fills[value])
    elif isinstance(value, bool):
        sheet.write_boolean(r, col, value)
    elif isinstance(value, int | float) and kind != "text":
        sheet.write_number(r, col, value, formats.get(kind))
    else:
        sheet.write_string(r, col, str(value))
