"""A draft invoice on the staff side: one that was written here but never finalised at Stripe (its job failed,
was lost, or it is one of the offline demo's). Finance sends it on, or voids it while it is only ours."""

from __future__ import annotations

import logging

from flask_babel import gettext as _

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.billing.models import Invoice, InvoiceStatus
from crm.billing.services.corrections import _locked
from crm.errors import DomainError
from crm.extensions import db
from crm.models import utcnow

logger = logging.getLogger(__name__)


def is_local_draft(invoice: Invoice) -> bool:
    """A draft that Stripe has never seen, so voiding it needs no Stripe call."""
    return invoice.status is InvoiceStatus.DRAFT and not invoice.stripe_invoice_id and invoice.stripe_step == "none"


def send_draft_invoice(invoice: Invoice, *, actor: User) -> None:
    """Enqueue, after commit, the job that takes a draft invoice through Stripe from the step it stopped at. Its
    steps carry idempotency keys, so a draft whose earlier job is still running or failed half-way is billed once.
    Raises ``DomainError`` (nothing changed) unless the invoice is a draft."""
    invoice = _locked(invoice)
    if invoice.status is not InvoiceStatus.DRAFT:
        raise DomainError(_("Only a draft invoice can be sent from here."))
    record_audit("billing.invoice.send_requested", actor=actor, target=invoice, details={"step": invoice.stripe_step})
    from crm.billing.jobs import enqueue_invoice

    enqueue_invoice(invoice.id)
    logger.info("draft invoice %s sent on by %s (step %s)", invoice.id, actor.email, invoice.stripe_step)


def void_draft_invoice(invoice: Invoice, *, actor: User, reason: str) -> None:
    """Void, here and now, a draft invoice that never reached Stripe (there is nothing to void there); a billing
    run then reports the membership's invoice as voided, and finance may reissue it. Raises ``DomainError``
    (nothing changed) without a reason, or unless the invoice is a draft that Stripe has not seen."""
    if not (reason and reason.strip()):
        raise DomainError(_("Give a reason."), field="reason")
    invoice = _locked(invoice)
    if invoice.status is not InvoiceStatus.DRAFT:
        raise DomainError(_("Only a draft invoice can be voided here."))
    if not is_local_draft(invoice):
        raise DomainError(_("The draft has already been created at Stripe: send it, then void it."))
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    db.session.flush()
    record_audit(
        "billing.invoice.voided",
        actor=actor,
        target=invoice,
        details={"number": invoice.number, "reason": reason.strip()},
    )
    logger.info("draft invoice %s voided by %s", invoice.id, actor.email)
