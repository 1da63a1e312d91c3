"""Export of the (filtered) invoices for the accounting system, as CSV or XLSX (``crm.exports`` writes both, as
for the member list): Norwegian headings, amounts in kroner with two decimals, dates as 31.12.2026, and the EHF
flag and Peppol id for public-sector customers that receive EHF."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from crm.billing.listing import InvoiceFilters, filtered_invoices
from crm.i18n import oslo_date


def _kroner(ore: int) -> Decimal:
    return Decimal(ore).scaleb(-2)


def invoice_export_rows(filters: InvoiceFilters) -> tuple[list[str], list[list[Any]]]:
    """Every invoice matching ``filters`` (search included, in invoice-number order) as one row."""
    headers = [
        _("Invoice number"), _("Invoice date"), _("Due date"), _("Organisation number"), _("Customer"), _("Year"),
        _("Kind"), _("Net (NOK)"), _("VAT (NOK)"), _("Gross (NOK)"), _("Credited (NOK)"), _("Status"),
        _("Paid on"), _("Stripe customer"), _("Stripe invoice"), _("EHF"), _("Peppol ID"), _("Buyer reference"),
    ]  # fmt: skip
    rows = [
        [
            invoice.number,
            invoice.issued_on,
            invoice.due_on,
            invoice.orgnr,
            invoice.customer_name,
            invoice.year,
            str(invoice.kind.label),
            _kroner(invoice.net_ore),
            _kroner(invoice.vat_ore),
            _kroner(invoice.gross_ore),
            _kroner(invoice.credited_ore),
            str(invoice.status.label),
            oslo_date(invoice.paid_at) if invoice.paid_at else None,  # the Oslo day it was paid
            invoice.stripe_customer_id,
            invoice.stripe_invoice_id,
            _("Yes") if invoice.ehf else _("No"),
            f"0192:{invoice.orgnr}" if invoice.ehf and invoice.orgnr else None,
            invoice.buyer_reference,
        ]
        for invoice in filtered_invoices(filters)
    ]
    return headers, rows
