"""Invoices: the local row per (membership, year, kind), its Stripe steps, and Stripe's state applied to it.

Services flush, never commit. ``next_stripe_step`` does one Stripe step per call; the ``bill_membership``
job commits after each, so a job killed half-way resumes where it stopped (``Invoice.stripe_step``), and
Stripe's idempotency keys make a repeated step harmless.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm.auth.models import User
from crm.billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    StripeCustomer,
    StripeTaxRate,
    VatTreatment,
)
from crm.billing.stripe_gateway import StripeGateway, get_gateway
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import oslo_date
from crm.mail.services import queue_email
from crm.members.fees import calculate_fee
from crm.members.models import Membership, MembershipStatus, Organisation
from crm.models import utcnow

logger = logging.getLogger(__name__)

BILLABLE_STATUSES = (MembershipStatus.ACTIVE, MembershipStatus.NOTICE_GIVEN)
# An idempotency key lives 24 hours at Stripe; a retry after that looks the invoice up by its metadata first.
IDEMPOTENCY_WINDOW = timedelta(hours=23)


def fee_vat_treatment() -> VatTreatment:
    return VatTreatment(current_app.config["BILLING_FEE_VAT"])


def line_vat(amount_ore: int, treatment: VatTreatment) -> int:
    """The VAT of one invoice line as Stripe computes it for a tax rate on the line: per line, to whole øre,
    half up (Stripe rounds 0.025 to 0.03). For a negative line (a reduction) half away from zero, so its VAT is
    exactly minus that of the same positive line and the invoice's VAT is the sum of its lines' VAT both here and at
    Stripe (crm/billing/local_stripe.py rounds the same way)."""
    exact = Decimal(amount_ore) * treatment.percent / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))  # ROUND_HALF_UP rounds ties away from zero


def cannot_invoice_reason(membership: Membership, year: int) -> str | None:
    organisation = membership.organisation
    if not organisation.invoice_email:
        return _("No invoice email address.")
    if organisation.buyer_reference_required and not organisation.default_buyer_reference:
        return _("The buyer requires a buyer reference, and none is registered.")
    return None


def voided_reason(invoice: Invoice) -> str:
    # A billing run never replaces a voided invoice by itself (the void may be deliberate: the member left);
    # finance reissues it from the invoice page when the void was to correct it.
    return _(
        "Invoice %(number)s for %(year)s was voided; a billing run does not invoice this membership again for "
        "the year. To send a corrected invoice, reissue it from the invoice page.",
        number=invoice.number or invoice.id,
        year=invoice.year,
    )


# --- the local invoice row --------------------------------------------------------------------------------


def latest_invoice(membership_id: int, year: int, kind: InvoiceKind) -> Invoice | None:
    """The newest invoice (highest sequence) of (membership, year, kind): the one that counts."""
    return db.session.scalar(
        select(Invoice)
        .where(Invoice.membership_id == membership_id, Invoice.year == year, Invoice.kind == kind)
        .order_by(Invoice.sequence.desc())
        .limit(1)
    )


def live_invoice(membership_id: int, year: int) -> Invoice | None:
    """The membership's invoice for the year that is not void, of any kind (there is at most one)."""
    return db.session.scalar(
        select(Invoice)
        .where(Invoice.membership_id == membership_id, Invoice.year == year, Invoice.status != InvoiceStatus.VOID)
        .limit(1)
    )


