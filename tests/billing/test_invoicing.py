"""One membership invoice through Stripe: the local row first, deterministic idempotency keys, resumable steps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm.billing.jobs import bill_membership
from crm.billing.models import Invoice, InvoiceKind, InvoiceStatus, StripeCustomer, VatTreatment
from crm.billing.services import get_or_create_invoice, next_stripe_step
from crm.errors import DomainError
from crm.extensions import db
from crm.models import utcnow
from tests.billing.conftest import YEAR, make_billable


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_an_invoice_is_created_finalised_and_sent_at_stripe(app, stripe_server):
    organisation = make_billable(default_buyer_reference="REF-77")
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    [remote] = stripe_server.objects("invoice")
    assert remote["status"] == "open"
    assert remote["collection_method"] == "send_invoice"
    assert remote["days_until_due"] == 30
    assert {"name": "Org.nr.", "value": organisation.orgnr} in remote["custom_fields"]
    assert {"name": "Deres ref.", "value": "REF-77"} in remote["custom_fields"]
    assert [line["amount"] for line in remote["lines"]["data"]] == [invoice.net_ore]
    assert remote["lines"]["data"][0]["taxes"] == []  # outside scope: no tax rate
    assert remote["auto_advance"] is False, "Stripe must never finalise or send it by itself"
    assert len(stripe_server.events("invoice.sent")) == 1, "sent explicitly, once"
    assert invoice.stripe_step == "sent"
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.number == remote["number"]
    assert invoice.hosted_invoice_url == remote["hosted_invoice_url"]
    assert invoice.invoice_pdf == remote["invoice_pdf"]
    assert invoice.due_on == invoice.issued_on + timedelta(days=30)
    assert invoice.gross_ore == invoice.net_ore > 0
    assert db.session.get(StripeCustomer, organisation.id).stripe_customer_id == remote["customer"]
    # customer, invoice, lines, finalise, send: at most five calls for an organisation's first invoice
    assert stripe_server.total_requests() <= 5


def test_vat_lines_carry_a_stripe_tax_rate(app, stripe_server, monkeypatch):
    monkeypatch.setitem(app.config, "BILLING_FEE_VAT", "vat_25")
    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    assert invoice.lines[0].vat_treatment is VatTreatment.VAT_25
    assert invoice.vat_ore == invoice.net_ore // 4
    [remote] = stripe_server.objects("invoice")
    assert remote["total"] == invoice.gross_ore == invoice.net_ore + invoice.vat_ore
    [rate] = stripe_server.objects("tax_rate")
    assert rate["percentage"] == 25.0 and rate["inclusive"] is False


def test_running_the_job_twice_bills_once(app, stripe_server):
    organisation = make_billable()
    first = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    calls = stripe_server.total_requests()
    second = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    assert first.id == second.id
    assert stripe_server.total_requests() == calls, "a finished invoice needs no Stripe call"
    assert len(stripe_server.objects("invoice")) == 1
    assert _count(Invoice) == 1


@pytest.mark.parametrize("steps_before_crash", [1, 2])
def test_a_job_killed_half_way_resumes_without_a_second_invoice(app, stripe_server, steps_before_crash):
    organisation = make_billable()
    invoice, _created = get_or_create_invoice(organisation.membership, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    for _ in range(steps_before_crash):
        next_stripe_step(invoice)
    # The worker dies here before committing its last step: the local row forgets it.
    db.session.rollback()
    db.session.expire_all()

    finished = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    [remote] = stripe_server.objects("invoice")
    assert finished.stripe_invoice_id == remote["id"]
    assert len(remote["lines"]["data"]) == 1, "the replayed add_lines did not add the line twice"
    assert remote["status"] == "open"
    assert stripe_server.replays >= 1
    assert len(stripe_server.objects("customer")) == 1


def test_a_retry_after_stripe_forgot_the_key_finds_the_invoice_by_metadata(app, stripe_server):
    organisation = make_billable()
    invoice, _created = get_or_create_invoice(organisation.membership, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    next_stripe_step(invoice)  # the invoice exists at Stripe, the job dies before it commits
    db.session.rollback()
    invoice.stripe_attempted_at = utcnow() - timedelta(days=2)
    db.session.commit()
    stripe_server.app.state.idempotent.clear()  # Stripe keeps keys for 24 hours

    finished = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    assert len(stripe_server.objects("invoice")) == 1
    assert finished.stripe_invoice_id == stripe_server.objects("invoice")[0]["id"]


def test_a_membership_without_invoice_email_is_refused_before_stripe(app, stripe_server):
    organisation = make_billable(invoice_email=None)
    with pytest.raises(DomainError, match="Ingen e-postadresse for faktura"):
        bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    assert stripe_server.total_requests() == 0
    assert _count(Invoice) == 0


def test_a_pro_rata_invoice_blocks_a_second_annual_invoice_for_the_year(app, stripe_server):
    organisation = make_billable()
    bill_membership(organisation.membership.id, YEAR, InvoiceKind.PRO_RATA)
    with pytest.raises(DomainError):
        bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    assert len(stripe_server.objects("invoice")) == 1


def test_idempotency_keys_are_deterministic_from_the_membership_and_year(app, stripe_server):
    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    base = f"invoice:{organisation.membership.id}:{YEAR}:membership"
    assert set(stripe_server.app.state.idempotent) == {
        f"customer:{organisation.id}",
        base,
        f"{base}:lines",
        f"{base}:finalize",
        f"{base}:send",
    }
    assert invoice.idempotency_base == base


@pytest.mark.parametrize("steps_done", [2, 3], ids=["lines added", "finalised"])
def test_a_retry_days_later_never_adds_the_lines_twice_or_refinalises(app, stripe_server, steps_done):
    organisation = make_billable()
    invoice, _created = get_or_create_invoice(organisation.membership, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    for step in range(steps_done):
        next_stripe_step(invoice)
        if step < steps_done - 1:
            db.session.commit()
    # The last step happened at Stripe, but the worker died before recording it; the retry comes days later,
    # when Stripe no longer remembers the idempotency keys.
    db.session.rollback()
    invoice.stripe_attempted_at = utcnow() - timedelta(days=2)
    db.session.commit()
    stripe_server.app.state.idempotent.clear()

    finished = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    [remote] = stripe_server.objects("invoice")
    assert len(remote["lines"]["data"]) == 1
    assert remote["total"] == finished.gross_ore
    assert finished.status is InvoiceStatus.OPEN and finished.number == remote["number"]


def test_next_years_invoice_goes_to_the_organisations_new_invoice_email(app, stripe_server):
    from crm.members.fees import seed_fee_schedules

    organisation = make_billable(invoice_email="gammel@example.no")
    seed_fee_schedules(YEAR + 1)
    seed_fee_schedules(YEAR + 2)
    first = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    calls = stripe_server.total_requests()
    unchanged = bill_membership(organisation.membership.id, YEAR + 1, InvoiceKind.MEMBERSHIP)
    assert stripe_server.total_requests() - calls == 4, "same details: no customer update"
    assert stripe_server.invoice(unchanged.stripe_invoice_id)["customer_email"] == "gammel@example.no"

    organisation.invoice_email = "ny@example.no"
    calls = stripe_server.total_requests()
    changed = bill_membership(organisation.membership.id, YEAR + 2, InvoiceKind.MEMBERSHIP)

    assert stripe_server.total_requests() - calls == 5, "update the customer, create, add lines, finalise, send"
    assert stripe_server.invoice(changed.stripe_invoice_id)["customer_email"] == "ny@example.no"
    assert stripe_server.invoice(first.stripe_invoice_id)["customer_email"] == "gammel@example.no"


def test_a_draft_waiting_out_an_outage_is_not_finalised_by_stripe_and_is_sent_once(app, stripe_server):
    organisation = make_billable()
    invoice, _created = get_or_create_invoice(organisation.membership, YEAR, InvoiceKind.MEMBERSHIP)
    next_stripe_step(invoice)  # created at Stripe, still without lines
    db.session.commit()
    stripe_server.advance(2 * 3600)  # the job's retries ran past Stripe's hour for auto-advancing drafts

    finished = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    remote = stripe_server.invoice(finished.stripe_invoice_id)
    assert remote["status"] == "open"
    assert remote["total"] == finished.gross_ore > 0, "finalised by us, with its lines"
    assert len(stripe_server.events("invoice.finalized")) == 1
    assert len(stripe_server.events("invoice.sent")) == 1
    assert finished.stripe_step == "sent"
    bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    assert len(stripe_server.events("invoice.sent")) == 1, "a repeated job sends nothing more"


@pytest.mark.parametrize(
    ("stripe_now", "issued_on", "due_on"),
    [
        # Winter time (UTC+1): 23:30 UTC is half past midnight the next day in Oslo, 22:30 UTC still the same day.
        (datetime(2026, 1, 15, 23, 30, tzinfo=UTC), date(2026, 1, 16), date(2026, 2, 15)),
        (datetime(2026, 1, 15, 22, 30, tzinfo=UTC), date(2026, 1, 15), date(2026, 2, 14)),
        # Summer time (UTC+2): 22:30 UTC is already the next day.
        (datetime(2026, 6, 15, 22, 30, tzinfo=UTC), date(2026, 6, 16), date(2026, 7, 16)),
    ],
)
def test_the_invoice_and_due_dates_are_the_oslo_days_of_stripes_timestamps(
    app, stripe_server, monkeypatch, stripe_now, issued_on, due_on
):
    import time

    monkeypatch.setitem(app.config, "BILLING_DAYS_UNTIL_DUE", 30)
    stripe_server.advance(int(stripe_now.timestamp()) - int(time.time()))  # Stripe's clock at that moment

    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)

    remote = stripe_server.invoice(invoice.stripe_invoice_id)
    assert remote["status_transitions"]["finalized_at"] - int(stripe_now.timestamp()) < 60
    assert (invoice.issued_on, invoice.due_on) == (issued_on, due_on)


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), date(2026, 3, 29)),  # the night summer time starts
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), date(2026, 10, 25)),  # the night it ends (still UTC+2)
        (datetime(2026, 10, 25, 22, 30, tzinfo=UTC), date(2026, 10, 25)),  # the evening after (UTC+1)
    ],
)
def test_oslo_date_is_the_day_in_oslo_across_the_clock_changes(moment, day):
    from crm.i18n import oslo_date

    assert oslo_date(moment) == day
