"""Voids and credit notes: the request records them and makes no Stripe call; a job on the billing queue does them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.billing.jobs import bill_membership, issue_credit_note_job, void_invoice_job
from crm.billing.models import CreditNote, CreditNoteStatus, Invoice, InvoiceKind, InvoiceStatus
from crm.billing.reconcile import reconcile
from crm.billing.services import issue_credit_note, void_invoice
from crm.errors import DomainError
from crm.extensions import db
from crm.jobs import get_queue
from tests.billing.conftest import YEAR, make_billable
from tests.conftest import promote_scheduled_jobs, run_jobs, run_jobs_until_idle
from tests.factories import make_staff
from tests.helpers import csrf_token, login


def _open_invoice():
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE, full_name="Fia Finans")
    db.session.commit()
    return invoice, user


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _page(client, invoice) -> str:
    return client.get(f"/staff/billing/invoices/{invoice.id}").text


# --- void -----------------------------------------------------------------------------------------------------


def test_a_void_request_makes_no_stripe_call_and_the_job_voids_the_invoice_once(app, client, stripe_server):
    invoice, user = _open_invoice()
    login(client, user)
    url = f"/staff/billing/invoices/{invoice.id}/void"
    calls = stripe_server.total_requests()

    response = client.post(
        url, data={"reason": "Feil kategori", "csrf_token": csrf_token(client)}, follow_redirects=True
    )

    assert stripe_server.total_requests() == calls, "no Stripe call in the request"
    assert "Fakturaen annulleres nå hos Stripe." in response.text
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.OPEN and invoice.void_pending
    assert (invoice.void_requested_by_id, invoice.void_reason) == (user.id, "Feil kategori")
    assert [entry.actor_id for entry in _audit("billing.invoice.void_requested")] == [user.id]
    page = _page(client, invoice)
    assert 'id="void-pending"' in page and "Annulleringen er under sending til Stripe (bestilt av Fia Finans" in page
    assert 'hx-trigger="every 2s"' in page  # the note polls until Stripe has answered
    assert f'action="{url}"' not in page, "no second void form while one is pending"
    progress = client.get(f"/staff/billing/invoices/{invoice.id}/stripe-progress")
    assert 'id="void-pending"' in progress.text and "HX-Refresh" not in progress.headers

    # A second submit (a double click, a second tab) while the first is pending is refused and enqueues nothing.
    again = client.post(url, data={"reason": "Feil kategori", "csrf_token": csrf_token(client)}, follow_redirects=True)
    assert '<div class="alert alert-danger">Fakturaen er allerede under annullering hos Stripe.</div>' in again.text
    assert get_queue("billing").count == 1
    assert stripe_server.total_requests() == calls

    run_jobs(app)

    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID and not invoice.void_pending
    assert stripe_server.invoice(invoice.stripe_invoice_id)["status"] == "void"
    assert f"{invoice.idempotency_base}:void" in stripe_server.app.state.idempotent
    [voided] = _audit("billing.invoice.voided")
    assert voided.actor_id == user.id, "the requesting staff member voided it"
    assert voided.details == {"number": invoice.number, "reason": "Feil kategori"}
    assert client.get(f"/staff/billing/invoices/{invoice.id}/stripe-progress").headers["HX-Refresh"] == "true"
    page = _page(client, invoice)
    assert 'id="invoice-progress"' not in page and "Fakturaen ble annullert" in page

    # The job run once more (RQ retrying after a lost acknowledgement) does nothing.
    calls = stripe_server.total_requests()
    void_invoice_job(invoice.id)
    assert stripe_server.total_requests() == calls
    assert len(_audit("billing.invoice.voided")) == 1


def test_a_void_refused_by_stripe_is_shown_on_the_page_and_can_be_asked_again(app, client, stripe_server):
    invoice, user = _open_invoice()
    login(client, user)
    client.post(
        f"/staff/billing/invoices/{invoice.id}/void", data={"reason": "Meldte seg ut", "csrf_token": csrf_token(client)}
    )
    stripe_server.pay(invoice.stripe_invoice_id)  # paid before the job ran (its webhook not in yet)

    run_jobs(app)

    db.session.refresh(invoice)
    assert not invoice.void_pending and invoice.status is InvoiceStatus.OPEN
    assert "You can't do this with a paid invoice" in invoice.void_error
    assert _audit("billing.invoice.voided") == []
    [failed] = _audit("billing.invoice.void_failed")
    assert failed.details["reason"] == "Meldte seg ut"
    page = _page(client, invoice)
    assert '<p class="text-danger" id="void-error">Stripe avviste annulleringen av fakturaen:' in page
    assert 'id="invoice-progress"' not in page
    # Nothing is pending any more: finance may ask again (Stripe answers the same way here).
    void_invoice(invoice, actor=user, reason="Meldte seg ut")
    assert invoice.void_pending and invoice.void_error is None
    db.session.rollback()


def test_a_void_during_a_stripe_outage_is_retried_until_stripe_is_back(app, client, stripe_server):
    invoice, user = _open_invoice()
    void_invoice(invoice, actor=user, reason="Feil kategori")
    db.session.commit()
    stripe_server.down()

    run_jobs(app)

    db.session.refresh(invoice)
    assert invoice.void_pending and invoice.void_error is None, "a temporary error keeps the request"
    stripe_server.up()
    run_jobs_until_idle(app)
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID and not invoice.void_pending


# --- credit notes ---------------------------------------------------------------------------------------------


def test_a_credit_request_reserves_the_amount_makes_no_stripe_call_and_the_job_issues_it(app, client, stripe_server):
    invoice, user = _open_invoice()
    login(client, user)
    url = f"/staff/billing/invoices/{invoice.id}/credit"
    calls = stripe_server.total_requests()
    left = invoice.gross_ore - 100_050

    response = client.post(
        url, data={"amount": "1 000,50", "reason": "Rabatt", "csrf_token": csrf_token(client)}, follow_redirects=True
    )

    assert stripe_server.total_requests() == calls, "no Stripe call in the request"
    assert "Kreditnotaen utstedes nå hos Stripe." in response.text
    db.session.refresh(invoice)
    [note] = invoice.credit_notes
    assert (note.status, note.amount_ore, note.stripe_credit_note_id) == (CreditNoteStatus.PENDING, 100_050, None)
    assert invoice.credited_ore == 100_050, "reserved at once"
    [entry] = _audit("billing.invoice.credited")
    assert entry.actor_id == user.id and entry.details["amount_ore"] == 100_050
    page = _page(client, invoice)
    assert "Under sending til Stripe: 1\u00a0000,50\u00a0kr – Rabatt" in page and 'hx-trigger="every 2s"' in page

    # A second submit for more than is left, counting the pending note, is refused while the first is pending.
    too_much = f"{(left + 1) // 100},{(left + 1) % 100:02d}"
    refused = client.post(
        url, data={"amount": too_much, "reason": "Rabatt", "csrf_token": csrf_token(client)}, follow_redirects=True
    )
    assert "Beløpet må være over null og høyst det som gjenstår å kreditere." in refused.text
    assert db.session.scalar(select(func.count()).select_from(CreditNote)) == 1
    assert stripe_server.total_requests() == calls

    run_jobs(app)

    db.session.refresh(note)
    db.session.refresh(invoice)
    [remote] = stripe_server.objects("credit_note")
    assert (note.status, note.stripe_credit_note_id, note.number) == (
        CreditNoteStatus.ISSUED,
        remote["id"],
        remote["number"],
    )
    assert remote["amount"] == 100_050 and invoice.credited_ore == 100_050
    assert f"{invoice.idempotency_base}:credit:1" in stripe_server.app.state.idempotent
    assert reconcile(YEAR) == []
    assert 'id="invoice-progress"' not in _page(client, invoice)

    calls = stripe_server.total_requests()
    issue_credit_note_job(note.id)  # run twice: nothing more
    assert stripe_server.total_requests() == calls
    assert len(stripe_server.objects("credit_note")) == 1 and invoice.credited_ore == 100_050


def test_a_credit_note_refused_by_stripe_fails_and_releases_its_amount(app, client, stripe_server):
    invoice, user = _open_invoice()
    login(client, user)
    note = issue_credit_note(invoice, invoice.gross_ore, actor=user, reason="Feil faktura")
    db.session.commit()
    # Paid before the job ran: Stripe wants the paid part settled, which the job did not know.
    stripe_server.pay(invoice.stripe_invoice_id)

    run_jobs(app)

    db.session.refresh(note)
    db.session.refresh(invoice)
    assert note.status is CreditNoteStatus.FAILED and "post-payment amount" in note.error
    assert invoice.credited_ore == 0, "the reserved amount is released"
    assert stripe_server.objects("credit_note") == []
    assert len(_audit("billing.invoice.credit_failed")) == 1
    page = _page(client, invoice)
    assert '<li class="text-danger credit-failed">Avvist av Stripe, ingenting kreditert:' in page
    assert 'id="invoice-progress"' not in page

    issue_credit_note_job(note.id)  # a repeat neither releases twice nor calls Stripe
    db.session.refresh(invoice)
    assert invoice.credited_ore == 0
    # Once the payment is known here, the next note (the next key: Stripe never meets the failed note's key with
    # other parameters) is settled outside Stripe and goes through.
    reconcile(YEAR, fix=True)
    second = issue_credit_note(invoice, 10_000, actor=user, reason="Rabatt")
    db.session.commit()
    run_jobs(app)
    db.session.refresh(second)
    assert second.status is CreditNoteStatus.ISSUED
    assert f"{invoice.idempotency_base}:credit:2" in stripe_server.app.state.idempotent


def test_a_void_and_a_credit_note_of_the_same_invoice_never_race_at_stripe(app, stripe_server):
    invoice, user = _open_invoice()
    issue_credit_note(invoice, 10_000, actor=user, reason="Rabatt")
    db.session.commit()
    with pytest.raises(DomainError, match="kreditnota for fakturaen er fortsatt under sending"):
        void_invoice(invoice, actor=user, reason="Feil")
    db.session.rollback()
    run_jobs(app)

    void_invoice(invoice, actor=user, reason="Feil")
    db.session.commit()
    with pytest.raises(DomainError, match="under annullering hos Stripe, så den kan ikke krediteres"):
        issue_credit_note(invoice, 10_000, actor=user, reason="Rabatt")
    db.session.rollback()
    run_jobs(app)
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID


def test_the_sweeper_enqueues_lost_void_and_credit_note_jobs(app, stripe_server):
    from datetime import timedelta

    from crm.billing.jobs import requeue_lost_jobs
    from crm.models import utcnow

    invoice, user = _open_invoice()
    other, _ = _open_invoice()
    note = issue_credit_note(other, 10_000, actor=user, reason="Rabatt")
    void_invoice(invoice, actor=user, reason="Feil")
    db.session.commit()
    later = utcnow() + timedelta(hours=1)
    assert requeue_lost_jobs(now=later)["voids"] == [], "queued: not lost"
    get_queue("billing").empty()  # Redis lost the jobs

    assert requeue_lost_jobs()["credit_notes"] == [], "within its grace time"
    found = requeue_lost_jobs(now=later)
    assert (found["voids"], found["credit_notes"]) == ([invoice.id], [note.id])
    run_jobs(app)
    db.session.refresh(invoice)
    db.session.refresh(note)
    assert invoice.status is InvoiceStatus.VOID and note.status is CreditNoteStatus.ISSUED
    assert promote_scheduled_jobs() == 0


# --- invoices that Stripe never had (the offline demo's) -------------------------------------------------------


def _demo_invoices() -> dict[InvoiceStatus, Invoice]:
    """The offline demo's invoices (made here, no Stripe id) of three memberships: paid, open and overdue-open."""
    from crm.billing.demo import load_billing_demo

    for _ in range(3):
        make_billable()
    load_billing_demo()
    db.session.commit()
    invoices = db.session.scalars(select(Invoice).order_by(Invoice.id)).all()
    assert [i.status for i in invoices] == [InvoiceStatus.PAID, InvoiceStatus.OPEN, InvoiceStatus.OPEN]
    assert not any(i.stripe_invoice_id for i in invoices)
    return {InvoiceStatus.PAID: invoices[0], InvoiceStatus.OPEN: invoices[1]}


