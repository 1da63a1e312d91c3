"""What happens to an invoice at Stripe after it is sent, outside our own requests: refunds of its payments, credit
notes issued or voided in Stripe's dashboard, a draft deleted there. Each is applied from Stripe's current state (the
event only says where to look), so a duplicate or late event changes nothing and every order gives the same result.

Since API version 2025-03-31.basil a charge no longer names its invoice (nor an invoice its charge): an invoice's
payments are invoice payment objects, each pointing at a payment intent whose charge carries the refunded amount.
"""

from __future__ import annotations

import logging

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm.billing.models import CreditNote, CreditNoteStatus, Invoice, InvoiceStatus
from crm.billing.stripe_gateway import StripeGateway
from crm.extensions import db
from crm.models import utcnow

logger = logging.getLogger(__name__)


def _id(value: object) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def refunded_at_stripe(invoice: Invoice, gateway: StripeGateway) -> int:
    """What Stripe has refunded, now, of the payments of ``invoice``: the refunded amounts of the charges of its paid
    invoice payments."""
    total = 0
    for payment in gateway.invoice_payments(invoice_id=invoice.stripe_invoice_id):
        intent_id = _id((payment.get("payment") or {}).get("payment_intent"))
        if payment.get("status") != "paid" or not intent_id:
            continue
        charge = gateway.retrieve_payment_intent(intent_id).get("latest_charge")
        if isinstance(charge, dict):
            total += int(charge.get("amount_refunded") or 0)
    return total


def record_refunds(invoice: Invoice, gateway: StripeGateway) -> bool:
    """Set ``invoice.refunded_ore`` to what Stripe has refunded of its payments (set, never added: the same refund
    seen through several events counts once). Returns whether it changed."""
    refunded = refunded_at_stripe(invoice, gateway)
    if refunded == invoice.refunded_ore:
        return False
    logger.info("invoice %s: refunded %s -> %s øre (Stripe)", invoice.id, invoice.refunded_ore, refunded)
    invoice.refunded_ore = refunded
    db.session.flush()
    return True


def invoices_paid_by(payment_intent_id: str, gateway: StripeGateway) -> list[str]:
    """The Stripe invoice ids a payment intent paid (through its invoice payments)."""
    payments = gateway.invoice_payments(payment_intent_id=payment_intent_id)
    return sorted({i for i in (_id(p.get("invoice")) for p in payments) if i})


def apply_stripe_credit_note(invoice: Invoice, data: dict) -> bool:
    """Mirror a credit note of ``invoice`` in Stripe's current state ``data``: one issued in Stripe's dashboard is
    recorded (and credits the invoice) once; a voided one stops crediting it, once. Our own notes (their metadata
    carries our key) are recorded by the job that issues them. Returns whether anything changed."""
    note = db.session.scalar(select(CreditNote).where(CreditNote.stripe_credit_note_id == data["id"]))
    voided = data.get("status") == "void"
    if note is None:
        if (data.get("metadata") or {}).get("crm_key"):
            return False  # ours, still being recorded by complete_credit_note
        note = CreditNote(
            amount_ore=int(data.get("amount") or 0),
            reason=(data.get("memo") or "").strip() or _("Issued in Stripe"),
            number=data.get("number"),
            stripe_credit_note_id=data["id"],
            status=CreditNoteStatus.VOID if voided else CreditNoteStatus.ISSUED,
        )
        try:
            with db.session.begin_nested():
                invoice.credit_notes.append(note)
                db.session.flush()
        except IntegrityError:
            return False  # recorded meanwhile (the invoice row lock makes this unlikely)
        if not voided:
            invoice.credited_ore += note.amount_ore
        logger.info("invoice %s: credit note %s from Stripe recorded (%s)", invoice.id, data["id"], note.status.value)
        db.session.flush()
        return True
    if voided and note.status is CreditNoteStatus.ISSUED:
        note.status = CreditNoteStatus.VOID
        invoice.credited_ore -= note.amount_ore
        logger.info("invoice %s: credit note %s voided at Stripe", invoice.id, data["id"])
        db.session.flush()
        return True
    return False


def record_deleted_draft(invoice: Invoice) -> bool:
    """Stripe deleted the invoice's draft (its dashboard): nothing was issued, so the invoice is void here, which
    lets finance reissue it. Only a draft: Stripe deletes nothing else. Returns whether it changed."""
    if invoice.status is not InvoiceStatus.DRAFT:
        return False
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    db.session.flush()
    logger.warning("invoice %s: its draft %s was deleted at Stripe; void here", invoice.id, invoice.stripe_invoice_id)
    return True
