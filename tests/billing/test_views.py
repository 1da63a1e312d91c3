"""Billing screens: access, the invoice list, the run pages, the portal and staff corrections."""

from __future__ import annotations

import re

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


STAFF_PAGES = [
    "/staff/billing/invoices",
    "/staff/billing/runs",
    "/staff/billing/runs/new",
    "/staff/billing/runs/confirm?year=2026",
    "/staff/billing/export.csv",
    "/staff/billing/export.xlsx",
]


def _confirmed_form(client, confirm_page: str) -> dict:
    """The hidden fields of the confirmation page's start form, as the browser posts them."""
    form = confirm_page.split('action="/staff/billing/runs"', 1)[1].split("</form>", 1)[0]
    values = dict(re.findall(r'name="(year|count|total_ore)" value="([^"]*)"', form))
    return {**values, "csrf_token": csrf_token(client)}


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
    make_billable()  # someone to invoice, so the run confirmation has something to confirm
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

    assert 'action="/staff/billing/runs/confirm"' in preview  # the preview's button asks first
    confirm = client.get(f"/staff/billing/runs/confirm?year={YEAR}").text
    assert "1 faktura for 2026 blir sendt" in confirm
    response = client.post("/staff/billing/runs", data=_confirmed_form(client, confirm))
    assert response.status_code == 302
    run = db.session.scalar(select(BillingRun))
    progress = client.get(f"/staff/billing/runs/{run.id}/progress").text
    assert 'hx-trigger="every 2s"' in progress  # still polling while jobs are queued
    run_jobs(app)
    progress = client.get(f"/staff/billing/runs/{run.id}/progress").text
    assert 'data-count="done">1<' in progress
    assert "hx-trigger" not in progress


def test_a_run_is_confirmed_with_the_count_and_total_it_will_bill(app, client, monkeypatch):
    from crm.billing.services import preview_billing_run, summarise_preview

    monkeypatch.setitem(app.config, "BILLING_FEE_VAT", "vat_25")
    organisations = [make_billable(turnover=turnover) for turnover in (40_000_000, 400_000_000)]
    make_billable(invoice_email=None)  # cannot be invoiced: not counted
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    rows = [row for row in preview_billing_run(YEAR) if row.reason is None]
    net = sum(row.fee.amount_ore for row in rows)
    assert len(rows) == 2 == summarise_preview(preview_billing_run(YEAR)).count

    confirm = client.get(f"/staff/billing/runs/confirm?year={YEAR}").text
    assert f"2 fakturaer for {YEAR} blir sendt, til sammen {money(net * 5 // 4)}." in confirm  # VAT included
    assert f"Av dette er MVA {money(net // 4)}." in confirm
    assert "Send 2 fakturaer" in confirm
    assert db.session.scalar(select(BillingRun.id)) is None  # asking starts nothing

    response = client.post("/staff/billing/runs", data=_confirmed_form(client, confirm))
    run = db.session.scalar(select(BillingRun))
    assert response.headers["Location"].endswith(f"/staff/billing/runs/{run.id}")
    assert {item.membership_id for item in run.items if item.error is None} == {o.membership.id for o in organisations}


def test_a_run_that_changed_since_it_was_confirmed_or_was_never_confirmed_is_refused(app, client):
    make_billable()
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    confirm = client.get(f"/staff/billing/runs/confirm?year={YEAR}").text
    confirmed = _confirmed_form(client, confirm)
    make_billable()  # a new member meanwhile: the run would now send two invoices
    db.session.commit()

    page = client.post("/staff/billing/runs", data=confirmed, follow_redirects=True).text
    assert "Faktureringen er endret siden du bekreftet den: den ville nå sende 2 fakturaer" in page
    unconfirmed = {"year": YEAR, "csrf_token": csrf_token(client)}
    page = client.post("/staff/billing/runs", data=unconfirmed, follow_redirects=True).text
    assert "Bekreft antall fakturaer og totalbeløpet først." in page
    assert db.session.scalar(select(BillingRun.id)) is None


def test_the_confirmation_of_a_run_with_nobody_to_invoice_goes_back_to_the_preview(app, client):
    make_billable(invoice_email=None)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    response = client.get(f"/staff/billing/runs/confirm?year={YEAR}")
    assert response.headers["Location"].endswith(f"/staff/billing/runs/new?year={YEAR}")
    assert client.get("/staff/billing/runs/confirm?year=99999").headers["Location"].endswith("/runs/new")


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


