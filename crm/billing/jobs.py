"""Billing jobs: one invoice per job, webhook event processing, the daily reminders, pro rata on activation.

Every job takes ids, loads fresh state, commits after each Stripe step and is safe to run twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Retry, get_current_job
from rq.job import JobStatus
from sqlalchemy import select

from crm.auth.models import User
from crm.billing.models import (
    BillingRunItem,
    CreditNote,
    CreditNoteStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    RunItemStatus,
    StripeEvent,
)
from crm.billing.services import (
    complete_credit_note,
    complete_void,
    fail_credit_note,
    fail_void,
    finish_run_if_done,
    get_or_create_invoice,
    next_stripe_step,
    send_due_reminders,
)
from crm.billing.stripe_gateway import StripeGatewayError, StripeUnavailable, get_gateway
from crm.errors import DomainError
from crm.extensions import db
from crm.jobs import (
    DEFAULT_RETRY,
    enqueue_after_commit,
    enqueue_once_after_commit,
    fetch_job,
    has_pending_job,
    is_running,
    periodic,
)
from crm.members.models import Membership, MembershipStatus
from crm.members.services import on_membership_status_change
from crm.models import utcnow

logger = logging.getLogger(__name__)

# A Stripe outage: retry the job for about an hour before the item counts as failed (staff can retry it).
BILLING_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 120, 300, 600, 1800])


# A run item still QUEUED, or an event still unprocessed, this long after it was touched, with no job for it in
# RQ (queued, scheduled for a retry or running), lost its job: the sweeper enqueues it again. Both jobs are safe
# to run twice. Events older than the window are left to ``flask crm billing reconcile``. The grace and the sweep
# interval are short so that what was written while Redis was down is picked up within a minute of its return.
LOST_JOB_GRACE = timedelta(seconds=30)
SWEEP_EVERY = timedelta(seconds=15)
EVENT_SWEEP_WINDOW = timedelta(days=3)
SWEEP_BATCH = 500


def _lost(job_id: str) -> bool:
    """No job under this id, or one left started by a dead worker (a failed job is kept: RQ logged it)."""
    job = fetch_job(job_id)
    return job is None or (job.get_status() == JobStatus.STARTED and not is_running(job))


def _enqueue_once(func, row_id: int, job_id: str, retry: Retry) -> None:
    enqueue_once_after_commit(func, row_id, job_id=job_id, queue="billing", retry=retry)


def enqueue_run_item(item_id: int) -> None:
    _enqueue_once(invoice_run_item, item_id, f"billing-run-item-{item_id}", BILLING_RETRY)


def enqueue_invoice(invoice_id: int) -> None:
    _enqueue_once(send_invoice_to_stripe, invoice_id, f"billing-invoice-{invoice_id}", BILLING_RETRY)


def _void_job_id(invoice: Invoice) -> str:
    # One id per request (its time), so a new request after a failed one never meets the ended job's id.
    assert invoice.void_requested_at is not None
    return f"billing-void-{invoice.id}-{int(invoice.void_requested_at.timestamp() * 1_000_000)}"


def enqueue_void(invoice: Invoice) -> None:
    _enqueue_once(void_invoice_job, invoice.id, _void_job_id(invoice), BILLING_RETRY)


def enqueue_credit_note(note_id: int) -> None:
    _enqueue_once(issue_credit_note_job, note_id, f"billing-credit-note-{note_id}", BILLING_RETRY)


def enqueue_stripe_event(row_id: int) -> None:
    _enqueue_once(process_stripe_event, row_id, f"stripe-event-{row_id}", DEFAULT_RETRY)


def _retries_left() -> int:
    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0


def bill_membership(membership_id: int, year: int, kind: InvoiceKind, actor_id: int | None = None) -> Invoice:
    """Create (or find) the local invoice row, then take it through Stripe step by step, committing each.
    Raises ``DomainError`` (cannot be invoiced) or ``StripeGatewayError``."""
    membership = db.session.get(Membership, membership_id)
    if membership is None:
        raise DomainError(f"membership {membership_id} does not exist")
    actor = db.session.get(User, actor_id) if actor_id else None
    invoice, _created = get_or_create_invoice(membership, year, kind, actor=actor)
    db.session.commit()
    return _through_stripe(invoice.id)


def _through_stripe(invoice_id: int) -> Invoice:
    gateway = get_gateway()
    while True:
        # One job at a time per invoice: a second run's job for the same membership waits here.
        invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
        assert invoice is not None
        progressed = next_stripe_step(invoice, gateway)
        db.session.commit()
        if not progressed:
            return invoice


def send_invoice_to_stripe(invoice_id: int) -> None:
    """Take an existing invoice row (a reissue) through Stripe, committing each step. Never creates an invoice
    row, so a retry after a crash resumes the same invoice at Stripe (its idempotency keys) and bills once.
    Retried by RQ while Stripe is unavailable."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.stripe_step == "sent":
        return
    _through_stripe(invoice_id)