def build_invoice(
    membership: Membership, year: int, kind: InvoiceKind, *, sequence: int = 1, actor: User | None = None
) -> Invoice:
    """A new draft invoice (not added to the session) with its lines from today's fee rules and the organisation's
    current details. Raises ``DomainError`` when the fee cannot be calculated or is zero."""
    fee = calculate_fee(membership, year)
    if fee.amount_ore <= 0:
        raise DomainError(_("The fee is zero."))
    organisation = membership.organisation
    treatment = fee_vat_treatment()
    # One line per fee component (annual fee, pro-rata reduction, group discount; or the fee staff set), all with
    # the fee's VAT treatment; the invoice's amounts are the sums of its lines, as at Stripe.
    lines = [
        InvoiceLine(
            position=position,
            description=component.description[:500],
            amount_ore=component.amount_ore,
            vat_treatment=treatment,
            vat_ore=line_vat(component.amount_ore, treatment),
        )
        for position, component in enumerate(fee.components)
    ]
    net = sum(line.amount_ore for line in lines)
    vat = sum(line.vat_ore for line in lines)
    return Invoice(
        membership_id=membership.id,
        organisation_id=organisation.id,
        year=year,
        kind=kind,
        sequence=sequence,
        status=InvoiceStatus.DRAFT,
        net_ore=net,
        vat_ore=vat,
        gross_ore=net + vat,
        explanation=list(fee.lines),
        customer_name=organisation.name,
        orgnr=organisation.orgnr,
        invoice_email=organisation.invoice_email,
        buyer_reference=organisation.default_buyer_reference,
        ehf=bool(organisation.ehf_receiver or organisation.is_contracting_authority),
        created_by_id=getattr(actor, "id", None),
        lines=lines,
    )


def get_or_create_invoice(
    membership: Membership, year: int, kind: InvoiceKind, *, actor: User | None = None
) -> tuple[Invoice, bool]:
    """The invoice row for (membership, year, kind) (its latest, if it was reissued), created with its lines from
    the fee rules if missing.

    Raises ``DomainError`` when the membership cannot be invoiced (see ``cannot_invoice_reason``), the fee
    cannot be calculated, the latest invoice is void (only finance reissues it) or the membership already has
    another live invoice for the year."""
    existing = latest_invoice(membership.id, year, kind)
    if existing is not None:
        if existing.status is InvoiceStatus.VOID:
            raise DomainError(voided_reason(existing))
        return existing, False
    if live_invoice(membership.id, year) is not None:
        raise DomainError(_("The membership is already invoiced for %(year)s.", year=year))
    reason = cannot_invoice_reason(membership, year)
    if reason:
        raise DomainError(reason)
    invoice = build_invoice(membership, year, kind, actor=actor)
    try:
        with db.session.begin_nested():
            db.session.add(invoice)
    except IntegrityError:
        # Another job created it between our check and insert; theirs is the one. (Or it created another kind of
        # invoice for the year: the database allows one live invoice per membership and year.)
        existing = latest_invoice(membership.id, year, kind)
        if existing is None or existing.status is InvoiceStatus.VOID:
            raise DomainError(_("The membership is already invoiced for %(year)s.", year=year)) from None
        return existing, False
    logger.info("invoice %s created for membership %s %s %s", invoice.id, membership.id, year, kind.value)
    return invoice, True


# --- the Stripe side, one step at a time ------------------------------------------------------------------


def ensure_stripe_customer(organisation: Organisation, gateway: StripeGateway) -> str:
    found = db.session.get(StripeCustomer, organisation.id)
    if found is not None:
        return found.stripe_customer_id
    customer = gateway.create_customer(
        organisation.id, name=organisation.name, email=organisation.invoice_email, orgnr=organisation.orgnr
    )
    try:
        with db.session.begin_nested():
            db.session.add(StripeCustomer(organisation_id=organisation.id, stripe_customer_id=customer["id"]))
    except IntegrityError:
        pass  # a parallel job stored the same customer (same idempotency key, same id)
    return customer["id"]


def ensure_tax_rate(treatment: VatTreatment, gateway: StripeGateway) -> str | None:
    if treatment.percent == 0:
        return None  # exempt and outside-scope lines carry no tax rate
    found = db.session.get(StripeTaxRate, treatment)
    if found is not None:
        return found.stripe_tax_rate_id
    rate = gateway.create_tax_rate(treatment.value, percentage=treatment.percent, display_name="MVA")
    try:
        with db.session.begin_nested():
            db.session.add(StripeTaxRate(treatment=treatment, stripe_tax_rate_id=rate["id"]))
    except IntegrityError:
        pass
    return rate["id"]


