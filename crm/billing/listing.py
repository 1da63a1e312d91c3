"""Read-side queries of the billing screens: filtered invoice lists with totals, history, runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.orm import selectinload

from crm.audit.details import audit_action_label
from crm.audit.models import AuditEntry
from crm.auth.models import User
from crm.billing.models import BillingRun, BillingRunItem, Invoice, InvoiceStatus, RunItemStatus, StripeEvent
from crm.billing.services import never_at_stripe
from crm.extensions import db
from crm.i18n import OSLO
from crm.members.models import Membership, MembershipCategory
from crm.members.services import today
from crm.pagination import Page, paginate
from crm.request_args import date_arg, id_arg, year_arg

SEARCH_MAX = 100  # characters of the search text that are used

# The invoice list's sortable columns; "-key" sorts descending. Anything else: overdue first, then newest.
SORTS = {
    "number": Invoice.number,
    "customer": func.lower(Invoice.customer_name),
    "year": Invoice.year,
    "due": Invoice.due_on,
    "gross": Invoice.gross_ore,
    "status": Invoice.status,
}


@dataclass
class InvoiceFilters:
    q: str = ""  # customer name, organisation number (spaces allowed) or invoice number
    sort: str = ""  # a key of SORTS, "-" before it for descending; "" the default order
    year: int | None = None
    status: str = ""  # an InvoiceStatus value or "overdue"
    category_id: int | None = None
    issued_from: date | None = None  # the accounting period, by invoice date (or payment date, see ``period``)
    issued_to: date | None = None
    period: str = ""  # "" : the dates are invoice dates; "paid": payment dates (the period's payments)

    def as_args(self) -> dict[str, Any]:
        pairs = (
            ("q", self.q),
            ("sort", self.sort),
            ("year", self.year),
            ("status", self.status),
            ("category", self.category_id),
            ("from", self.issued_from.isoformat() if self.issued_from else None),
            ("to", self.issued_to.isoformat() if self.issued_to else None),
            ("period", self.period),
        )
        return {k: v for k, v in pairs if v}


def _oslo_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), OSLO).astimezone(UTC)


def filters_from_args(args) -> InvoiceFilters:
    status = args.get("status", "")
    if status not in {s.value for s in InvoiceStatus} | {"overdue"}:
        status = ""
    sort = args.get("sort", "")
    if sort.removeprefix("-") not in SORTS:
        sort = ""
    return InvoiceFilters(
        q=" ".join(args.get("q", "").split())[:SEARCH_MAX],
        sort=sort,
        year=year_arg(args=args),
        status=status,
        category_id=id_arg("category", args=args),
        issued_from=date_arg("from", args=args),
        issued_to=date_arg("to", args=args),
        period="paid" if args.get("period") == "paid" else "",
    )


def _filtered(filters: InvoiceFilters):
    stmt = select(Invoice)
    if filters.q:
        needle = filters.q.lower()
        conditions = [
            func.lower(Invoice.customer_name).contains(needle, autoescape=True),
            func.lower(Invoice.number).contains(needle, autoescape=True),
        ]
        compact = filters.q.replace(" ", "")
        if compact.isdigit():  # "974 760 673" as it is printed, or the first digits of one
            conditions.append(Invoice.orgnr.startswith(compact, autoescape=True))
        stmt = stmt.where(or_(*conditions))
    if filters.year:
        stmt = stmt.where(Invoice.year == filters.year)
    if filters.status == "overdue":
        stmt = stmt.where(Invoice.status == InvoiceStatus.OPEN, Invoice.due_on < today())
    elif filters.status:
        stmt = stmt.where(Invoice.status == InvoiceStatus(filters.status))
    if filters.period == "paid":
        # Payments are stamped in UTC; the period's days are Oslo days.
        if filters.issued_from:
            stmt = stmt.where(Invoice.paid_at >= _oslo_midnight(filters.issued_from))
        if filters.issued_to:
            stmt = stmt.where(Invoice.paid_at < _oslo_midnight(filters.issued_to + timedelta(days=1)))
        if filters.issued_from or filters.issued_to:
            stmt = stmt.where(Invoice.paid_ore > 0)  # settled by a credit note: no payment
    else:
        if filters.issued_from:
            stmt = stmt.where(Invoice.issued_on >= filters.issued_from)
        if filters.issued_to:
            stmt = stmt.where(Invoice.issued_on <= filters.issued_to)
    if filters.category_id:
        stmt = stmt.join(Membership, Membership.id == Invoice.membership_id).where(
            Membership.category_id == filters.category_id
        )
    return stmt


def search_invoices(filters: InvoiceFilters) -> tuple[Page, dict[str, int]]:
    """One page of invoices in the order asked for (``filters.sort``), by default overdue first (oldest due date
    first), then newest; the count of every match and the sums of all but void invoices (worth nothing to the
    accounts), unless void ones are what was asked for."""
    stmt = _filtered(filters)
    if filters.sort:
        column = SORTS[filters.sort.removeprefix("-")]
        # Drafts have no number or due date: last either way, the same on PostgreSQL and SQLite.
        direction = column.desc() if filters.sort.startswith("-") else column.asc()
        order = (direction.nulls_last(), Invoice.id.desc())
    else:
        is_overdue = and_(Invoice.status == InvoiceStatus.OPEN, Invoice.due_on < today())
        order = (case((is_overdue, 0), else_=1), case((is_overdue, Invoice.due_on), else_=None), Invoice.id.desc())
    page = paginate(stmt.order_by(*order))
    counted = Invoice.status != InvoiceStatus.VOID if filters.status != InvoiceStatus.VOID.value else true()

    def total(column):
        return func.coalesce(func.sum(case((counted, column), else_=0)), 0)

    sums = db.session.execute(
        _filtered(filters).with_only_columns(
            func.count(Invoice.id), total(Invoice.net_ore), total(Invoice.vat_ore), total(Invoice.gross_ore)
        )
    ).one()
    return page, {"count": sums[0], "net": sums[1], "vat": sums[2], "gross": sums[3]}


def filtered_invoices(filters: InvoiceFilters) -> list[Invoice]:
    stmt = (
        _filtered(filters)
        .options(selectinload(Invoice.organisation))
        .order_by(Invoice.year, Invoice.number, Invoice.id)
    )
    return list(db.session.scalars(stmt))


def categories() -> list[MembershipCategory]:
    return list(db.session.scalars(select(MembershipCategory).order_by(MembershipCategory.sort_order)))


# What the invoice page's history says for a Stripe event type or an audit action: words, never the code (an event
# type Stripe adds later reads STRIPE_EVENT; an audit action without a label here reads as the audit log names it).
STRIPE_EVENT = _l("Changed at Stripe")
EVENT_LABELS = {
    "invoice.created": _l("Created at Stripe"),
    "invoice.updated": _l("Changed at Stripe"),
    "invoice.deleted": _l("Deleted at Stripe"),
    "invoice.overdue": _l("Overdue at Stripe"),
    "invoice.payment_succeeded": _l("Payment received by Stripe"),
    "invoice.finalization_failed": _l("Stripe could not finalise it"),
    "invoice.finalized": _l("Finalised at Stripe"),
    "invoice.sent": _l("Sent by Stripe"),
    "invoice.paid": _l("Paid"),
    "invoice.payment_failed": _l("Payment failed"),
    "invoice.voided": _l("Voided at Stripe"),
    "invoice.marked_uncollectible": _l("Marked uncollectible"),
    "charge.refunded": _l("Refunded"),
    "billing.invoice.voided": _l("Invoice voided"),
    "billing.invoice.void_requested": _l("Void requested"),
    "billing.invoice.void_failed": _l("Void refused by Stripe"),
    "billing.invoice.credited": _l("Credit note issued"),
    "billing.invoice.credit_failed": _l("Credit note refused by Stripe"),
    "billing.invoice.reissued": _l("Reissued as a new invoice"),
    "billing.invoice.send_requested": _l("Sent on to Stripe"),
}

# The invoice's own milestones (column, label, the Stripe events that already report it): its history starts when
# it was written, also for invoices from before anything was audited and the offline demo's.
MILESTONES = (
    ("finalized_at", _l("Finalised at Stripe"), {"invoice.finalized"}),
    ("reminder_7_sent_at", _l("Reminder sent"), set()),
    ("reminder_21_sent_at", _l("Second reminder sent"), set()),
    ("paid_at", _l("Paid"), {"invoice.paid"}),
    ("receipt_sent_at", _l("Receipt sent"), set()),
    ("voided_at", _l("Voided"), {"invoice.voided", "billing.invoice.voided"}),
)


def invoice_events(invoice: Invoice) -> list[dict[str, Any]]:
    """The invoice's history, newest first: its creation and milestones, Stripe events about it and staff actions
    on it (a milestone that an event or action already reports is left out)."""
    history: list[dict[str, Any]] = [
        {
            "at": invoice.created_at,
            "what": _l("Invoice created"),
            "who": invoice.created_by.full_name if invoice.created_by else _l("automatically"),
        }
    ]
    stripe_events: list[StripeEvent] = []
    if invoice.stripe_invoice_id:
        stripe_events = list(
            db.session.scalars(
                select(StripeEvent).where(StripeEvent.object_id == invoice.stripe_invoice_id).order_by(StripeEvent.id)
            )
        )
        for event in stripe_events:
            history.append(
                {
                    "at": event.received_at,
                    "what": EVENT_LABELS.get(event.type, STRIPE_EVENT),
                    "who": "Stripe",
                    "processed": event.processed_at,
                }
            )
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.target_type == "invoices", AuditEntry.target_id == str(invoice.id))
    ).all()
    actor_ids = {entry.actor_id for entry in entries if entry.actor_id}
    names = {
        row.id: row.full_name
        for row in db.session.execute(select(User.id, User.full_name).where(User.id.in_(actor_ids)))
    }
    for entry in entries:
        reason = (entry.details or {}).get("reason")
        history.append(
            {
                "at": entry.at,
                "what": EVENT_LABELS.get(entry.action) or audit_action_label(entry.action),
                # The staff member's name; the stored label (their email) if the account is gone.
                "who": names.get(entry.actor_id) or entry.actor_label,
                "reason": reason,
            }
        )
    reported = {event.type for event in stripe_events} | {entry.action for entry in entries}
    for column, label, reported_by in MILESTONES:
        at = getattr(invoice, column)
        if column == "finalized_at" and never_at_stripe(invoice):
            label = _l("Finalised here, without Stripe")  # the offline demo's invoices
        if at is not None and not reported_by & reported:
            history.append({"at": at, "what": label, "who": None})
    # Creation comes first whatever the clocks say (Stripe stamps whole seconds, we stamp microseconds).
    created, *rest = history
    return [*sorted(rest, key=lambda item: item["at"], reverse=True), created]


@dataclass
class Replacement:
    replaces: Invoice | None = None  # the voided invoice this one was issued in place of
    replaced_by: Invoice | None = None  # the invoice issued in place of this voided one


def replacements(invoices: list[Invoice]) -> dict[int, Replacement]:
    """For each invoice that replaces or was replaced by another (same membership, year and kind, the sequence
    before or after it), the other one; by invoice id. One query, whatever the number of invoices."""
    if not any(invoice.sequence > 1 or invoice.status is InvoiceStatus.VOID for invoice in invoices):
        return {}
    keys = {(invoice.membership_id, invoice.year, invoice.kind) for invoice in invoices}
    related = db.session.scalars(
        select(Invoice).where(
            Invoice.membership_id.in_({key[0] for key in keys}), Invoice.year.in_({key[1] for key in keys})
        )
    )
    by_key: dict[tuple, dict[int, Invoice]] = {}
    for other in related:
        by_key.setdefault((other.membership_id, other.year, other.kind), {})[other.sequence] = other
    found: dict[int, Replacement] = {}
    for invoice in invoices:
        chain = by_key.get((invoice.membership_id, invoice.year, invoice.kind), {})
        link = Replacement(chain.get(invoice.sequence - 1), chain.get(invoice.sequence + 1))
        if link.replaces or link.replaced_by:
            found[invoice.id] = link
    return found


def organisation_invoices(organisation_id: int, *, include_drafts: bool = True) -> list[Invoice]:
    stmt = select(Invoice).where(Invoice.organisation_id == organisation_id)
    if not include_drafts:
        stmt = stmt.where(Invoice.status != InvoiceStatus.DRAFT)
    stmt = stmt.options(selectinload(Invoice.lines)).order_by(Invoice.year.desc(), Invoice.id.desc())
    return list(db.session.scalars(stmt))


def next_stripe_retry(run: BillingRun) -> datetime | None:
    """While Stripe cannot be reached: the earliest time a waiting item of the run is tried again."""
    return db.session.scalar(
        select(func.min(BillingRunItem.retry_at)).where(
            BillingRunItem.run_id == run.id,
            BillingRunItem.status == RunItemStatus.QUEUED,
            BillingRunItem.retry_at.is_not(None),
        )
    )


def failed_items(run: BillingRun) -> list[BillingRunItem]:
    return list(
        db.session.scalars(
            select(BillingRunItem)
            .where(BillingRunItem.run_id == run.id, BillingRunItem.status == RunItemStatus.FAILED)
            .options(selectinload(BillingRunItem.membership).selectinload(Membership.organisation))
            .order_by(BillingRunItem.id)
            .limit(200)
        )
    )


def recent_runs(limit: int = 50) -> list[BillingRun]:
    return list(db.session.scalars(select(BillingRun).order_by(BillingRun.id.desc()).limit(limit)))