def test_an_invoice_not_at_stripe_offers_void_and_credit_done_here(app, client):
    from crm.billing.services import get_or_create_invoice

    invoice, _ = get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)
    invoice.status = InvoiceStatus.OPEN  # as the offline demo's invoices
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert f"/invoices/{invoice.id}/void" in page and f"/invoices/{invoice.id}/credit" in page
    assert "Stripe har aldri hatt denne fakturaen" in page and "i Stripe? Dette kan ikke angres" not in page


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


def _listed(page: str) -> list[str]:
    """The invoice numbers of the invoice list's rows, in order."""
    if "<tbody>" not in page:
        return []  # "No invoices match."
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'/staff/billing/invoices/\d+">([^<]+)</a>', body)


def _named_invoices(*specs):
    from crm.billing.services import get_or_create_invoice

    invoices = []
    for number, name, orgnr, gross in specs:
        invoice = get_or_create_invoice(make_billable(name=name, orgnr=orgnr).membership, YEAR, InvoiceKind.MEMBERSHIP)[
            0
        ]
        invoice.number, invoice.gross_ore = number, gross
        invoices.append(invoice)
    return invoices


def test_the_invoice_list_is_searched_by_customer_orgnr_and_invoice_number(app, client):
    _named_invoices(
        ("EHN-0001", "Fjordmat AS", "974760673", 10_000_00),
        ("EHN-0002", "Bergen kommune", "988077917", 50_000_00),
        ("EHN-0003", "Nordlys 100% AS", "923609016", 20_000_00),
    )
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)

    def search(q: str) -> list[str]:
        return _listed(client.get("/staff/billing/invoices", query_string={"q": q}).text)

    assert search("fjord") == ["EHN-0001"]  # customer, any case
    assert search("BERGEN  Kommune") == ["EHN-0002"]  # repeated spaces are one
    assert search("974 760 673") == ["EHN-0001"]  # orgnr as printed
    assert search("988077917") == ["EHN-0002"] == search("98807")  # or its first digits
    assert search("ehn-0003") == ["EHN-0003"]  # invoice number
    assert search("100%") == ["EHN-0003"] and search("%") == ["EHN-0003"]  # % is a character, not a wildcard
    assert search("x" * 5000) == []  # long input is cut, not an error
    assert sorted(search("")) == ["EHN-0001", "EHN-0002", "EHN-0003"]
    page = client.get("/staff/billing/invoices?q=fjord").text
    assert 'name="q" value="fjord"' in page
    assert "/staff/billing/export.csv?q=fjord" in page  # the export follows the search
    export = client.get("/staff/billing/export.csv?q=fjord").data.decode("utf-8-sig")
    assert "EHN-0001" in export and "EHN-0002" not in export


def test_the_invoice_list_sorts_by_its_columns_and_keeps_the_order_across_pages(app, client):
    _named_invoices(
        ("EHN-0002", "Bergen kommune", "988077917", 50_000_00),
        ("EHN-0001", "Fjordmat AS", "974760673", 10_000_00),
        ("EHN-0003", "Aurora AS", "923609016", 20_000_00),
    )
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)

    def listed(sort: str, **args) -> list[str]:
        return _listed(client.get("/staff/billing/invoices", query_string={"sort": sort, **args}).text)

    assert listed("number") == ["EHN-0001", "EHN-0002", "EHN-0003"]
    assert listed("-number") == ["EHN-0003", "EHN-0002", "EHN-0001"]
    assert listed("customer") == ["EHN-0003", "EHN-0002", "EHN-0001"]  # Aurora, Bergen, Fjordmat
    assert listed("-gross") == ["EHN-0002", "EHN-0003", "EHN-0001"]
    assert listed("gross") == ["EHN-0001", "EHN-0003", "EHN-0002"]
    assert sorted(listed("id; drop table invoices")) == ["EHN-0001", "EHN-0002", "EHN-0003"]  # unknown: default

    page = client.get("/staff/billing/invoices?sort=gross").text
    assert '<th scope="col" class="text-end" aria-sort="ascending">' in page
    assert "/staff/billing/invoices?sort=-gross" in page  # the sorted column's heading reverses it
    assert "/staff/billing/invoices?sort=number" in page
    first = client.get("/staff/billing/invoices?sort=-gross&per_page=2").text
    assert _listed(first) == ["EHN-0002", "EHN-0003"]
    next_links = re.findall(r'href="([^"]*[?;]page=2[^"]*)"', first)
    assert next_links and all("sort=-gross" in link for link in next_links)
    next_link = next_links[0]
    assert _listed(client.get(next_link.replace("&amp;", "&")).text) == ["EHN-0001"]