def _customer_details_changed(invoice: Invoice) -> bool:
    """Whether the invoice's name or email differ from the organisation's previous invoice at Stripe, whose
    details the Stripe customer carries (it was created, or last updated, with them)."""
    previous = db.session.execute(
        select(Invoice.customer_name, Invoice.invoice_email)
        .where(
            Invoice.organisation_id == invoice.organisation_id,
            Invoice.id != invoice.id,
            Invoice.stripe_invoice_id.is_not(None),
        )
        .order_by(Invoice.id.desc())
        .limit(1)
    ).first()
    return previous is not None and tuple(previous) != (invoice.customer_name, invoice.invoice_email)


def _past_idempotency_window(invoice: Invoice) -> bool:
    return invoice.stripe_attempted_at is not None and utcnow() - invoice.stripe_attempted_at > IDEMPOTENCY_WINDOW


def next_stripe_step(invoice: Invoice, gateway: StripeGateway | None = None) -> bool:
    """Do the next Stripe step of ``invoice`` (customer + create, add lines, finalise, send) and record it.
    Returns False when nothing is left to do. Each step is idempotent at Stripe by its key."""
    if invoice.status is InvoiceStatus.VOID:
        return False  # a draft voided before Stripe saw it (void_draft_invoice) never goes there
    gateway = gateway or get_gateway()
    key = invoice.idempotency_base
    if invoice.stripe_step == "none":
        customer_id = ensure_stripe_customer(invoice.organisation, gateway)
        if invoice.is_reissue or _customer_details_changed(invoice):
            # Stripe emails a send_invoice invoice to the customer's address, so the customer must carry the
            # organisation's current name and invoice email first (a reissue usually corrects them).
            gateway.update_customer(
                customer_id, f"{key}:customer", name=invoice.customer_name, email=invoice.invoice_email
            )
        found = None
        if _past_idempotency_window(invoice):
            found = gateway.find_invoice(key)
        invoice.stripe_attempted_at = invoice.stripe_attempted_at or utcnow()
        if found is None:
            custom_fields = []
            if invoice.orgnr:
                custom_fields.append({"name": "Org.nr.", "value": invoice.orgnr})
            if invoice.buyer_reference:
                custom_fields.append({"name": "Deres ref.", "value": invoice.buyer_reference[:140]})
            found = gateway.create_invoice(
                key,
                customer_id=customer_id,
                days_until_due=current_app.config["BILLING_DAYS_UNTIL_DUE"],
                # The invoice's memo, printed on it: the lines say how the fee is made up. Not the explanation,
                # which ends with a staff override's reason, internal text that stays off the member's invoice.
                description=_("Membership fee %(year)s, Etisk handel Norge", year=invoice.year),
                custom_fields=custom_fields,
                metadata={"invoice_id": str(invoice.id), "membership_id": str(invoice.membership_id)},
            )
        invoice.stripe_customer_id = customer_id
        invoice.stripe_invoice_id = found["id"]
        invoice.stripe_step = "lines" if found.get("lines", {}).get("data") else "created"
    elif invoice.stripe_step in ("created", "lines") and _past_idempotency_window(invoice):
        # Stripe may have done this step without our record of it and no longer knows its key: ask it first.
        current = gateway.retrieve_invoice(invoice.stripe_invoice_id)  # type: ignore[arg-type]
        if current.get("status") not in (None, "draft"):
            apply_stripe_invoice(invoice, current)  # finalised already: only the sending is left
        elif invoice.stripe_step == "created" and current.get("lines", {}).get("data"):
            invoice.stripe_step = "lines"
        invoice.stripe_attempted_at = utcnow()  # checked; the next step's key is fresh again
    elif invoice.stripe_step == "created":
        lines = []
        for line in invoice.lines:
            item: dict = {"amount": line.amount_ore, "description": line.description}
            rate = ensure_tax_rate(line.vat_treatment, gateway)
            if rate:
                item["tax_rates"] = [rate]
            lines.append(item)
        gateway.add_lines(invoice.stripe_invoice_id, f"{key}:lines", lines)
        invoice.stripe_step = "lines"
    elif invoice.stripe_step == "lines":
        data = gateway.finalize_invoice(invoice.stripe_invoice_id, f"{key}:finalize")
        invoice.stripe_step = "finalized"
        apply_stripe_invoice(invoice, data)
    elif invoice.stripe_step == "finalized":
        # Finalising alone is not documented to email a send_invoice invoice: send it, unless it is no longer open
        # (paid, voided or written off meanwhile, when the email would only confuse).
        if invoice.status is InvoiceStatus.OPEN:
            data = gateway.send_invoice(invoice.stripe_invoice_id, f"{key}:send")  # type: ignore[arg-type]
            apply_stripe_invoice(invoice, data)
        invoice.stripe_step = "sent"
    else:
        return False
    db.session.flush()
    return True


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


