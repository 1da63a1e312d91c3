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
    CreditNoteStatus,
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


def _locked(invoice: Invoice) -> Invoice:
    """``invoice`` re-read under a row lock (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers anyway), so
    two requests, or a request and a job, never act on the same stale amounts or state."""
    db.session.refresh(invoice, with_for_update=True)
    return invoice


# Stripe voids an open invoice and one marked uncollectible (written off) alike; a paid one only takes credit notes.
VOIDABLE = (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)
CREDITABLE = (InvoiceStatus.OPEN, InvoiceStatus.PAID)


def never_at_stripe(invoice: Invoice) -> bool:
    """An invoice finalised here that Stripe never had (the offline demo's): no Stripe id, and past the draft stage.
    A draft without an id may still be on its way to Stripe (its job resumes at ``stripe_step``; see
    ``is_local_draft``), but only Stripe's answer moves a real invoice out of draft, and that answer carries the id.
    Voiding or crediting such an invoice is done here, with no Stripe call."""
    return not invoice.stripe_invoice_id and invoice.status is not InvoiceStatus.DRAFT


def void_invoice(invoice: Invoice, *, actor: User, reason: str) -> None:
    """Record staff's request to void an open or uncollectible invoice and enqueue, after commit, the job that
    voids it at Stripe (``complete_void``); no Stripe call here. An invoice that Stripe never had
    (``never_at_stripe``) is voided here and now instead. Raises ``DomainError`` (nothing changed) without a
    reason, unless the invoice is open or uncollectible, or while a void or a credit note of it is still being
    sent to Stripe."""
    if not (reason and reason.strip()):
        raise DomainError(_("Give a reason."), field="reason")
    invoice = _locked(invoice)
    if invoice.void_pending:
        raise DomainError(_("The invoice is already being voided at Stripe."))
    if invoice.status not in VOIDABLE:
        raise DomainError(_("Only an open or uncollectible invoice can be voided."))
    if invoice.pending_credit_notes:
        raise DomainError(_("A credit note of the invoice is still being sent to Stripe: try again shortly."))
    if never_at_stripe(invoice):
        _void_without_stripe(invoice, actor=actor, reason=reason.strip())
        return
    invoice.void_requested_at = utcnow()
    invoice.void_requested_by_id = actor.id
    invoice.void_reason = reason.strip()
    invoice.void_error = None
    db.session.flush()
    record_audit(
        "billing.invoice.void_requested",
        actor=actor,
        target=invoice,
        details={"number": invoice.number, "reason": invoice.void_reason},
    )
    from crm.billing.jobs import enqueue_void

    enqueue_void(invoice)
    logger.info("void of invoice %s requested by %s", invoice.id, actor.email)


def _void_without_stripe(invoice: Invoice, *, actor: User, reason: str) -> None:
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    invoice.void_error = None
    db.session.flush()
    record_audit(
        "billing.invoice.voided",
        actor=actor,
        target=invoice,
        details={"number": invoice.number, "reason": reason, "without_stripe": True},
    )
    logger.info("invoice %s, never at Stripe, voided here by %s", invoice.id, actor.email)


def complete_void(invoice: Invoice) -> None:
    """Void at Stripe the invoice whose void staff requested (the same idempotency key every time), apply Stripe's
    state and audit it as the requesting staff member; clear the request. Does nothing without a pending request.
    Raises ``StripeGatewayError`` (nothing changed here)."""
    invoice = _locked(invoice)
    if not invoice.void_pending or not invoice.stripe_invoice_id:
        return
    data = get_gateway().void_invoice(invoice.stripe_invoice_id, f"{invoice.idempotency_base}:void")
    apply_stripe_invoice(invoice, data)
    record_audit(
        "billing.invoice.voided",
        actor=invoice.void_requested_by,
        target=invoice,
        details={"number": invoice.number, "reason": invoice.void_reason},
    )
    _clear_void_request(invoice)
    db.session.flush()


def fail_void(invoice: Invoice, error: str) -> None:
    """Stripe refused the requested void for good: clear the request and keep ``error`` for the invoice page."""
    invoice = _locked(invoice)
    if not invoice.void_pending:
        return
    record_audit(
        "billing.invoice.void_failed",
        actor=None,
        target=invoice,
        details={"number": invoice.number, "reason": invoice.void_reason, "error": error},
    )
    _clear_void_request(invoice)
    invoice.void_error = error
    db.session.flush()
    logger.warning("void of invoice %s failed: %s", invoice.id, error)


def _clear_void_request(invoice: Invoice) -> None:
    invoice.void_requested_at = invoice.void_requested_by_id = invoice.void_reason = None