def test_an_invoice_stripe_never_had_is_voided_and_credited_here_without_a_stripe_call(app, client, stripe_server):
    demo = _demo_invoices()
    user = make_staff(Role.FINANCE, full_name="Fia Finans")
    db.session.commit()
    login(client, user)
    open_invoice, paid_invoice = demo[InvoiceStatus.OPEN], demo[InvoiceStatus.PAID]
    page = _page(client, open_invoice)
    assert 'id="never-at-stripe"' in page and f'action="/staff/billing/invoices/{open_invoice.id}/void"' in page

    voided = client.post(
        f"/staff/billing/invoices/{open_invoice.id}/void",
        data={"reason": "Feil kategori", "csrf_token": csrf_token(client)},
        follow_redirects=True,
    )
    credited = client.post(
        f"/staff/billing/invoices/{paid_invoice.id}/credit",
        data={"amount": "100", "reason": "Rabatt", "csrf_token": csrf_token(client)},
        follow_redirects=True,
    )

    assert stripe_server.total_requests() == 0
    assert get_queue("billing").count == 0, "no job: nothing is left for Stripe"
    assert "Fakturaen er annullert, uten Stripe: Stripe har aldri hatt den." in voided.text
    assert "Kreditnotaen er utstedt, uten Stripe: Stripe har aldri hatt fakturaen." in credited.text
    db.session.refresh(open_invoice)
    db.session.refresh(paid_invoice)
    assert open_invoice.status is InvoiceStatus.VOID and open_invoice.voided_at is not None
    assert not open_invoice.void_pending
    [void_entry] = _audit("billing.invoice.voided")
    assert (void_entry.actor_id, void_entry.target_id) == (user.id, str(open_invoice.id))
    assert void_entry.details == {"number": open_invoice.number, "reason": "Feil kategori", "without_stripe": True}
    [note] = paid_invoice.credit_notes
    assert (note.status, note.amount_ore, note.number) == (
        CreditNoteStatus.ISSUED,
        10_000,
        f"{paid_invoice.number}-CN1",
    )
    assert paid_invoice.credited_ore == 10_000 and paid_invoice.status is InvoiceStatus.PAID
    [credit_entry] = _audit("billing.invoice.credited")
    assert credit_entry.actor_id == user.id and credit_entry.details["without_stripe"] is True
    assert "Annullert" in _page(client, open_invoice)
    assert 'id="invoice-progress"' not in _page(client, paid_invoice)
    # The sweeper finds nothing to send on either.
    from datetime import timedelta

    from crm.billing.jobs import requeue_lost_jobs
    from crm.models import utcnow

    assert not any(requeue_lost_jobs(now=utcnow() + timedelta(hours=1)).values())


