"""Billing forms sent twice (a double click, a browser retry): one credit note, one billing run, and both
requests get the page the first one led to."""

from __future__ import annotations

from sqlalchemy import func, select

from crm.auth.models import Role
from crm.billing.jobs import bill_membership
from crm.billing.models import BillingRun, CreditNote, InvoiceKind
from crm.extensions import db
from tests.billing.conftest import YEAR, make_billable
from tests.factories import make_staff
from tests.helpers import form_values, login


def _finance(client):
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    return user


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_credit_note_sent_twice_is_requested_once(app, client, stripe_server):
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    _finance(client)
    action = f"/staff/billing/invoices/{invoice.id}/credit"
    form = form_values(client.get(f"/staff/billing/invoices/{invoice.id}").text, action)
    form["amount"], form["reason"] = "1 000", "Rabatt"
    answers = [client.post(action, data=form, follow_redirects=True) for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 200 and "Kreditnotaen utstedes nå hos Stripe." in answer.text
    db.session.refresh(invoice)
    assert _count(CreditNote) == 1 and invoice.credited_ore == 100_000


def test_a_billing_run_started_twice_is_one_run(app, client, stripe_server):
    """Not safe by a key of its own: a run has none (a second run just skips what the first invoiced), so a
    double click made two runs, each enqueuing a job per membership."""
    make_billable()
    _finance(client)
    form = form_values(client.get(f"/staff/billing/runs/confirm?year={YEAR}").text, "/staff/billing/runs")
    answers = [client.post("/staff/billing/runs", data=form) for _ in range(2)]
    run = db.session.scalar(select(BillingRun))
    assert [a.status_code for a in answers] == [302, 302]
    assert answers[0].location == answers[1].location == f"/staff/billing/runs/{run.id}"
    assert _count(BillingRun) == 1
