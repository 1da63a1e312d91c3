"""Billing runs: preview with reasons, one job per membership, outages, re-runs, retries, pro rata."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from crm.auth.models import Role
from crm.billing.models import BillingRun, BillingRunStatus, Invoice, InvoiceKind, RunItemStatus
from crm.billing.services import (
    get_or_create_invoice,
    preview_billing_run,
    retry_failed_items,
    run_progress,
    start_billing_run,
)
from crm.extensions import db
from crm.members.models import MembershipStatus
from crm.members.services import change_membership_status
from tests.billing.conftest import YEAR, make_billable
from tests.conftest import run_jobs, run_jobs_until_idle
from tests.factories import make_staff
from tests.helpers import login


def _invoices() -> int:
    return db.session.scalar(select(func.count()).select_from(Invoice))


def _finance():
    from crm.auth.models import Role

    return make_staff(Role.FINANCE)


def test_the_preview_lists_fees_and_why_some_cannot_be_invoiced(app):
    billable = make_billable()
    no_email = make_billable(invoice_email=None)
    no_reference = make_billable(buyer_reference_required=True)
    no_turnover = make_billable(annual_turnover_nok=None)
    make_billable(status=MembershipStatus.APPLIED)  # not a member: not in the run

    rows = {row.membership.id: row for row in preview_billing_run(YEAR)}

    assert set(rows) == {o.membership.id for o in (billable, no_email, no_reference, no_turnover)}
    assert rows[billable.membership.id].reason is None
    assert rows[billable.membership.id].fee.amount_ore > 0
    assert rows[billable.membership.id].fee.lines
    assert rows[no_email.membership.id].reason == "Ingen e-postadresse for faktura."
    assert rows[no_reference.membership.id].reason == "Kunden krever en bestillerreferanse, men ingen er registrert."
    assert rows[no_turnover.membership.id].reason


def test_a_run_of_200_with_stripe_down_part_of_the_time_ends_with_200_invoices(app, stripe_server):
    organisations = [make_billable() for _ in range(200)]
    run = start_billing_run(YEAR, actor=_finance())
    db.session.commit()
    # Down (503, then refused connections) for stretches longer than one request's retries.
    stripe_server.outage_after(150, 60, mode="503")

    run_jobs(app)
    stripe_server.outage_after(100, 60, mode="refuse")
    run_jobs_until_idle(app)

    remote = stripe_server.objects("invoice")
    assert len(remote) == 200
    assert {i["metadata"]["membership_id"] for i in remote} == {str(o.membership.id) for o in organisations}
    assert all(i["status"] == "open" and len(i["lines"]["data"]) == 1 for i in remote)
    assert _invoices() == 200
    counts = run_progress(run)
    assert counts[RunItemStatus.DONE] == 200
    assert counts[RunItemStatus.FAILED] == 0
    db.session.refresh(run)
    assert run.status is BillingRunStatus.FINISHED


def test_a_run_starts_only_with_the_count_and_total_it_will_bill(app):
    import pytest

    from crm.billing.services import summarise_preview
    from crm.errors import DomainError

    make_billable()
    make_billable(invoice_email=None)
    summary = summarise_preview(preview_billing_run(YEAR))
    assert summary.count == 1 and summary.gross_ore == summary.net_ore > 0  # the fee is outside VAT by default
    with pytest.raises(DomainError, match="ville nå sende 1 faktura,"):
        start_billing_run(YEAR, actor=_finance(), confirmed=(1, summary.gross_ore + 100))
    with pytest.raises(DomainError):
        start_billing_run(YEAR, actor=_finance(), confirmed=(2, summary.gross_ore))
    assert db.session.scalar(select(func.count()).select_from(BillingRun)) == 0
    run = start_billing_run(YEAR, actor=_finance(), confirmed=(1, summary.gross_ore))
    assert [item.status for item in run.items].count(RunItemStatus.QUEUED) == 1


def test_starting_the_same_run_twice_never_bills_twice(app, stripe_server):
    for _ in range(5):
        make_billable()
    actor = _finance()
    first = start_billing_run(YEAR, actor=actor)
    second = start_billing_run(YEAR, actor=actor)  # both queued before any job runs
    db.session.commit()
    run_jobs(app)
    third = start_billing_run(YEAR, actor=actor)
    db.session.commit()
    run_jobs(app)

    assert len(stripe_server.objects("invoice")) == 5
    assert _invoices() == 5
    assert run_progress(first)[RunItemStatus.DONE] + run_progress(second)[RunItemStatus.DONE] >= 5
    assert run_progress(third)[RunItemStatus.SKIPPED] == 5


def test_failed_items_can_be_retried(app, stripe_server, monkeypatch):
    make_billable()
    actor = _finance()
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_wrong")  # Stripe answers 401: a hard failure
    run = start_billing_run(YEAR, actor=actor)
    db.session.commit()
    run_jobs(app)
    assert run_progress(run)[RunItemStatus.FAILED] == 1
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_crm")

    assert retry_failed_items(run, actor=actor) == 1
    db.session.commit()
    run_jobs(app)

    assert run_progress(run)[RunItemStatus.DONE] == 1
    assert len(stripe_server.objects("invoice")) == 1


def test_a_new_member_gets_a_pro_rata_invoice_on_activation(app, stripe_server):
    organisation = make_billable(status=MembershipStatus.BOARD_REVIEW)
    change_membership_status(organisation.membership, MembershipStatus.ACTIVE, actor=None, on_date=date(YEAR, 8, 15))
    db.session.commit()
    run_jobs(app)

    invoice = db.session.scalar(select(Invoice))
    assert invoice.kind is InvoiceKind.PRO_RATA
    assert invoice.year == YEAR
    annual, pro_rata = invoice.lines  # the annual fee, then the pro-rata reduction
    assert pro_rata.description == f"Innmeldt 15.08.{YEAR}: 50 % av årskontingenten"
    assert pro_rata.amount_ore == -annual.amount_ore // 2
    assert invoice.net_ore == annual.amount_ore + pro_rata.amount_ore
    assert len(stripe_server.objects("invoice")) == 1
    # The annual run for the same year skips the new member.
    rows = {row.membership.id: row for row in preview_billing_run(YEAR)}
    assert rows[organisation.membership.id].reason == f"Allerede fakturert for {YEAR}."


def test_the_preview_shows_already_invoiced_members_as_done_not_as_problems(app, client):
    invoiced = make_billable()
    get_or_create_invoice(invoiced.membership, YEAR, InvoiceKind.MEMBERSHIP)
    no_email = make_billable(invoice_email=None)
    rows = {row.membership.id: row for row in preview_billing_run(YEAR)}
    assert rows[invoiced.membership.id].invoiced and not rows[no_email.membership.id].invoiced
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/billing/runs/new?year={YEAR}").text
    assert '<span class="text-muted">Allerede fakturert for 2026.</span>' in page
    assert '<span class="text-danger">Ingen e-postadresse for faktura.</span>' in page


def test_a_voided_invoice_is_not_silently_counted_as_invoiced_again(app, stripe_server):
    from crm.billing.jobs import bill_membership
    from crm.billing.services import void_invoice

    organisation = make_billable()
    actor = _finance()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    void_invoice(invoice, actor=actor, reason="Feil kategori")
    db.session.commit()
    run_jobs(app)  # the job voids it at Stripe

    # The preview must not promise an invoice that the run cannot make (one invoice row per membership and year).
    [row] = preview_billing_run(YEAR)
    assert row.reason == (
        f"Faktura {invoice.number} for {YEAR} er annullert; en fakturering fakturerer ikke medlemskapet på nytt "
        "for samme år. Lag ny faktura fra fakturasiden for å sende en rettet faktura."
    )
    assert row.voided == invoice
    run = start_billing_run(YEAR, actor=actor)
    db.session.commit()
    run_jobs(app)
    assert run_progress(run)[RunItemStatus.SKIPPED] == 1
    assert run_progress(run)[RunItemStatus.DONE] == 0
    assert len(stripe_server.objects("invoice")) == 1


def test_jobs_lost_between_commit_and_redis_are_enqueued_again_by_the_sweeper(app, client, stripe_server):
    from datetime import timedelta

    from crm.billing.jobs import requeue_lost_jobs
    from crm.billing.models import StripeEvent
    from crm.jobs import PERIODIC_JOBS, get_queue
    from crm.models import utcnow
    from tests.billing.conftest import deliver

    assert PERIODIC_JOBS["billing.requeue_lost_jobs"].func is requeue_lost_jobs
    make_billable()
    run = start_billing_run(YEAR, actor=_finance())
    db.session.commit()
    nothing = {"items": [], "events": [], "invoices": [], "voids": [], "credit_notes": []}
    assert requeue_lost_jobs(now=utcnow() + timedelta(hours=1)) == nothing, "queued: not lost"
    get_queue("billing").empty()  # Redis lost the job (or the enqueue after commit failed)

    assert len(requeue_lost_jobs(now=utcnow() + timedelta(hours=1))["items"]) == 1
    run_jobs(app)
    assert run_progress(run)[RunItemStatus.DONE] == 1
    assert len(stripe_server.objects("invoice")) == 1

    [finalized] = stripe_server.events("invoice.finalized")
    deliver(client, finalized)
    get_queue("billing").empty()
    row = db.session.scalar(select(StripeEvent))
    assert row.processed_at is None
    assert requeue_lost_jobs()["events"] == [], "within its grace time: the job may still be on its way"
    assert requeue_lost_jobs(now=utcnow() + timedelta(hours=1))["events"] == [row.id]
    run_jobs(app)
    db.session.refresh(row)
    assert row.processed_at is not None
    assert requeue_lost_jobs(now=utcnow() + timedelta(hours=1)) == nothing
