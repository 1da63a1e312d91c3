"""Billing runs: the preview, one job per membership, progress and retries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.billing.models import (
    BillingRun,
    BillingRunItem,
    BillingRunStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    RunItemStatus,
)
from crm.billing.services.invoices import (
    BILLABLE_STATUSES,
    cannot_invoice_reason,
    fee_vat_treatment,
    line_vat,
    voided_reason,
)
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import format_money
from crm.jobs import require_jobs_available
from crm.members.fees import FeeCalculation, calculate_fee
from crm.members.models import Membership, Organisation
from crm.models import utcnow

logger = logging.getLogger(__name__)

# --- who can be invoiced ---------------------------------------------------------------------------------


@dataclass
class PreviewRow:
    membership: Membership
    fee: FeeCalculation | None
    reason: str | None
    invoiced: bool = False  # already invoiced for the year: not a problem, just nothing to do
    voided: Invoice | None = None  # its latest invoice for the year is void: finance may reissue it

    @property
    def organisation(self) -> Organisation:
        return self.membership.organisation


def billable_memberships(year: int) -> list[Membership]:
    """Members in good standing whose membership does not end before ``year``."""
    stmt = (
        select(Membership)
        .join(Membership.organisation)
        .where(
            Membership.status.in_(BILLABLE_STATUSES),
            (Membership.end_on.is_(None)) | (func.coalesce(Membership.end_on, date(year, 1, 1)) >= date(year, 1, 1)),
        )
        .options(
            selectinload(Membership.organisation).selectinload(Organisation.parent),
            selectinload(Membership.category),
        )
        .order_by(func.lower(Organisation.name), Membership.id)
    )
    return list(db.session.scalars(stmt))


def invoiced_membership_ids(year: int) -> set[int]:
    rows = db.session.scalars(
        select(Invoice.membership_id).where(Invoice.year == year, Invoice.status != InvoiceStatus.VOID)
    )
    return set(rows)


def preview_billing_run(year: int) -> list[PreviewRow]:
    """Every billable membership with its fee and explanation, or the reason it cannot be invoiced."""
    invoiced = invoiced_membership_ids(year)
    voided = {
        invoice.membership_id: invoice
        for invoice in db.session.scalars(
            select(Invoice)
            .where(Invoice.year == year, Invoice.kind == InvoiceKind.MEMBERSHIP, Invoice.status == InvoiceStatus.VOID)
            .order_by(Invoice.sequence)  # the latest voided one wins
        )
    }
    rows = []
    for membership in billable_memberships(year):
        if membership.id in invoiced:
            rows.append(PreviewRow(membership, None, _("Already invoiced for %(year)s.", year=year), True))
            continue
        if membership.id in voided:
            invoice = voided[membership.id]
            rows.append(PreviewRow(membership, None, voided_reason(invoice), voided=invoice))
            continue
        reason = cannot_invoice_reason(membership, year)
        fee = None
        try:
            fee = calculate_fee(membership, year)
        except DomainError as exc:
            reason = reason or exc.message
        if fee is not None and fee.amount_ore <= 0 and reason is None:
            reason = _("The fee is zero.")
        rows.append(PreviewRow(membership, fee, reason))
    return rows


@dataclass(frozen=True)
class RunSummary:
    """What a run would bill: how many invoices and their sums, VAT per line as ``build_invoice`` computes it."""

    count: int
    net_ore: int
    gross_ore: int

    @property
    def vat_ore(self) -> int:
        return self.gross_ore - self.net_ore


def summarise_preview(rows: list[PreviewRow]) -> RunSummary:
    """The invoices a run started now would make from ``rows`` (those without a reason), and their totals."""
    treatment = fee_vat_treatment()
    billable = [row for row in rows if row.reason is None and row.fee is not None]
    components = [component.amount_ore for row in billable for component in row.fee.components]  # type: ignore[union-attr]
    net = sum(components)
    return RunSummary(len(billable), net, net + sum(line_vat(amount, treatment) for amount in components))


# --- billing runs -----------------------------------------------------------------------------------------


def start_billing_run(year: int, *, actor: User, confirmed: tuple[int, int] | None = None) -> BillingRun:
    """Create a run for ``year`` with one item per billable membership and enqueue a job per item on the
    ``billing`` queue (after commit). Memberships that cannot be invoiced, or already are, are skipped
    with the reason. Starting again never bills twice: the invoice row per (membership, year) decides.

    ``confirmed`` is the (count, gross total in øre) that staff confirmed; raises ``DomainError`` (nothing
    started) when the run would now bill anything else, e.g. a member was added or a fee changed meanwhile.
    Raises ``ServiceUnavailable`` (writing nothing) when Redis, and so every job of the run, is unavailable."""
    if year < 2000 or year > 2100:
        raise DomainError(_("Choose a valid year."), field="year")
    require_jobs_available()
    rows = preview_billing_run(year)
    if confirmed is not None:
        summary = summarise_preview(rows)
        if (summary.count, summary.gross_ore) != tuple(confirmed):
            raise DomainError(
                ngettext(
                    "The billing run has changed since you confirmed it: it would now send %(num)s invoice, "
                    "%(total)s in total. Check the preview and confirm again.",
                    "The billing run has changed since you confirmed it: it would now send %(num)s invoices, "
                    "%(total)s in total. Check the preview and confirm again.",
                    summary.count,
                    total=format_money(summary.gross_ore),
                )
            )
    run = BillingRun(year=year, created_by=actor)
    db.session.add(run)
    queued = 0
    for row in rows:
        item = BillingRunItem(membership_id=row.membership.id, error=row.reason)
        item.status = RunItemStatus.SKIPPED if row.reason else RunItemStatus.QUEUED
        run.items.append(item)
    db.session.flush()
    from crm.billing.jobs import enqueue_run_item

    for item in run.items:
        if item.status is RunItemStatus.QUEUED:
            enqueue_run_item(item.id)
            queued += 1
    if not queued:
        run.status = BillingRunStatus.FINISHED
        run.finished_at = utcnow()
    record_audit(
        "billing.run.started",
        actor=actor,
        target=run,
        details={"year": year, "queued": queued, "skipped": len(run.items) - queued},
    )
    logger.info("billing run %s for %s started by %s: %s queued", run.id, year, actor.email, queued)
    return run


def run_progress(run: BillingRun) -> dict[RunItemStatus, int]:
    counts = dict.fromkeys(RunItemStatus, 0)
    rows = db.session.execute(
        select(BillingRunItem.status, func.count())
        .where(BillingRunItem.run_id == run.id)
        .group_by(BillingRunItem.status)
    )
    counts.update({status: count for status, count in rows})
    return counts


def finish_run_if_done(run: BillingRun) -> None:
    if run.status is BillingRunStatus.RUNNING and not run_progress(run)[RunItemStatus.QUEUED]:
        run.status = BillingRunStatus.FINISHED
        run.finished_at = utcnow()
        db.session.flush()


def retry_failed_items(run: BillingRun, *, actor: User) -> int:
    """Queue the run's failed items again; returns how many."""
    from crm.billing.jobs import enqueue_run_item

    items = list(
        db.session.scalars(
            select(BillingRunItem).where(BillingRunItem.run_id == run.id, BillingRunItem.status == RunItemStatus.FAILED)
        )
    )
    for item in items:
        item.status, item.retry_at = RunItemStatus.QUEUED, None
        enqueue_run_item(item.id)
    if items:
        run.status = BillingRunStatus.RUNNING
        run.finished_at = None
        record_audit("billing.run.retried", actor=actor, target=run, details={"items": len(items)})
    db.session.flush()
    return len(items)