def issue_credit_note(invoice: Invoice, amount_ore: int, *, actor: User, reason: str) -> CreditNote:
    """Write a pending credit note for part or all of an open or paid invoice, reserve its amount on the invoice
    (``credited_ore``, so what is left to credit counts pending notes) and enqueue, after commit, the job that
    issues it at Stripe (``complete_credit_note``); no Stripe call here. Two submits at once cannot over-credit:
    the second waits for the first's row lock and sees its reservation. A note of an invoice that Stripe never had
    (``never_at_stripe``) is issued here and now instead, numbered after the invoice; one that leaves nothing to
    pay settles the open invoice, as Stripe does.

    Raises ``DomainError`` (nothing changed) for a missing reason, a non-positive amount or more than what is left
    to credit, unless the invoice is open or paid, or while a void of it is pending."""
    if not (reason and reason.strip()):
        raise DomainError(_("Give a reason."), field="reason")
    invoice = _locked(invoice)
    if invoice.status not in CREDITABLE:
        raise DomainError(_("Only an open or paid invoice can be credited."))
    if invoice.void_pending:
        raise DomainError(_("The invoice is being voided at Stripe, so it cannot be credited."))
    if amount_ore <= 0 or amount_ore > invoice.gross_ore - invoice.credited_ore:
        raise DomainError(_("The amount must be more than zero and at most what is left to credit."), field="amount")
    note = CreditNote(
        amount_ore=amount_ore,
        reason=reason.strip(),
        status=CreditNoteStatus.PENDING,
        created_by_id=actor.id,
    )
    invoice.credit_notes.append(note)
    invoice.credited_ore += amount_ore
    local = never_at_stripe(invoice)
    if local:
        note.status = CreditNoteStatus.ISSUED
        note.number = f"{invoice.number}-CN{len(invoice.credit_notes)}"
        if invoice.status is InvoiceStatus.OPEN and invoice.outstanding_ore == 0:
            invoice.status, invoice.paid_at = InvoiceStatus.PAID, utcnow()
    db.session.flush()
    record_audit(
        "billing.invoice.credited",
        actor=actor,
        target=invoice,
        details={"number": invoice.number, "amount_ore": amount_ore, "reason": note.reason}
        | ({"without_stripe": True} if local else {}),
    )
    if local:
        logger.info("credit note %s of invoice %s (never at Stripe) issued by %s", note.id, invoice.id, actor.email)
        return note
    from crm.billing.jobs import enqueue_credit_note

    enqueue_credit_note(note.id)
    return note


def complete_credit_note(note: CreditNote) -> None:
    """Issue a pending credit note at Stripe (its key is the note's place among the invoice's notes, as it always
    was) and record Stripe's number. Does nothing unless the note is pending. Raises ``StripeGatewayError``
    (nothing changed here)."""
    invoice = _locked(note.invoice)
    db.session.refresh(note)
    if note.status is not CreditNoteStatus.PENDING or not invoice.stripe_invoice_id:
        return
    sequence = invoice.credit_notes.index(note) + 1
    # What Stripe has left to pay: the reservations of notes not issued yet (this one too) are not at Stripe.
    at_stripe = (
        max(0, invoice.gross_ore - invoice.paid_ore - (invoice.credited_ore - invoice.pending_credit_ore))
        if invoice.status is InvoiceStatus.OPEN
        else 0
    )
    data = get_gateway().create_credit_note(
        invoice.stripe_invoice_id,
        f"{invoice.idempotency_base}:credit:{sequence}",
        amount=note.amount_ore,
        memo=note.reason,
        # What was already paid goes back outside Stripe; Stripe refuses a credit note that leaves it open.
        out_of_band=max(0, note.amount_ore - at_stripe),
    )
    note.number = data.get("number")
    note.stripe_credit_note_id = data["id"]
    note.status = CreditNoteStatus.ISSUED
    db.session.flush()
    logger.info("credit note %s of invoice %s issued at Stripe as %s", note.id, invoice.id, note.number)


def fail_credit_note(note: CreditNote, error: str) -> None:
    """Stripe refused the credit note for good: fail it, release its reserved amount and keep ``error``."""
    invoice = _locked(note.invoice)
    db.session.refresh(note)
    if note.status is not CreditNoteStatus.PENDING:
        return
    note.status, note.error = CreditNoteStatus.FAILED, error
    invoice.credited_ore -= note.amount_ore
    record_audit(
        "billing.invoice.credit_failed",
        actor=None,
        target=invoice,
        details={"number": invoice.number, "amount_ore": note.amount_ore, "reason": note.reason, "error": error},
    )
    db.session.flush()
    logger.warning("credit note %s of invoice %s failed: %s", note.id, invoice.id, error)


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
