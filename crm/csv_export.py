"""CSV as Excel with Norwegian settings opens it: UTF-8 with a byte-order mark, semicolons, dates as
31.12.2026. Cells that a spreadsheet would run as a formula (starting with = + - @) get an apostrophe."""

from __future__ import annotations

import csv
import io
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(headers: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(
            ["" if v is None else (v.strftime("%d.%m.%Y") if hasattr(v, "strftime") else safe_cell(v)) for v in row]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
