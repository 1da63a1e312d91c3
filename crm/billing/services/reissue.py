"""Reissuing a voided invoice: a new invoice for the same membership, year and kind, with the next sequence.

A billing run never does this by itself (a void may be deliberate, e.g. the member left); finance does it from
the voided invoice's page, typically after correcting the organisation's invoice email, buyer reference or
category. The new row is written in the request's transaction and a job takes it through Stripe after commit.
"""

from __future__ import annotations

import logging

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.billing.models import Invoice, InvoiceStatus
from crm.billing.services.invoices import (
    BILLABLE_STATUSES,
    build_invoice,
    cannot_invoice_reason,
    latest_invoice,
    live_invoice,
)
from crm.errors import DomainError
from crm.extensions import db

logger = logging.getLogger(__name__)


def _label(invoice: Invoice) -> str:
    return invoice.number or _("(draft %(id)s)", id=invoice.id)


def reissue_refusal(invoice: Invoice) -> str | None:
    """Why ``invoice`` cannot be reissued now, or None when it can."""
    if invoice.status is not InvoiceStatus.VOID:
        return _("Only a voided invoice can be reissued.")
    latest = latest_invoice(invoice.membership_id, invoice.year, invoice.kind)
    if latest is not None and latest.id != invoice.id:
        return _(
            "Invoice %(number)s has already been reissued as invoice %(new)s.",
            number=_label(invoice),
            new=_label(latest),
        )
    live = live_invoice(invoice.membership_id, invoice.year)
    if live is not None:
        return _(
            "The membership already has invoice %(number)s for %(year)s that is not void.",
            number=_label(live),
            year=invoice.year,
        )
    membership = invoice.membership
    if membership.status not in BILLABLE_STATUSES:
        return _("The membership is %(status)s, so it cannot be invoiced again.", status=membership.status.label)
    return cannot_invoice_reason(membership, invoice.year)


def reissue_invoice(voided: Invoice, *, actor: User) -> Invoice:
    """Create the invoice that replaces ``voided`` (the next sequence, its lines from today's fee and the
    organisation's current details) and enqueue, after commit, the job that sends it through Stripe. The voided
    invoice stays void. Two submits at once make one new invoice: the second waits for the first's lock and then
    finds it reissued.

    Raises ``DomainError`` (nothing changed) unless ``voided`` is void, the latest of its membership, year and
    kind, the membership has no other live invoice for the year and can be invoiced (``cannot_invoice_reason``)."""
    db.session.scalar(select(Invoice.id).where(Invoice.id == voided.id).with_for_update())
    refusal = reissue_refusal(voided)
    if refusal:
        raise DomainError(refusal)
    invoice = build_invoice(voided.membership, voided.year, voided.kind, sequence=voided.sequence + 1, actor=actor)
    try:
        with db.session.begin_nested():
            db.session.add(invoice)
    except IntegrityError:
        # A concurrent reissue won the race (same sequence, or the one live invoice per membership and year).
        raise DomainError(_("The invoice has just been reissued by someone else.")) from None
    record_audit(
        "billing.invoice.reissued",
        actor=actor,
        target=voided,
        details={"voided_number": voided.number, "new_invoice_id": invoice.id, "sequence": invoice.sequence},
    )
    from crm.billing.jobs import enqueue_invoice

    enqueue_invoice(invoice.id)
    logger.info("invoice %s reissued as invoice %s by %s", voided.id, invoice.id, actor.email)
    return invoice