@pytest.mark.parametrize("args", ["q=as&sort=customer", "q=974+760&sort=-due", "sort=status"])
def test_searching_and_sorting_the_invoice_list_runs_a_constant_number_of_queries(app, client, count_queries, args):
    from crm.billing.services import get_or_create_invoice

    for _ in range(2):
        get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    client.get(f"/staff/billing/invoices?{args}")
    with count_queries() as few:
        client.get(f"/staff/billing/invoices?{args}")
    for _ in range(6):
        get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    client.get(f"/staff/billing/invoices?{args}")
    with count_queries() as many:
        client.get(f"/staff/billing/invoices?{args}")
    assert many.count == few.count, "\n".join(many.statements)


def test_an_overdue_invoice_in_the_portal_says_so_and_links_to_paying_it(app, client, stripe_server):
    from datetime import timedelta

    from crm.billing.services import get_or_create_invoice
    from crm.members.services import today

    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = _member_of(organisation)
    db.session.commit()
    login(client, user)
    page = client.get("/portal/invoices/").text
    assert "Forfalt – betal nå" not in page  # not yet due: the plain pay link
    pay = f'<a class="btn btn-primary btn-sm" href="{invoice.hosted_invoice_url}" rel="noopener">Betal<span'
    assert pay in page

    invoice.due_on = today() - timedelta(days=12)
    db.session.commit()
    page = client.get("/portal/invoices/").text
    pay_now = (
        f'<a class="btn btn-danger btn-sm" href="{invoice.hosted_invoice_url}" rel="noopener">Forfalt – betal nå<span'
    )
    assert pay_now in page
    assert "12 dager over forfall" in page

    # Not at Stripe (the offline demo's): no link to give, so words instead.
    other = make_billable()
    offline, _ = get_or_create_invoice(other.membership, YEAR, InvoiceKind.MEMBERSHIP)
    offline.status, offline.number, offline.due_on = InvoiceStatus.OPEN, "DEMO-1", today() - timedelta(days=3)
    member = _member_of(other)
    db.session.commit()
    member_client = app.test_client()
    login(member_client, member)
    page = member_client.get("/portal/invoices/").text
    due = offline.due_on.strftime("%d.%m.%Y")
    assert f"Forfalt siden {due}: betal etter betalingsinformasjonen på fakturaen." in page
    assert "3 dager over forfall" in page


def test_the_invoice_history_names_every_stripe_event_in_words(app, client, stripe_server):
    """Stripe sends more invoice events than we act on (invoice.created, invoice.updated, and types it adds later):
    the history says each in words, never its code."""
    from crm.billing.models import StripeEvent

    staff = make_staff(Role.FINANCE)
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP, staff.id)
    for number, event_type in enumerate(("invoice.created", "invoice.updated", "invoice.some_future_event")):
        db.session.add(
            StripeEvent(stripe_event_id=f"evt_words_{number}", type=event_type, object_id=invoice.stripe_invoice_id,
                        payload={"type": event_type})
        )  # fmt: skip
    db.session.commit()
    login(client, staff)
    history = client.get(f"/staff/billing/invoices/{invoice.id}").text.split(">Historikk</h2>", 1)[1]
    assert "Opprettet hos Stripe" in history and history.count("Endret hos Stripe") == 2
    assert "invoice." not in history


def test_a_just_created_and_sent_invoice_has_a_history_from_its_creation(app, client, stripe_server):
    staff = make_staff(Role.FINANCE, full_name="Fia Finans")
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP, staff.id)
    db.session.commit()
    login(client, staff)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    history = page.split(">Historikk</h2>", 1)[1]
    assert "Ingen hendelser ennå" not in history
    assert history.index("Ferdigstilt hos Stripe") < history.index("Faktura opprettet · Fia Finans")  # newest first


