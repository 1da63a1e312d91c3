"""Staff corrections (void, credit notes) and the overdue reminders."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.billing.models import (
    CreditNote,
    Invoice,
    InvoiceStatus,
)
from crm.billing.services.invoices import apply_stripe_invoice
from crm.billing.stripe_gateway import get_gateway
from crm.errors import DomainError
from crm.extensions import db
from crm.mail.services import queue_email
from crm.members.services import today
from crm.models import utcnow

logger = logging.getLogger(__name__)

# --- staff corrections ------------------------------------------------------------------------------------


def void_invoice(invoice: Invoice, *, actor: User, reason: str) -> None:
    """Void an open invoice at Stripe and here. Raises ``DomainError`` unless it is open, or without a reason."""
    if not (reason and reason.strip()):
        raise DomainError(_("Give a reason."), field="reason")
    if invoice.status is not InvoiceStatus.OPEN or not invoice.stripe_invoice_id:
        raise DomainError(_("Only an open invoice can be voided."))
    data = get_gateway().void_invoice(invoice.stripe_invoice_id, f"{invoice.idempotency_base}:void")
    apply_stripe_invoice(invoice, data)
    record_audit(
        "billing.invoice.voided",
        actor=actor,
        target=invoice,
        details={"number": invoice.number, "reason": reason.strip()},
    )


def issue_credit_note(invoice: Invoice, amount_ore: int, *, actor: User, reason: str) -> CreditNote:
    """Credit part or all of an open or paid invoice at Stripe. Raises ``DomainError`` for a missing reason,
    a non-positive amount or more than what is left to credit."""
    if not (reason and reason.strip()):
        raise DomainError(_("Give a reason."), field="reason")
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID) or not invoice.stripe_invoice_id:
        raise DomainError(_("Only an open or paid invoice can be credited."))
    if amount_ore <= 0 or amount_ore > invoice.gross_ore - invoice.credited_ore:
        raise DomainError(_("The amount must be more than zero and at most what is left to credit."), field="amount")
    sequence = len(invoice.credit_notes) + 1
    data = get_gateway().create_credit_note(
        invoice.stripe_invoice_id,
        f"{invoice.idempotency_base}:credit:{sequence}",
        amount=amount_ore,
        memo=reason.strip(),
        # What was already paid goes back outside Stripe; Stripe refuses a credit note that leaves it open.
        out_of_band=max(0, amount_ore - invoice.outstanding_ore),
    )
    note = CreditNote(
        amount_ore=amount_ore,
        reason=reason.strip(),
        number=data.get("number"),
        stripe_credit_note_id=data["id"],
        created_by_id=actor.id,
    )
    invoice.credit_notes.append(note)
    invoice.credited_ore += amount_ore
    db.session.flush()
    record_audit(
        "billing.invoice.credited",
        actor=actor,
        target=invoice,
        details={"number": invoice.number, "amount_ore": amount_ore, "reason": note.reason, "credit_note": note.number},
    )
    return note


# --- overdue and reminders --------------------------------------------------------------------------------

REMINDER_DAYS = (7, 21)


def send_due_reminders(on: date | None = None) -> dict[str, int]:
    """Remind open invoices 7 and 21 days past due with something left to pay, once each (through the outbox),
    for what is left after credit notes. Never touches the membership. Returns counts by reminder."""
    on = on or today()
    sent = {"7": 0, "21": 0}
    stmt = (
        select(Invoice)
        .where(Invoice.status == InvoiceStatus.OPEN, Invoice.due_on < on - timedelta(days=REMINDER_DAYS[0] - 1))
        # A credit note that settles the invoice leaves it open here until Stripe's event arrives.
        .where(Invoice.gross_ore - Invoice.paid_ore - Invoice.credited_ore > 0)
        .where((Invoice.reminder_7_sent_at.is_(None)) | (Invoice.reminder_21_sent_at.is_(None)))
        .with_for_update(skip_locked=True)
    )
    for invoice in db.session.scalars(stmt):
        days = invoice.days_overdue(on)
        for limit, field in ((21, "reminder_21_sent_at"), (7, "reminder_7_sent_at")):
            if days >= limit and getattr(invoice, field) is None:
                if limit == 21:
                    invoice.reminder_7_sent_at = invoice.reminder_7_sent_at or utcnow()  # never two at once
                setattr(invoice, field, utcnow())
                if invoice.invoice_email:
                    queue_email(
                        to=invoice.invoice_email,
                        template="billing_reminder",
                        context={"invoice": invoice, "days": days, "final": limit == 21},
                    )
                sent[str(limit)] += 1
                break
    db.session.flush()
    return sent


def overdue_invoices(on: date | None = None) -> list[Invoice]:
    on = on or today()
    return list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.status == InvoiceStatus.OPEN, Invoice.due_on < on)
            .order_by(Invoice.due_on, Invoice.id)
        )
    )