def test_a_credit_note_that_leaves_nothing_to_pay_settles_an_invoice_stripe_never_had(app, stripe_server):
    invoice = _demo_invoices()[InvoiceStatus.OPEN]
    user = make_staff(Role.FINANCE)
    half = invoice.gross_ore // 2
    issue_credit_note(invoice, half, actor=user, reason="Rabatt")
    assert invoice.status is InvoiceStatus.OPEN and invoice.outstanding_ore == invoice.gross_ore - half
    second = issue_credit_note(invoice, invoice.gross_ore - half, actor=user, reason="Feil faktura")
    db.session.commit()
    assert second.number == f"{invoice.number}-CN2"
    assert invoice.status is InvoiceStatus.PAID and invoice.paid_at is not None and invoice.paid_ore == 0
    with pytest.raises(DomainError, match="høyst det som gjenstår"):
        issue_credit_note(invoice, 1, actor=user, reason="Mer")
    db.session.rollback()
    assert stripe_server.total_requests() == 0


def test_an_invoice_at_stripe_is_still_voided_and_credited_through_stripe(app, stripe_server):
    invoice, user = _open_invoice()
    note = issue_credit_note(invoice, 10_000, actor=user, reason="Rabatt")
    db.session.commit()
    assert note.status is CreditNoteStatus.PENDING and get_queue("billing").count == 1
    run_jobs(app)
    db.session.refresh(note)
    assert note.status is CreditNoteStatus.ISSUED and note.stripe_credit_note_id
    void_invoice(invoice, actor=user, reason="Feil")
    db.session.commit()
    assert invoice.void_pending and invoice.status is InvoiceStatus.OPEN, "left to the job"
    calls = stripe_server.total_requests()
    run_jobs(app)
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID and stripe_server.total_requests() > calls
    assert stripe_server.invoice(invoice.stripe_invoice_id)["status"] == "void"
    assert "without_stripe" not in _audit("billing.invoice.voided")[0].details


