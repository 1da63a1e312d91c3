"""CSV export of invoices for the accounting system."""

from __future__ import annotations

import csv
import io

from crm.billing.listing import InvoiceFilters, filtered_invoices

COLUMNS = (
    "invoice_number",
    "invoice_date",
    "due_date",
    "orgnr",
    "customer",
    "year",
    "kind",
    "net_nok",
    "vat_nok",
    "gross_nok",
    "credited_nok",
    "status",
    "paid_date",
    "stripe_customer_id",
    "stripe_invoice_id",
    "ehf",
    "peppol_id",
    "buyer_reference",
)


def _nok(ore: int) -> str:
    return f"{ore // 100}.{ore % 100:02d}" if ore >= 0 else f"-{_nok(-ore)}"


def _safe(value: str) -> str:
    # A spreadsheet would run a cell that starts with these as a formula.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def invoices_csv(filters: InvoiceFilters) -> str:
    """One row per invoice (amounts in kroner with two decimals, dates ISO); the EHF flag and Peppol id for
    public-sector customers that receive EHF."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for invoice in filtered_invoices(filters):
        writer.writerow(
            [
                invoice.number or "",
                invoice.issued_on.isoformat() if invoice.issued_on else "",
                invoice.due_on.isoformat() if invoice.due_on else "",
                invoice.orgnr or "",
                _safe(invoice.customer_name),
                invoice.year,
                invoice.kind.value,
                _nok(invoice.net_ore),
                _nok(invoice.vat_ore),
                _nok(invoice.gross_ore),
                _nok(invoice.credited_ore),
                invoice.status.value,
                invoice.paid_at.date().isoformat() if invoice.paid_at else "",
                invoice.stripe_customer_id or "",
                invoice.stripe_invoice_id or "",
                "yes" if invoice.ehf else "no",
                f"0192:{invoice.orgnr}" if invoice.ehf and invoice.orgnr else "",
                _safe(invoice.buyer_reference or ""),
            ]
        )
    return out.getvalue()