def invoice_run_item(item_id: int) -> None:
    """Invoice one membership of a billing run and record the outcome on the run item."""
    item = db.session.get(BillingRunItem, item_id)
    if item is None or item.status is not RunItemStatus.QUEUED:
        return
    membership_id, year, actor_id = item.membership_id, item.run.year, item.run.created_by_id
    item.attempts += 1
    db.session.commit()
    error: str | None = None
    invoice_id: int | None = None
    status = RunItemStatus.DONE
    try:
        invoice_id = bill_membership(membership_id, year, InvoiceKind.MEMBERSHIP, actor_id).id
    except DomainError as exc:
        db.session.rollback()
        status, error = RunItemStatus.FAILED, exc.message
    except StripeUnavailable as exc:
        db.session.rollback()
        error = exc.message
        if _retries_left() > 0:
            _record(item_id, RunItemStatus.QUEUED, error, None, retry_at=_next_retry_at())
            raise  # RQ runs the job again after its interval
        status = RunItemStatus.FAILED
    except StripeGatewayError as exc:
        db.session.rollback()
        status, error = RunItemStatus.FAILED, exc.message
    _record(item_id, status, error, invoice_id)


def _next_retry_at() -> datetime:
    """When RQ runs the current job again: it schedules the retry this job's next interval from now."""
    job = get_current_job()
    assert job is not None
    return utcnow() + timedelta(seconds=job.get_retry_interval())


def _record(
    item_id: int, status: RunItemStatus, error: str | None, invoice_id: int | None, *, retry_at: datetime | None = None
) -> None:
    item = db.session.get(BillingRunItem, item_id)
    assert item is not None
    item.status, item.error, item.retry_at = status, error, retry_at
    if invoice_id is not None:
        item.invoice_id = invoice_id
    db.session.flush()
    finish_run_if_done(item.run)
    db.session.commit()
    if status is RunItemStatus.FAILED:
        logger.warning("billing run item %s failed: %s", item_id, error)


