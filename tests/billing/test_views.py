"""Billing screens: access, the invoice list, the run pages, the portal and staff corrections."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.billing.jobs import bill_membership
from crm.billing.models import BillingRun, InvoiceKind, InvoiceStatus
from crm.extensions import db
from crm.i18n import format_money as money
from crm.members.models import ContactRole
from tests.billing.conftest import YEAR, make_billable
from tests.conftest import run_jobs
from tests.factories import make_contact, make_staff, make_user
from tests.helpers import csrf_token, login


def _member_of(organisation):
    user = make_user()
    make_contact(organisation, roles=[ContactRole.MAIN_CONTACT], email=user.email, user_id=user.id)
    return user


STAFF_PAGES = ["/staff/billing/invoices", "/staff/billing/runs", "/staff/billing/runs/new", "/staff/billing/export.csv"]


@pytest.mark.parametrize("path", STAFF_PAGES)
@pytest.mark.parametrize("who", ["member", "adviser"])
def test_only_finance_and_admins_see_the_staff_billing_pages(app, client, path, who):
    organisation = make_billable()
    user = _member_of(organisation) if who == "member" else make_staff(Role.ADVISER)
    db.session.commit()
    login(client, user)
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_finance_sees_the_staff_billing_pages(app, client, path):
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    assert client.get(path).status_code == 200


def test_the_invoice_list_shows_totals_overdue_first_in_constant_queries(app, client, stripe_server, count_queries):
    invoices = [bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP) for _ in range(3)]
    invoices[2].due_on = invoices[2].due_on.replace(year=YEAR - 1)  # long overdue
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    client.get(f"/staff/billing/invoices?year={YEAR}")  # the first request after login loads the session
    with count_queries() as few:
        page = client.get(f"/staff/billing/invoices?year={YEAR}").text
    for _ in range(5):
        bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    client.get(f"/staff/billing/invoices?year={YEAR}")
    with count_queries() as many:
        client.get(f"/staff/billing/invoices?year={YEAR}")
    assert many.count == few.count, "\n".join(many.statements)
    assert page.index(invoices[2].number) < page.index(invoices[0].number)
    assert "Forfalt" in page
    assert "Brutto" in page


def test_a_finance_user_previews_starts_and_follows_a_run(app, client, stripe_server):
    make_billable()
    make_billable(invoice_email=None)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    preview = client.get(f"/staff/billing/runs/new?year={YEAR}").text
    assert "1 medlemskap blir fakturert" in preview
    assert "Ingen e-postadresse for faktura." in preview

    response = client.post("/staff/billing/runs", data={"year": YEAR, "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    run = db.session.scalar(select(BillingRun))
    progress = client.get(f"/staff/billing/runs/{run.id}/progress").text
    assert 'hx-trigger="every 2s"' in progress  # still polling while jobs are queued
    run_jobs(app)
    progress = client.get(f"/staff/billing/runs/{run.id}/progress").text
    assert 'data-count="done">1<' in progress
    assert "hx-trigger" not in progress


def test_staff_void_an_open_invoice_with_a_reason_and_it_is_audited(app, client, stripe_server):
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE, full_name="Fia Finans", email="fia@etiskhandel.example")
    db.session.commit()
    login(client, user)
    url = f"/staff/billing/invoices/{invoice.id}/void"
    response = client.post(url, data={"reason": "", "csrf_token": csrf_token(client)}, follow_redirects=True)
    assert '<div class="alert alert-danger">Oppgi en begrunnelse.</div>' in response.text  # a refusal, in red
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.OPEN
    client.post(url, data={"reason": "Feil kategori", "csrf_token": csrf_token(client)})
    run_jobs(app)  # the job voids it at Stripe
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID
    assert stripe_server.invoice(invoice.stripe_invoice_id)["status"] == "void"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "billing.invoice.voided"))
    assert entry.details["reason"] == "Feil kategori"
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert "Fakturaen ble annullert" in page and "Feil kategori" in page  # the history, in Norwegian
    assert "· Fia Finans ·" in page and "fia@etiskhandel.example" not in page  # who, by name


def test_staff_issue_a_credit_note(app, client, stripe_server):
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    client.post(
        f"/staff/billing/invoices/{invoice.id}/credit",
        data={"amount": "1 000,50", "reason": "Rabatt", "csrf_token": csrf_token(client)},  # as typed in Norway
    )
    run_jobs(app)  # the job issues it at Stripe
    db.session.refresh(invoice)
    assert invoice.credited_ore == 100_050
    assert [note.reason for note in invoice.credit_notes] == ["Rabatt"]
    assert stripe_server.objects("credit_note")[0]["amount"] == 100_050
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert "Kreditnota utstedt" in page and "Rabatt" in page


def test_members_see_only_their_own_organisations_invoices(app, client, stripe_server):
    mine = make_billable()
    theirs = make_billable()
    my_invoice = bill_membership(mine.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    their_invoice = bill_membership(theirs.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = _member_of(mine)
    db.session.commit()
    login(client, user)
    page = client.get("/portal/invoices/").text
    assert my_invoice.number in page
    pay = f'<a class="btn btn-primary btn-sm" href="{my_invoice.hosted_invoice_url}" rel="noopener">Betal'
    assert pay in page  # open: pay online (a button, named with the invoice number for screen readers)
    assert f'<a href="{my_invoice.invoice_pdf}" rel="noopener">Last ned PDF</a>' in page
    assert their_invoice.number not in page
    assert client.get(f"/staff/billing/invoices/{their_invoice.id}").status_code == 403


def test_the_organisation_page_has_an_invoices_tab(app, client, stripe_server):
    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/members/{organisation.id}?tab=invoices").text
    assert invoice.number in page


def test_the_invoice_list_filters_by_status_and_category(app, client, stripe_server):
    from crm.members.models import OrganisationKind

    company = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    municipality = bill_membership(
        make_billable(kind=OrganisationKind.MUNICIPALITY, inhabitants=30_000).membership.id,
        YEAR,
        InvoiceKind.MEMBERSHIP,
    )
    company.due_on = company.due_on.replace(year=YEAR - 1)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    overdue = client.get("/staff/billing/invoices?status=overdue").text
    assert company.number in overdue and municipality.number not in overdue
    assert '<option value="overdue" selected>Forfalt</option>' in overdue
    by_category = client.get(f"/staff/billing/invoices?category={municipality.membership.category_id}").text
    assert municipality.number in by_category and company.number not in by_category
    assert f'<option value="{municipality.membership.category_id}" selected>' in by_category


@pytest.mark.parametrize("path", ["/staff/billing/invoices", "/staff/billing/runs/new", "/staff/billing/runs"])
def test_the_invoices_entry_of_the_navigation_is_marked_on_every_billing_page(app, client, path):
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    assert client.get("/staff/billing/").headers["Location"].endswith("/staff/billing/invoices")
    page = client.get(path).text
    assert 'aria-current="page" href="/staff/billing/">Fakturaer</a>' in page


def test_failed_run_items_are_retried_from_the_live_progress_fragment(app, client, stripe_server, monkeypatch):
    from crm.billing.models import RunItemStatus
    from crm.billing.services import run_progress, start_billing_run
    from tests.conftest import run_jobs

    make_billable()
    user = make_staff(Role.FINANCE)
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_wrong")  # Stripe answers 401: a hard failure
    run = start_billing_run(YEAR, actor=user)
    db.session.commit()
    run_jobs(app)
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_crm")
    login(client, user)

    fragment = client.get(f"/staff/billing/runs/{run.id}/progress").text  # what htmx swaps in
    assert "Prøv de mislykkede på nytt" in fragment
    response = client.post(f"/staff/billing/runs/{run.id}/retry", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    run_jobs(app)
    assert run_progress(run)[RunItemStatus.DONE] == 1
    assert "Prøv de mislykkede på nytt" not in client.get(f"/staff/billing/runs/{run.id}").text


def test_the_invoice_list_filters_by_year_and_totals_every_match(app, client):
    from crm.billing.services import get_or_create_invoice

    this_year, other_year, also_this_year = (
        get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)[0] for _ in range(3)
    )
    for invoice, net in ((this_year, 100_000_00), (other_year, 5_000_00), (also_this_year, 37_800_00)):
        invoice.net_ore, invoice.vat_ore, invoice.gross_ore = net, net // 4, net + net // 4
        invoice.number = f"T-{invoice.id}"
    other_year.year = YEAR - 1
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/billing/invoices?year={YEAR}").text
    assert this_year.number in page and also_this_year.number in page and other_year.number not in page
    nbsp = "\u00a0"
    assert f"137{nbsp}800{nbsp}kr" in page  # net
    assert f"34{nbsp}450{nbsp}kr" in page  # VAT
    assert f"172{nbsp}250{nbsp}kr" in page  # gross


def test_the_invoice_list_totals_leave_out_void_invoices(app, client):
    from crm.billing.services import get_or_create_invoice

    kept, voided = (
        get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)[0] for _ in range(2)
    )
    for invoice, net in ((kept, 10_000_00), (voided, 99_000_00)):
        invoice.net_ore = invoice.gross_ore = net
        invoice.number = f"T-{invoice.id}"
    voided.status = InvoiceStatus.VOID
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    nbsp = "\u00a0"
    page = client.get(f"/staff/billing/invoices?year={YEAR}").text
    assert voided.number in page  # listed, but a void invoice is worth nothing to the accounts
    assert f"10{nbsp}000{nbsp}kr</dd>" in page and f"109{nbsp}000{nbsp}kr" not in page
    only_void = client.get(f"/staff/billing/invoices?year={YEAR}&status=void").text
    assert f"99{nbsp}000{nbsp}kr</dd>" in only_void  # asked for: then they are what is summed


def test_the_invoice_page_tells_finance_what_is_left_how_late_and_who_was_reminded(app, client, stripe_server):
    from datetime import timedelta

    from crm.billing.services import issue_credit_note, send_due_reminders
    from crm.members.services import today

    organisation = make_billable(orgnr="974760673")
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE)
    issue_credit_note(invoice, 100_050, actor=user, reason="Rabatt")
    invoice.due_on = today() - timedelta(days=9)  # nine days past due
    send_due_reminders()
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    nbsp = "\u00a0"
    left = invoice.gross_ore - 100_050
    assert "974 760 673" in page
    assert f'<dt class="col-sm-3">Gjenstår å betale</dt><dd class="col-sm-9">{left // 100:,}'.replace(",", nbsp) in page
    assert "9 dager over forfall" in page
    assert "Påminnelse sendt" in page


def test_a_paid_invoice_says_how_much_was_paid_and_how_a_credit_is_settled(app, client, stripe_server):
    from crm.billing.reconcile import reconcile

    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    stripe_server.pay(invoice.stripe_invoice_id)
    reconcile(YEAR, fix=True)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    nbsp = "\u00a0"
    assert f"{invoice.gross_ore // 100:,}".replace(",", nbsp) + f"{nbsp}kr den " in page
    assert 'id="credit-paid-note"' in page and "bankoverføring" in page


def test_an_invoice_not_at_stripe_offers_no_void_or_credit(app, client):
    from crm.billing.services import get_or_create_invoice

    invoice, _ = get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)
    invoice.status = InvoiceStatus.OPEN  # as the offline demo's invoices
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert "/void" not in page and "/credit" not in page
    assert "ikke i Stripe" in page


def test_members_see_what_was_credited_and_what_is_left_to_pay(app, client, stripe_server):
    from crm.billing.services import issue_credit_note

    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    issue_credit_note(invoice, 100_050, actor=make_staff(Role.FINANCE), reason="Rabatt")
    user = _member_of(organisation)
    db.session.commit()
    login(client, user)
    page = client.get("/portal/invoices/").text
    nbsp = "\u00a0"
    left = invoice.gross_ore - 100_050
    assert f"Kreditert 1{nbsp}000,50{nbsp}kr" in page
    assert f"Å betale {left // 100:,}".replace(",", nbsp) + f",{left % 100:02d}{nbsp}kr" in page
    assert '<div class="table-responsive">' in page  # a phone scrolls the table, not the page


def test_the_invoice_lines_show_on_the_staff_page_and_in_the_portal(app, client, stripe_server, monkeypatch):
    from datetime import date

    monkeypatch.setitem(app.config, "BILLING_FEE_VAT", "vat_25")
    parent = make_billable()
    organisation = make_billable(parent_id=parent.id)
    organisation.membership.start_on = date(YEAR, 7, 1)
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.PRO_RATA)
    annual, pro_rata, discount = invoice.lines
    staff = make_staff(Role.FINANCE)
    member = _member_of(organisation)
    db.session.commit()

    login(client, staff)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    table = page.split('id="invoice-lines"', 1)[1].split("</table>", 1)[0]
    for line in (annual, pro_rata, discount):
        row = f"<td>{line.description}</td><td>MVA 25 %</td>"
        row += f'<td class="text-end">{money(line.amount_ore)}</td><td class="text-end">{money(line.vat_ore)}</td>'
        assert row in table
    totals = f'<td class="text-end">{money(invoice.net_ore)}</td><td class="text-end">{money(invoice.vat_ore)}</td>'
    assert totals in table

    member_client = app.test_client()
    login(member_client, member)
    page = member_client.get("/portal/invoices/").text
    for line in (annual, pro_rata, discount):
        assert f"<li>{line.description}: {money(line.amount_ore)}</li>" in page
    assert f"<li>MVA: {money(invoice.vat_ore)}</li>" in page
    assert "Konsernrabatt 20 %: −" in page


def test_the_run_page_says_when_stripe_cannot_be_reached_and_when_it_tries_again(app, client, stripe_server):
    from crm.billing.models import BillingRunItem, RunItemStatus
    from crm.billing.services import start_billing_run
    from crm.i18n import format_time_no
    from tests.conftest import promote_scheduled_jobs

    make_billable()
    user = make_staff(Role.FINANCE)
    run = start_billing_run(YEAR, actor=user)
    db.session.commit()
    stripe_server.refuse_connections()
    run_jobs(app)  # the job gives up for now; RQ schedules its retry
    item = db.session.scalar(select(BillingRunItem))
    db.session.refresh(item)
    assert item.status is RunItemStatus.QUEUED
    assert item.retry_at is not None
    login(client, user)

    fragment = client.get(f"/staff/billing/runs/{run.id}/progress").text
    assert f"Stripe kan ikke nås; nytt forsøk kl. {format_time_no(item.retry_at)}." in fragment
    assert 'hx-trigger="every 2s"' in fragment  # and the page keeps following the run

    stripe_server.up()
    promote_scheduled_jobs()
    run_jobs(app)
    page = client.get(f"/staff/billing/runs/{run.id}").text
    assert 'data-count="done">1<' in page
    assert "Stripe kan ikke nås" not in page


@pytest.mark.parametrize(
    ("key", "api_base", "marked"),
    [
        ("sk_test_abc", "https://api.stripe.com", True),  # a Stripe test account
        ("sk_live_abc", "http://127.0.0.1:4242", True),  # make run's local server
        ("sk_live_abc", "https://api.stripe.com", False),
    ],
)
def test_staff_pages_and_the_portal_invoices_are_marked_while_stripe_is_in_test_mode(
    app, client, monkeypatch, key, api_base, marked
):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", key)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", api_base)
    organisation = make_billable()
    member = _member_of(organisation)
    staff = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, staff)
    assert ("Stripe-testmodus" in client.get("/staff/billing/runs").text) is marked
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, member)
    assert ("Stripe-testmodus" in client.get("/portal/invoices/").text) is marked
