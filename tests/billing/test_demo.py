"""The billing demo: local invoices in every state, loaded with the rest of the demo, offline."""

from __future__ import annotations

from sqlalchemy import select

from crm.billing.demo import load_billing_demo
from crm.billing.listing import InvoiceFilters, invoice_events, search_invoices
from crm.billing.models import CreditNote, Invoice, InvoiceStatus
from crm.billing.services import today
from crm.demo import load_demo
from crm.extensions import db


def test_the_demo_invoices_this_year_in_every_state_without_stripe_and_loads_once(app):
    # The test config points STRIPE_API_BASE at a closed port: any Stripe call would fail the load.
    load_demo()
    invoices = db.session.scalars(select(Invoice)).all()
    assert {i.status for i in invoices} == set(InvoiceStatus)
    assert all(i.stripe_invoice_id is None and i.year == today().year for i in invoices)
    assert sum(i.is_overdue(today()) for i in invoices) >= 2
    assert all(i.paid_ore == i.gross_ore for i in invoices if i.status is InvoiceStatus.PAID)
    assert db.session.scalar(select(CreditNote.id)) is not None
    assert any(i.ehf for i in invoices)
    with app.test_request_context("/"):
        page, totals = search_invoices(InvoiceFilters(year=today().year))
    assert totals["count"] == len(invoices) and totals["gross"] > 0
    assert page.items[0].is_overdue(today())  # overdue first
    assert load_billing_demo() == {"invoices": 0}


def test_loading_the_demo_queues_no_billing_jobs(app):
    # The demo's memberships are history recorded after the fact: activating them must not bill anyone.
    from crm.jobs import get_queue

    load_demo()
    db.session.commit()
    assert get_queue("billing").count == 0


def test_a_demo_invoice_s_history_starts_when_it_was_issued_and_never_claims_stripe(app):
    # Stripe never had the demo's invoices (the page says "Ikke sendt til Stripe"), and they were written
    # weeks ago, not when the demo was loaded.
    load_demo()
    invoice = db.session.scalars(
        select(Invoice).where(Invoice.reminder_21_sent_at.is_not(None)).order_by(Invoice.id)
    ).first()
    with app.test_request_context("/"):
        history = [(item["at"], str(item["what"])) for item in invoice_events(invoice)]
    created_at, finalised_at = history[-1][0], dict((what, at) for at, what in history)["Ferdigstilt her, uten Stripe"]
    assert "Ferdigstilt hos Stripe" not in {what for _, what in history}
    assert history[-1][1] == "Faktura opprettet"
    assert created_at <= finalised_at < dict((what, at) for at, what in history)["Påminnelse sendt"]
