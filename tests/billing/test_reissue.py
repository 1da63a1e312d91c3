"""Reissuing a voided invoice: a new invoice (the next sequence) with its own Stripe keys, made once, sent by a job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.billing.jobs import bill_membership, requeue_lost_jobs, send_invoice_to_stripe
from crm.billing.models import Invoice, InvoiceKind, InvoiceStatus, RunItemStatus
from crm.billing.reconcile import reconcile
from crm.billing.services import (
    build_invoice,
    next_stripe_step,
    preview_billing_run,
    reissue_invoice,
    run_progress,
    start_billing_run,
    void_invoice,
)
from crm.errors import DomainError
from crm.extensions import db
from crm.jobs import get_queue
from crm.mail.models import OutboxMessage
from crm.members.models import ContactRole, MembershipStatus
from crm.models import utcnow
from tests.billing.conftest import YEAR, deliver, make_billable
from tests.conftest import run_jobs
from tests.factories import make_contact, make_staff, make_user
from tests.helpers import csrf_token, login


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _voided(**organisation_values):
    """An organisation whose annual invoice for YEAR went out and was voided by finance; and that finance user."""
    organisation = make_billable(**organisation_values)
    finance = make_staff(Role.FINANCE)
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    void_invoice(invoice, actor=finance, reason="Feil e-postadresse")
    db.session.commit()
    run_jobs(current_app._get_current_object())  # the job voids it at Stripe
    db.session.refresh(invoice)
    return organisation, invoice, finance


def test_a_reissue_is_a_second_stripe_invoice_with_its_own_keys_and_number(app, stripe_server):
    organisation, voided, finance = _voided(invoice_email="feil@example.no")
    organisation.invoice_email = "riktig@example.no"  # finance corrects the details, then reissues
    organisation.default_buyer_reference = "REF-2"
    calls = stripe_server.total_requests()

    new = reissue_invoice(voided, actor=finance)
    db.session.commit()

    assert stripe_server.total_requests() == calls, "no Stripe call in the request"
    assert (new.sequence, new.status, new.stripe_invoice_id) == (2, InvoiceStatus.DRAFT, None)
    assert (new.invoice_email, new.buyer_reference) == ("riktig@example.no", "REF-2")
    run_jobs(app)
    db.session.refresh(new)
    db.session.refresh(voided)

    remote = stripe_server.invoice(new.stripe_invoice_id)
    assert remote["status"] == "open" and new.status is InvoiceStatus.OPEN
    assert new.number == remote["number"] != voided.number
    assert remote["customer_email"] == "riktig@example.no", "Stripe emails the reissue to the corrected address"
    assert {"name": "Deres ref.", "value": "REF-2"} in remote["custom_fields"]
    assert remote["total"] == new.gross_ore
    assert voided.status is InvoiceStatus.VOID
    assert stripe_server.invoice(voided.stripe_invoice_id)["status"] == "void"
    assert len(stripe_server.objects("invoice")) == 2
    base = f"invoice:{organisation.membership.id}:{YEAR}:membership"
    assert new.idempotency_base == f"{base}:2" and voided.idempotency_base == base
    assert {f"{base}:2", f"{base}:2:customer", f"{base}:2:lines", f"{base}:2:finalize"} <= set(
        stripe_server.app.state.idempotent
    )
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "billing.invoice.reissued"))
    assert entry.target_id == str(voided.id)
    assert entry.details == {"voided_number": voided.number, "new_invoice_id": new.id, "sequence": 2}


def test_reissuing_twice_makes_one_new_invoice(app, stripe_server):
    _organisation, voided, finance = _voided()
    first = reissue_invoice(voided, actor=finance)
    db.session.commit()

    with pytest.raises(DomainError, match=f"er allerede erstattet av faktura \\(utkast {first.id}\\)"):
        reissue_invoice(voided, actor=finance)
    db.session.rollback()
    run_jobs(app)

    assert _count(Invoice) == 2
    assert len(stripe_server.objects("invoice")) == 2


@pytest.mark.parametrize("steps_before_crash", [1, 2, 3])
def test_a_retried_reissue_job_after_a_crash_bills_no_third_time(app, stripe_server, steps_before_crash):
    _organisation, voided, finance = _voided()
    new = reissue_invoice(voided, actor=finance)
    db.session.commit()
    for _ in range(steps_before_crash):
        next_stripe_step(new)
    # The worker dies before committing its last step; RQ runs the job again.
    db.session.rollback()
    db.session.expire_all()

    run_jobs(app)
    send_invoice_to_stripe(new.id)  # and once more, after it finished

    db.session.refresh(new)
    assert new.status is InvoiceStatus.OPEN
    assert _count(Invoice) == 2
    invoices = stripe_server.objects("invoice")
    assert len(invoices) == 2
    assert len(stripe_server.invoice(new.stripe_invoice_id)["lines"]["data"]) == len(new.lines)
    assert stripe_server.replays >= 1


def test_a_reissue_whose_job_was_lost_is_sent_by_the_sweeper(app, stripe_server):
    _organisation, voided, finance = _voided()
    new = reissue_invoice(voided, actor=finance)
    db.session.commit()
    later = utcnow() + timedelta(hours=1)
    assert requeue_lost_jobs(now=later)["invoices"] == [], "queued: not lost"
    get_queue("billing").empty()  # Redis lost the job

    assert requeue_lost_jobs()["invoices"] == [], "within its grace time"
    assert requeue_lost_jobs(now=later)["invoices"] == [new.id]
    run_jobs(app)

    db.session.refresh(new)
    assert new.status is InvoiceStatus.OPEN
    assert len(stripe_server.objects("invoice")) == 2
    assert requeue_lost_jobs(now=later)["invoices"] == []


def _nothing_changed(invoices: int, requests: int, stripe_server) -> None:
    db.session.rollback()
    assert _count(Invoice) == invoices
    assert stripe_server.total_requests() == requests
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "billing.invoice.reissued")) is None


def test_only_the_latest_voided_invoice_of_a_billable_membership_can_be_reissued(app, stripe_server):
    finance = make_staff(Role.FINANCE)
    live = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    organisation, voided, _finance = _voided()
    invoices, requests = _count(Invoice), stripe_server.total_requests()

    with pytest.raises(DomainError, match=r"^Bare en annullert faktura kan erstattes av en ny\.$"):
        reissue_invoice(live, actor=finance)
    _nothing_changed(invoices, requests, stripe_server)

    organisation.invoice_email = None
    with pytest.raises(DomainError, match=r"^Ingen e-postadresse for faktura\.$"):
        reissue_invoice(voided, actor=finance)
    _nothing_changed(invoices, requests, stripe_server)

    organisation.membership.status = MembershipStatus.ENDED
    with pytest.raises(DomainError, match=r"^Medlemskapet har status «Avsluttet» og kan ikke faktureres på nytt\.$"):
        reissue_invoice(voided, actor=finance)
    _nothing_changed(invoices, requests, stripe_server)


def test_a_reissued_invoice_voided_again_can_be_reissued_but_the_first_cannot(app, stripe_server):
    _organisation, voided, finance = _voided()
    second = reissue_invoice(voided, actor=finance)
    db.session.commit()
    run_jobs(app)
    db.session.refresh(second)
    void_invoice(second, actor=finance, reason="Feil kategori")
    db.session.commit()
    run_jobs(app)

    with pytest.raises(DomainError, match=f"^Faktura {voided.number} er allerede erstattet av faktura {second.number}"):
        reissue_invoice(voided, actor=finance)
    db.session.rollback()
    third = reissue_invoice(second, actor=finance)
    db.session.commit()
    run_jobs(app)

    db.session.refresh(third)
    assert third.sequence == 3 and third.status is InvoiceStatus.OPEN
    assert third.idempotency_base.endswith(":membership:3")
    assert len(stripe_server.objects("invoice")) == 3
    [row] = preview_billing_run(YEAR)
    assert row.invoiced


def test_the_database_allows_one_live_invoice_per_membership_and_year(app, stripe_server):
    organisation = make_billable()
    bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    second = build_invoice(organisation.membership, YEAR, InvoiceKind.PRO_RATA, sequence=1)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(second)


def test_the_billing_run_bills_no_one_again_after_a_reissue(app, stripe_server):
    _organisation, voided, finance = _voided()
    [row] = preview_billing_run(YEAR)
    assert row.voided == voided and not row.invoiced  # the preview points at the invoice page
    reissue_invoice(voided, actor=finance)
    db.session.commit()

    [row] = preview_billing_run(YEAR)
    assert row.invoiced and row.reason == f"Allerede fakturert for {YEAR}."
    run = start_billing_run(YEAR, actor=finance)
    db.session.commit()
    run_jobs(app)

    assert run_progress(run)[RunItemStatus.SKIPPED] == 1
    assert _count(Invoice) == 2
    assert len(stripe_server.objects("invoice")) == 2
    assert reconcile(YEAR) == []


def test_webhooks_for_the_voided_and_the_new_invoice_apply_to_their_own_rows(app, client, stripe_server):
    _organisation, voided, finance = _voided()
    new = reissue_invoice(voided, actor=finance)
    db.session.commit()
    run_jobs(app)
    db.session.refresh(new)
    stripe_server.pay(new.stripe_invoice_id)
    events = [event for event in stripe_server.events() if event["type"].startswith("invoice.")]

    for event in reversed(events):  # any order: the newest first
        assert deliver(client, event).status_code == 200
    run_jobs(app)

    db.session.refresh(voided)
    db.session.refresh(new)
    assert (voided.status, voided.paid_ore) == (InvoiceStatus.VOID, 0)
    assert (new.status, new.paid_ore) == (InvoiceStatus.PAID, new.gross_ore)
    receipts = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.template == "billing_receipt")
    assert db.session.scalar(receipts) == 1
    assert reconcile(YEAR) == []


# --- the screens --------------------------------------------------------------------------------------------


def test_finance_reissues_from_the_voided_invoices_page_and_the_two_link_to_each_other(app, client, stripe_server):
    organisation, voided, finance = _voided()
    login(client, finance)
    page = client.get(f"/staff/billing/invoices/{voided.id}").text
    assert "Lag ny faktura" in page and "En fakturering erstatter aldri en annullert faktura." in page
    assert f'action="/staff/billing/invoices/{voided.id}/reissue"' in page

    url = f"/staff/billing/invoices/{voided.id}/reissue"
    assert client.post(url).status_code == 400, "no CSRF token: refused"
    assert _count(Invoice) == 1
    response = client.post(url, data={"csrf_token": csrf_token(client)})
    again = client.post(url, data={"csrf_token": csrf_token(client)}, follow_redirects=True)  # a double submit

    new = db.session.scalar(select(Invoice).where(Invoice.sequence == 2))
    assert response.status_code == 302 and response.location.endswith(f"/staff/billing/invoices/{new.id}")
    assert "er allerede erstattet av faktura" in again.text
    assert _count(Invoice) == 2
    run_jobs(app)
    db.session.refresh(new)
    new_page = client.get(f"/staff/billing/invoices/{new.id}").text
    assert f"Erstatter faktura {voided.number}" in new_page
    assert f'href="/staff/billing/invoices/{voided.id}"' in new_page
    old_page = client.get(f"/staff/billing/invoices/{voided.id}").text
    assert f"Erstattet av faktura {new.number}" in old_page
    assert "/reissue" not in old_page
    assert "Erstattet av en ny faktura" in old_page  # the history, in Norwegian

    listing = client.get(f"/staff/billing/invoices?year={YEAR}").text
    assert voided.number in listing and new.number in listing
    assert f"Erstatter faktura {voided.number}" in listing and f"Erstattet av faktura {new.number}" in listing
    tab = client.get(f"/staff/members/{organisation.id}?tab=invoices").text
    assert f"Erstatter faktura {voided.number}" in tab and f"Erstattet av faktura {new.number}" in tab


def test_a_page_that_cannot_reissue_says_why_and_offers_no_button(app, client, stripe_server):
    organisation, voided, finance = _voided()
    organisation.invoice_email = None
    db.session.commit()
    login(client, finance)
    page = client.get(f"/staff/billing/invoices/{voided.id}").text
    assert "Ingen e-postadresse for faktura." in page
    assert "/reissue" not in page
    preview = client.get(f"/staff/billing/runs/new?year={YEAR}").text
    assert "Lag ny faktura fra fakturasiden" in preview
    assert f'<a href="/staff/billing/invoices/{voided.id}">Åpne faktura {voided.number}</a>' in preview


@pytest.mark.parametrize("who", ["member", "adviser"])
def test_members_and_advisers_cannot_reissue(app, client, stripe_server, who):
    organisation, voided, _finance = _voided()
    if who == "member":
        user = make_user()
        make_contact(organisation, roles=[ContactRole.MAIN_CONTACT], email=user.email, user_id=user.id)
    else:
        user = make_staff(Role.ADVISER)
    db.session.commit()
    login(client, user)
    response = client.post(f"/staff/billing/invoices/{voided.id}/reissue", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 403
    assert _count(Invoice) == 1


def test_the_member_portal_shows_the_new_invoice_as_replacing_the_voided_one(app, client, stripe_server):
    organisation, voided, finance = _voided()
    new = reissue_invoice(voided, actor=finance)
    user = make_user()
    make_contact(organisation, roles=[ContactRole.MAIN_CONTACT], email=user.email, user_id=user.id)
    db.session.commit()
    login(client, user)
    assert "Erstattet av" not in client.get("/portal/invoices/").text, "a draft is not the member's to see"
    run_jobs(app)
    db.session.refresh(new)
    page = client.get("/portal/invoices/").text
    assert f"Erstatter faktura {voided.number}" in page and f"Erstattet av faktura {new.number}" in page