def test_a_draft_invoice_not_at_stripe_is_sent_from_its_page(app, client, stripe_server):
    from crm.billing.services import get_or_create_invoice

    invoice, _ = get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)  # its job was lost
    staff = make_staff(Role.FINANCE, full_name="Fia Finans")
    db.session.commit()
    login(client, staff)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert "Utkast: ikke sendt til medlemmet" in page
    assert f'action="/staff/billing/invoices/{invoice.id}/send"' in page
    assert f'action="/staff/billing/invoices/{invoice.id}/void-draft"' in page
    assert "Faktura opprettet · automatisk" in page and "Ingen hendelser ennå" not in page

    response = client.post(f"/staff/billing/invoices/{invoice.id}/send", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    run_jobs(app)
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.OPEN and len(stripe_server.objects("invoice")) == 1
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert "Sendt videre til Stripe · Fia Finans" in page and "Ferdigstilt hos Stripe" in page
    assert "/send" not in page  # open now: nothing to send
    refused = client.post(
        f"/staff/billing/invoices/{invoice.id}/send", data={"csrf_token": csrf_token(client)}, follow_redirects=True
    )
    assert "Bare et fakturautkast kan sendes herfra." in refused.text
    assert client.post(f"/staff/billing/invoices/{invoice.id}/send").status_code == 400  # no CSRF token


def test_a_draft_invoice_not_at_stripe_is_voided_with_a_reason_and_never_sent(app, client, stripe_server):
    from crm.billing.jobs import send_invoice_to_stripe
    from crm.billing.services import get_or_create_invoice

    invoice, _ = get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)
    staff = make_staff(Role.FINANCE, full_name="Fia Finans")
    db.session.commit()
    login(client, staff)
    url = f"/staff/billing/invoices/{invoice.id}/void-draft"
    page = client.post(url, data={"reason": " ", "csrf_token": csrf_token(client)}, follow_redirects=True).text
    assert "Oppgi en begrunnelse." in page
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.DRAFT

    page = client.post(url, data={"reason": "Feil kategori", "csrf_token": csrf_token(client)}, follow_redirects=True)
    assert "Fakturautkastet er annullert." in page.text
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID and invoice.voided_at is not None
    assert "Fakturaen ble annullert · Fia Finans · Feil kategori" in page.text
    assert f"/staff/billing/invoices/{invoice.id}/reissue" in page.text  # the voided invoice's next step
    send_invoice_to_stripe(invoice.id)  # a job still queued for it
    assert stripe_server.objects("invoice") == []


def test_a_draft_already_at_stripe_is_only_sent_on_not_voided_here(app, client, stripe_server):
    from crm.billing.services import get_or_create_invoice, next_stripe_step

    invoice, _ = get_or_create_invoice(make_billable().membership, YEAR, InvoiceKind.MEMBERSHIP)
    next_stripe_step(invoice)  # created at Stripe, then the job died
    staff = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, staff)
    page = client.get(f"/staff/billing/invoices/{invoice.id}").text
    assert "opprettet i Stripe, men ikke ferdigstilt" in page
    assert "/void-draft" not in page and f"/invoices/{invoice.id}/send" in page
    url = f"/staff/billing/invoices/{invoice.id}/void-draft"
    page = client.post(url, data={"reason": "Feil", "csrf_token": csrf_token(client)}, follow_redirects=True).text
    assert "Utkastet er allerede opprettet i Stripe" in page
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.DRAFT
    client.post(f"/staff/billing/invoices/{invoice.id}/send", data={"csrf_token": csrf_token(client)})
    run_jobs(app)
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.OPEN and len(stripe_server.objects("invoice")) == 1  # resumed, once


def test_the_billing_preview_of_a_year_without_fees_offers_to_copy_last_years(app, client):
    from crm.members.models import FeeSchedule

    make_billable()  # with the fee schedules of YEAR
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    assert 'id="fee-rollover"' not in client.get(f"/staff/billing/runs/new?year={YEAR}").text

    preview = client.get(f"/staff/billing/runs/new?year={YEAR + 1}").text
    offer = preview.split('id="fee-rollover"', 1)[1].split("</section>", 1)[0]
    assert f"{YEAR + 1} har ingen kontingentsatser ennå" in offer
    assert f'action="/staff/members/fees/{YEAR}/copy"' in offer
    assert f'name="next" value="/staff/billing/runs/new?year={YEAR + 1}"' in offer
    assert "0 medlemskap blir fakturert" in preview

    data = {
        "csrf_token": csrf_token(client),
        "index_percent": "3,5",
        "next": f"/staff/billing/runs/new?year={YEAR + 1}",
    }
    page = client.post(f"/staff/members/fees/{YEAR}/copy", data=data, follow_redirects=True).text
    assert "kontingentsatser ble kopiert fra 2026 til 2027 med en indeks på 3,5 %" in page
    assert "1 medlemskap blir fakturert" in page and 'id="fee-rollover"' not in page  # back on the preview
    assert db.session.scalar(select(FeeSchedule.id).where(FeeSchedule.year == YEAR + 1).limit(1)) is not None

    bad = {**data, "index_percent": "tre"}
    page = client.post(f"/staff/members/fees/{YEAR + 1}/copy", data=bad, follow_redirects=True).text
    assert "Fakturering 2027" in page  # a refusal also returns to where the copy was asked
