"""Tables as spreadsheet files: CSV as Excel with Norwegian settings opens it, and XLSX. Used by every export
(the member list, the invoices), so they all read the same way.

CSV is UTF-8 with a byte-order mark, semicolons between cells, dates as 31.12.2026 and decimals with a comma.
Cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) are prefixed
with an apostrophe in both formats.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from flask import Response

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def formula_safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, Decimal):
        return f"{value:.2f}".replace(".", ",")
    return formula_safe(value)


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, sheet_title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_title[:31]  # Excel's limit
    sheet.append(list(headers))
    for row in rows:
        sheet.append([formula_safe(value) for value in row])
    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if hasattr(cell.value, "strftime"):
                cell.number_format = "DD.MM.YYYY"
            elif isinstance(cell.value, Decimal):
                cell.number_format = "#,##0.00"
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def table_response(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, fmt: str, filename: str, sheet_title: str
) -> Response:
    """The table as a download in ``fmt`` (a key of ``FORMATS``), named ``filename``.``fmt``."""
    body = to_csv(headers, rows) if fmt == "csv" else to_xlsx(headers, rows, sheet_title=sheet_title)
    return Response(
        body, mimetype=FORMATS[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    )
