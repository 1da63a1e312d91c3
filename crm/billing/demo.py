"""Demo invoices: the billable demo memberships invoiced for this year in every state, offline.

Call ``load_billing_demo()`` inside an app context after ``load_members_demo()``, then commit. It never
calls Stripe (the demo runs without a network): the rows look like finalised invoices but carry no Stripe
ids, so ``flask crm billing reconcile`` lists them as "not at Stripe". Idempotent: an invoice that exists
for (membership, year, kind) is left as it is.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm.billing.models import CreditNote, Invoice, InvoiceKind, InvoiceStatus
from crm.billing.services import BILLABLE_STATUSES, cannot_invoice_reason, get_or_create_invoice, today
from crm.errors import DomainError
from crm.extensions import db
from crm.members.models import Membership

logger = logging.getLogger(__name__)

S = InvoiceStatus
# (status, days since the invoice date); 30 days to pay, so over 30 days old and open is overdue.
STATES: tuple[tuple[InvoiceStatus, int], ...] = (
    (S.PAID, 60),
    (S.OPEN, 10),
    (S.OPEN, 45),  # overdue, the first reminder sent
    (S.PAID, 40),
    (S.OPEN, 60),  # overdue, both reminders sent
    (S.VOID, 50),
    (S.UNCOLLECTIBLE, 120),
    (S.OPEN, 20),  # with a credit note
    (S.DRAFT, 0),
)


def _at(day) -> datetime:
    return datetime.combine(day, time(9, 0), tzinfo=UTC)


def load_billing_demo() -> dict[str, int]:
    """Invoice this year's billable demo memberships locally in the states of ``STATES`` (cycled).
    Flushes; the caller commits. Returns how many invoices were created."""
    year = today().year
    memberships = db.session.scalars(
        select(Membership)
        .where(Membership.status.in_(BILLABLE_STATUSES))
        .options(selectinload(Membership.organisation), selectinload(Membership.category))
        .order_by(Membership.id)
    ).all()
    created = 0
    for membership in memberships:
        if cannot_invoice_reason(membership, year):
            continue
        try:
            invoice, new = get_or_create_invoice(membership, year, InvoiceKind.MEMBERSHIP)
        except DomainError:
            continue  # no fee, or already invoiced otherwise (a pro-rata invoice)
        if not new:
            continue
        status, age = STATES[created % len(STATES)]
        created += 1
        _set_state(invoice, status, age, created)
    db.session.flush()
    logger.info("Loaded %s demo invoices for %s", created, year)
    return {"invoices": created}


def _set_state(invoice: Invoice, status: InvoiceStatus, age: int, serial: int) -> None:
    now = today()
    invoice.status = status
    if status is S.DRAFT:
        return
    issued = now - timedelta(days=age)
    invoice.number = f"DEMO-{invoice.year}-{serial:04d}"
    invoice.issued_on = issued
    invoice.due_on = issued + timedelta(days=30)
    # Written on the invoice date, like a real one: its history would otherwise start when the demo was loaded.
    invoice.created_at = invoice.finalized_at = _at(issued)
    invoice.stripe_step = "sent"  # a job for it has nothing left to do: no Stripe call, ever
    overdue = (now - invoice.due_on).days
    if status is S.OPEN and overdue >= 7:
        invoice.reminder_7_sent_at = _at(invoice.due_on + timedelta(days=7))
    if status is S.OPEN and overdue >= 21:
        invoice.reminder_21_sent_at = _at(invoice.due_on + timedelta(days=21))
    if status is S.PAID:
        invoice.paid_ore = invoice.gross_ore
        invoice.paid_at = invoice.receipt_sent_at = _at(issued + timedelta(days=12))
    if status is S.VOID:
        invoice.voided_at = _at(issued + timedelta(days=3))
    if status is S.OPEN and age == 20:
        amount = invoice.gross_ore // 4
        invoice.credited_ore = amount
        invoice.credit_notes.append(
            CreditNote(
                amount_ore=amount,
                reason="Rabatt avtalt med styret for første medlemsår.",
                number=f"{invoice.number}-CN1",
                created_at=_at(issued + timedelta(days=5)),
            )
        )