STRIPE_STATUS = {s.value: s for s in InvoiceStatus}
# Stripe's states only move forward: draft -> open -> paid | void | uncollectible; uncollectible -> paid | void.
_RANK = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.OPEN: 1,
    InvoiceStatus.UNCOLLECTIBLE: 2,
    InvoiceStatus.PAID: 3,
    InvoiceStatus.VOID: 3,
}


def apply_stripe_invoice(invoice: Invoice, data: dict, *, force: bool = False) -> list[str]:
    """Copy Stripe's view of the invoice onto the row, never moving its status backwards (an older
    snapshot cannot undo a newer state) unless ``force`` (reconciliation); a payment queues the receipt
    email, once. Returns what changed."""
    changed = []
    status = STRIPE_STATUS.get(data.get("status") or "")
    forward = status is not None and (
        _RANK[status] > _RANK[invoice.status] or (_RANK[status] == _RANK[invoice.status] < 3)
    )
    if status is not None and status is not invoice.status and (force or forward):
        logger.info("invoice %s %s -> %s (Stripe)", invoice.id, invoice.status.value, status.value)
        invoice.status = status
        changed.append("status")
    transitions = data.get("status_transitions") or {}
    if data.get("number") and invoice.number != data["number"]:
        invoice.number = data["number"]
        changed.append("number")
    for field, value in (
        ("hosted_invoice_url", data.get("hosted_invoice_url")),
        ("invoice_pdf", data.get("invoice_pdf")),
    ):
        if value and getattr(invoice, field) != value:
            setattr(invoice, field, value)
            changed.append(field)
    if transitions.get("finalized_at") and invoice.finalized_at is None:
        invoice.finalized_at = _ts(transitions["finalized_at"])
        invoice.issued_on = oslo_date(invoice.finalized_at) if invoice.finalized_at else None
    if data.get("due_date") and invoice.due_on is None:
        invoice.due_on = oslo_date(_ts(data["due_date"]))  # type: ignore[arg-type]
    if invoice.stripe_step in ("none", "created", "lines") and invoice.status is not InvoiceStatus.DRAFT:
        invoice.stripe_step = "finalized"  # finalised at Stripe; the job still sends it
    if "total" in data and invoice.status is not InvoiceStatus.DRAFT and data["total"] != invoice.gross_ore:
        logger.warning("invoice %s: Stripe total %s differs from ours %s", invoice.id, data["total"], invoice.gross_ore)
    paid = int(data.get("amount_paid") or 0)
    if paid > invoice.paid_ore:
        invoice.paid_ore = paid
        changed.append("paid_ore")
    if invoice.status is InvoiceStatus.PAID and invoice.paid_at is None:
        invoice.paid_at = _ts(transitions.get("paid_at")) or utcnow()
    if invoice.status is InvoiceStatus.VOID and invoice.voided_at is None:
        invoice.voided_at = _ts(transitions.get("voided_at")) or utcnow()
    # A credit note can settle an invoice with nothing paid (Stripe then calls it paid): no receipt for 0 kr.
    if (
        invoice.status is InvoiceStatus.PAID
        and invoice.receipt_sent_at is None
        and invoice.invoice_email
        and invoice.paid_ore
    ):
        invoice.receipt_sent_at = utcnow()
        queue_email(to=invoice.invoice_email, template="billing_receipt", context={"invoice": invoice})
        changed.append("receipt")
    db.session.flush()
    return changed