def void_invoice_job(invoice_id: int) -> None:
    """Void at Stripe the invoice staff asked to void (``complete_void``). Retried by RQ while Stripe is
    unavailable; a refusal (e.g. the invoice was paid meanwhile), or an outage outlasting the retries, is recorded
    on the invoice for its page. Safe to run twice: a done or failed request leaves nothing to do."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or not invoice.void_pending:
        return
    try:
        complete_void(invoice)
    except StripeGatewayError as exc:
        db.session.rollback()
        if exc.temporary and _retries_left() > 0:
            raise  # RQ runs the job again after its interval
        invoice = db.session.get(Invoice, invoice_id)
        assert invoice is not None
        fail_void(invoice, exc.message)
    db.session.commit()


def issue_credit_note_job(note_id: int) -> None:
    """Issue a pending credit note at Stripe (``complete_credit_note``). Retried by RQ while Stripe is
    unavailable; a refusal, or an outage outlasting the retries, fails the note and releases its amount.
    Safe to run twice: only a pending note is sent."""
    note = db.session.get(CreditNote, note_id)
    if note is None or note.status is not CreditNoteStatus.PENDING:
        return
    try:
        complete_credit_note(note)
    except StripeGatewayError as exc:
        db.session.rollback()
        if exc.temporary and _retries_left() > 0:
            raise
        note = db.session.get(CreditNote, note_id)
        assert note is not None
        fail_credit_note(note, exc.message)
    db.session.commit()


def invoice_membership(membership_id: int, year: int, kind: str = InvoiceKind.MEMBERSHIP.value) -> None:
    """Invoice one membership outside a run (the pro-rata invoice on activation). Retried by RQ while
    Stripe is unavailable; a membership that cannot be invoiced is logged for finance to handle."""
    try:
        bill_membership(membership_id, year, InvoiceKind(kind))
    except DomainError as exc:
        db.session.rollback()
        logger.warning("membership %s not invoiced for %s: %s", membership_id, year, exc.message)


def process_stripe_event(event_row_id: int) -> None:
    """Apply one stored webhook event (once; a repeat finds it processed)."""
    row = db.session.scalar(select(StripeEvent).where(StripeEvent.id == event_row_id).with_for_update())
    if row is None:
        return
    from crm.billing.webhooks import process_event

    try:
        process_event(row)
    except StripeGatewayError as exc:
        db.session.rollback()
        row = db.session.get(StripeEvent, event_row_id)
        if row is not None:
            row.error = exc.message
            db.session.commit()
        raise
    db.session.commit()


@periodic(SWEEP_EVERY, queue="billing", name="billing.requeue_lost_jobs")
def requeue_lost_jobs(now: datetime | None = None) -> dict[str, list[int]]:
    """Enqueue again the run items, webhook events and reissued invoices whose job was lost (Redis down at commit,
    a worker killed on its last retry). Returns the ids, by kind."""
    now = now or utcnow()
    items = db.session.scalars(
        select(BillingRunItem.id)
        .where(BillingRunItem.status == RunItemStatus.QUEUED, BillingRunItem.updated_at < now - LOST_JOB_GRACE)
        .order_by(BillingRunItem.id)
        .limit(SWEEP_BATCH)
    ).all()
    events = db.session.scalars(
        select(StripeEvent.id)
        .where(
            StripeEvent.processed_at.is_(None),
            StripeEvent.received_at < now - LOST_JOB_GRACE,
            StripeEvent.received_at > now - EVENT_SWEEP_WINDOW,
        )
        .order_by(StripeEvent.id)
        .limit(SWEEP_BATCH)
    ).all()
    # A reissued invoice is written by the request and sent by its own job; a failed job is kept by RQ (and
    # logged), so only one with no job at all was lost.
    reissues = db.session.scalars(
        select(Invoice.id)
        .where(
            Invoice.sequence > 1,
            Invoice.status.in_((InvoiceStatus.DRAFT, InvoiceStatus.OPEN)),
            Invoice.stripe_step != "sent",
            Invoice.updated_at < now - LOST_JOB_GRACE,
            Invoice.updated_at > now - EVENT_SWEEP_WINDOW,
        )
        .order_by(Invoice.id)
        .limit(SWEEP_BATCH)
    ).all()
    # A requested void or a pending credit note: written by the request, done at Stripe by its own job.
    voids = db.session.scalars(
        select(Invoice)
        .where(Invoice.void_requested_at.is_not(None), Invoice.void_requested_at < now - LOST_JOB_GRACE)
        .order_by(Invoice.id)
        .limit(SWEEP_BATCH)
    ).all()
    notes = db.session.scalars(
        select(CreditNote.id)
        .where(CreditNote.status == CreditNoteStatus.PENDING, CreditNote.created_at < now - LOST_JOB_GRACE)
        .order_by(CreditNote.id)
        .limit(SWEEP_BATCH)
    ).all()
    requeued: dict[str, list[int]] = {"items": [], "events": [], "invoices": [], "voids": [], "credit_notes": []}
    for item_id in items:
        if not has_pending_job(f"billing-run-item-{item_id}"):
            enqueue_run_item(item_id)
            requeued["items"].append(item_id)
    for row_id in events:
        if not has_pending_job(f"stripe-event-{row_id}"):
            enqueue_stripe_event(row_id)
            requeued["events"].append(row_id)
    for invoice_id in reissues:
        if _lost(f"billing-invoice-{invoice_id}"):
            enqueue_invoice(invoice_id)
            requeued["invoices"].append(invoice_id)
    for invoice in voids:
        if _lost(_void_job_id(invoice)):
            enqueue_void(invoice)
            requeued["voids"].append(invoice.id)
    for note_id in notes:
        if _lost(f"billing-credit-note-{note_id}"):
            enqueue_credit_note(note_id)
            requeued["credit_notes"].append(note_id)
    db.session.commit()
    if any(requeued.values()):
        logger.warning("billing: lost jobs enqueued again: %s", requeued)
    return requeued


@periodic(timedelta(days=1), queue="billing", name="billing.daily_reminders")
def daily_reminders() -> None:
    """Send the +7 and +21 days overdue reminders; membership status is never touched."""
    sent = send_due_reminders()
    db.session.commit()
    logger.info("billing reminders sent: %s", sent)


def _on_status_change(membership: Membership, from_status, to_status, actor) -> None:
    # A first activation (not a withdrawn notice) bills the joining year's share.
    if to_status is MembershipStatus.ACTIVE and from_status is MembershipStatus.BOARD_REVIEW and membership.start_on:
        enqueue_after_commit(
            invoice_membership,
            membership.id,
            membership.start_on.year,
            InvoiceKind.PRO_RATA.value,
            queue="billing",
            retry=BILLING_RETRY,
        )


on_membership_status_change(_on_status_change)
