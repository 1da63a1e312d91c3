"""Reconciliation: local invoices against Stripe's."""

from __future__ import annotations

import logging

from sqlalchemy import select

from crm.billing.models import Invoice
from crm.billing.services import apply_stripe_invoice
from crm.billing.stripe_gateway import StripeRefused, get_gateway
from crm.extensions import db

logger = logging.getLogger(__name__)


def reconcile(year: int, *, fix: bool = False) -> list[str]:
    """Every difference in status, number, total, VAT, paid and credited amount between the year's local
    invoices and Stripe, and Stripe invoices of ours that have no local row. With ``fix``, Stripe's state is applied
    in full, amounts included, so running it again reports nothing new."""
    gateway = get_gateway()
    differences: list[str] = []
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.year == year).order_by(Invoice.id)))
    for invoice in invoices:
        label = f"invoice {invoice.id} ({invoice.customer_name}, {invoice.number or 'no number'})"
        if not invoice.stripe_invoice_id:
            differences.append(f"{label}: not at Stripe yet (step {invoice.stripe_step})")
            continue
        try:
            remote = gateway.retrieve_invoice(invoice.stripe_invoice_id)
        except StripeRefused as exc:
            differences.append(f"{label}: Stripe does not know {invoice.stripe_invoice_id}: {exc.message}")
            continue
        found = []
        if remote.get("status") != invoice.status.value:
            found.append(f"status local {invoice.status.value}, Stripe {remote.get('status')}")
        if remote.get("number") and remote.get("number") != invoice.number:
            found.append(f"number local {invoice.number}, Stripe {remote.get('number')}")
        if remote.get("status") != "draft" and remote.get("total") != invoice.gross_ore:
            found.append(f"total local {invoice.gross_ore}, Stripe {remote.get('total')}")
        if remote.get("status") != "draft" and _tax(remote) != invoice.vat_ore:
            found.append(f"VAT local {invoice.vat_ore}, Stripe {_tax(remote)}")
        if int(remote.get("amount_paid") or 0) != invoice.paid_ore:
            found.append(f"paid local {invoice.paid_ore}, Stripe {remote.get('amount_paid')}")
        # Credit notes still on their way to Stripe are reserved locally, not yet credited there.
        issued = invoice.credited_ore - invoice.pending_credit_ore
        if _credited(remote) != issued:
            found.append(f"credited local {issued}, Stripe {_credited(remote)}")
        for item in found:
            differences.append(f"{label}: {item}")
        if found and fix:
            _apply_fully(invoice, remote)
    known = set(db.session.scalars(select(Invoice.stripe_invoice_id).where(Invoice.stripe_invoice_id.is_not(None))))
    for remote in _stripe_invoices(gateway):
        key = (remote.get("metadata") or {}).get("crm_key", "")
        if key.split(":")[2:3] == [str(year)] and remote["id"] not in known:
            differences.append(f"Stripe invoice {remote['id']} ({key}) has no local invoice")
    if fix:
        db.session.flush()
    logger.info("reconcile %s: %s differences (fix=%s)", year, len(differences), fix)
    return differences


def _tax(remote: dict) -> int:
    if remote.get("tax") is not None:
        return int(remote["tax"])
    return sum(int(tax.get("amount") or 0) for tax in remote.get("total_taxes") or [])


def _credited(remote: dict) -> int:
    return int(remote.get("pre_payment_credit_notes_amount") or 0) + int(
        remote.get("post_payment_credit_notes_amount") or 0
    )


def _apply_fully(invoice: Invoice, remote: dict) -> None:
    """Stripe's state wins entirely: status, number and links (the webhook path, forced), then the amounts,
    which the webhook path never lowers (so here they may move either way)."""
    apply_stripe_invoice(invoice, remote, force=True)
    if remote.get("status") != "draft" and remote.get("total") is not None:
        invoice.gross_ore = int(remote["total"])
        invoice.vat_ore = _tax(remote)
        invoice.net_ore = invoice.gross_ore - invoice.vat_ore
    invoice.paid_ore = int(remote.get("amount_paid") or 0)
    invoice.credited_ore = _credited(remote) + invoice.pending_credit_ore
    logger.info("reconcile: invoice %s amounts set from Stripe", invoice.id)


def _stripe_invoices(gateway):
    starting_after = None
    while True:
        page = gateway.list_invoices(limit=100, starting_after=starting_after)
        yield from page["data"]
        if not page.get("has_more") or not page["data"]:
            return
        starting_after = page["data"][-1]["id"]