# --- uncollectible invoices -----------------------------------------------------------------------------------


def test_an_uncollectible_invoice_can_be_voided_at_stripe(app, client, stripe_server):
    from crm.billing.services import apply_stripe_invoice
    from crm.billing.stripe_gateway import get_gateway

    invoice, user = _open_invoice()
    data = get_gateway().mark_uncollectible(invoice.stripe_invoice_id, f"{invoice.idempotency_base}:uncollectible")
    apply_stripe_invoice(invoice, data)
    db.session.commit()
    assert invoice.status is InvoiceStatus.UNCOLLECTIBLE
    login(client, user)
    page = _page(client, invoice)
    assert f'action="/staff/billing/invoices/{invoice.id}/void"' in page
    assert f'action="/staff/billing/invoices/{invoice.id}/credit"' not in page, "Stripe credits only open or paid"

    response = client.post(
        f"/staff/billing/invoices/{invoice.id}/void",
        data={"reason": "Konkurs", "csrf_token": csrf_token(client)},
        follow_redirects=True,
    )
    assert "Fakturaen annulleres nå hos Stripe." in response.text
    run_jobs(app)

    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID and not invoice.void_pending and invoice.void_error is None
    assert stripe_server.invoice(invoice.stripe_invoice_id)["status"] == "void"
    [entry] = _audit("billing.invoice.voided")
    assert entry.details == {"number": invoice.number, "reason": "Konkurs"}


def test_a_paid_or_void_invoice_cannot_be_voided(app, stripe_server):
    invoice, user = _open_invoice()
    stripe_server.pay(invoice.stripe_invoice_id)
    from crm.billing.reconcile import reconcile as fix

    fix(YEAR, fix=True)
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.PAID
    with pytest.raises(DomainError, match="Bare en åpen eller ikke innkrevbar faktura kan annulleres"):
        void_invoice(invoice, actor=user, reason="Feil")
    db.session.rollback()
