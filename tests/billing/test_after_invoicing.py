"""Reminders, reconciliation and the accounting export."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select

from crm.billing.jobs import bill_membership
from crm.billing.models import InvoiceKind, InvoiceStatus
from crm.billing.reconcile import reconcile
from crm.billing.services import overdue_invoices, send_due_reminders
from crm.extensions import db
from crm.mail.models import OutboxMessage
from crm.members.models import MembershipStatus
from tests.billing.conftest import YEAR, make_billable


def _reminders() -> list[str]:
    return list(db.session.scalars(select(OutboxMessage.subject).where(OutboxMessage.template == "billing_reminder")))


def test_reminders_go_at_7_and_21_days_overdue_once_each(app, stripe_server):
    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    due = invoice.due_on

    assert send_due_reminders(due + timedelta(days=6)) == {"7": 0, "21": 0}
    assert send_due_reminders(due + timedelta(days=7)) == {"7": 1, "21": 0}
    assert send_due_reminders(due + timedelta(days=8)) == {"7": 0, "21": 0}
    assert send_due_reminders(due + timedelta(days=21)) == {"7": 0, "21": 1}
    assert send_due_reminders(due + timedelta(days=40)) == {"7": 0, "21": 0}

    subjects = _reminders()
    assert len(subjects) == 2
    assert subjects[0].startswith("Påminnelse: faktura")
    assert subjects[1].startswith("Andre purring: faktura")
    assert organisation.membership.status is MembershipStatus.ACTIVE
    assert overdue_invoices(due + timedelta(days=1)) == [invoice]


def test_a_paid_invoice_gets_no_reminder(app, stripe_server):
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    invoice.status = InvoiceStatus.PAID
    assert send_due_reminders(invoice.due_on + timedelta(days=30)) == {"7": 0, "21": 0}


def test_reconcile_reports_differences_and_fix_applies_stripes_state(app, stripe_server):
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    stripe_server.pay(invoice.stripe_invoice_id)  # the webhook never arrived

    differences = reconcile(YEAR)
    assert any("status local open, Stripe paid" in line for line in differences)
    assert invoice.status is InvoiceStatus.OPEN

    reconcile(YEAR, fix=True)
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.paid_ore == invoice.gross_ore
    assert reconcile(YEAR, fix=True) == []
    receipts = db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.template == "billing_receipt")
    )
    assert receipts == 1


def test_the_reconcile_command(app, stripe_server):
    bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    result = CliRunner().invoke(app.cli, ["crm", "billing", "reconcile", "--year", str(YEAR)], obj=None)
    assert result.exit_code == 0, result.output
    assert "0 differences" in result.output


def _export_csv(client, query: str = "") -> list[dict[str, str]]:
    """The CSV export's rows by heading, read as Excel with Norwegian settings reads it."""
    response = client.get(f"/staff/billing/export.csv{query}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig")), delimiter=";"))


def _login_finance(client):
    from crm.auth.models import Role
    from tests.factories import make_staff
    from tests.helpers import login

    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)


def test_the_export_lists_invoices_with_norwegian_headings_amounts_and_the_ehf_flag(
    app, client, stripe_server, monkeypatch
):
    monkeypatch.setitem(app.config, "BILLING_FEE_VAT", "vat_25")
    company = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    public = bill_membership(
        make_billable(ehf_receiver=True, name="=Kommune").membership.id, YEAR, InvoiceKind.MEMBERSHIP
    )
    _login_finance(client)

    response = client.get(f"/staff/billing/export.csv?year={YEAR}")
    assert response.headers["Content-Disposition"] == f'attachment; filename="fakturaer-{YEAR}.csv"'
    assert response.data.decode("utf-8-sig").startswith("Fakturanummer;Fakturadato;Forfallsdato;Organisasjonsnummer")
    by_number = {row["Fakturanummer"]: row for row in _export_csv(client, f"?year={YEAR}")}
    row = by_number[company.number]
    assert row["Netto (NOK)"] == f"{company.net_ore // 100},00"  # a decimal comma
    assert row["MVA (NOK)"] == f"{company.vat_ore // 100},{company.vat_ore % 100:02d}"
    assert row["Fakturadato"] == company.issued_on.strftime("%d.%m.%Y")
    assert row["Status"] == "Åpen" and row["Type"] == "Årskontingent"
    assert row["Stripe-faktura"] == company.stripe_invoice_id
    assert row["EHF"] == "Nei"
    assert by_number[public.number]["EHF"] == "Ja"
    assert by_number[public.number]["Peppol-ID"] == f"0192:{public.orgnr}"
    assert by_number[public.number]["Kunde"] == "'=Kommune"  # no formula in a spreadsheet

    response = client.get(f"/staff/billing/export.xlsx?year={YEAR}")
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert sheet.title == "Fakturaer"
    headings = [cell.value for cell in sheet[1]]
    assert headings[:3] == ["Fakturanummer", "Fakturadato", "Forfallsdato"]
    cells = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    gross = cells[company.number][headings.index("Brutto (NOK)")]
    assert gross.value == company.gross_ore / 100 and gross.number_format == "#,##0.00"  # a number, not text
    assert cells[company.number][headings.index("Fakturadato")].value.date() == company.issued_on
    assert cells[public.number][headings.index("Kunde")].value == "'=Kommune"
    assert client.get("/staff/billing/export.pdf").status_code == 404


def test_the_export_covers_a_period_by_invoice_date(app, client, stripe_server):
    from crm.auth.models import Role
    from tests.factories import make_staff
    from tests.helpers import login

    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)
    day = invoice.issued_on
    inside = client.get(f"/staff/billing/export.csv?from={day}&to={day}").text
    before = client.get(f"/staff/billing/export.csv?to={day - timedelta(days=1)}").text
    assert invoice.number in inside
    assert invoice.number not in before
    assert before.startswith("\ufeffFakturanummer;Fakturadato")


def test_reconcile_reports_a_stripe_invoice_with_no_local_row(app, stripe_server):
    from crm.billing.services import get_or_create_invoice, next_stripe_step

    organisation = make_billable()
    invoice, _created = get_or_create_invoice(organisation.membership, YEAR, InvoiceKind.MEMBERSHIP)
    db.session.commit()
    next_stripe_step(invoice)  # created at Stripe; the local link is lost
    db.session.rollback()
    invoice.stripe_invoice_id = None
    remote_id = stripe_server.objects("invoice")[0]["id"]
    assert any(remote_id in line and "no local invoice" in line for line in reconcile(YEAR))


def test_reconcile_fix_applies_stripes_amounts_both_ways(app, stripe_server):
    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    remote = stripe_server.invoice(invoice.stripe_invoice_id)
    with stripe_server.lock:  # someone edited the invoice at Stripe: a lower total, and a part payment
        remote.update(total=100_000, total_taxes=[{"amount": 20_000}], amount_paid=30_000)
    invoice.credited_ore = 5_000  # and a local credit that Stripe never got

    differences = reconcile(YEAR)
    assert any(f"total local {invoice.gross_ore}, Stripe 100000" in line for line in differences)
    assert any("paid local 0, Stripe 30000" in line for line in differences)
    assert any("credited local 5000, Stripe 0" in line for line in differences)

    reconcile(YEAR, fix=True)
    assert (invoice.gross_ore, invoice.vat_ore, invoice.net_ore) == (100_000, 20_000, 80_000)
    assert (invoice.paid_ore, invoice.credited_ore) == (30_000, 0)
    assert reconcile(YEAR, fix=True) == []

    invoice.paid_ore = 90_000  # a local figure above Stripe's is lowered too
    reconcile(YEAR, fix=True)
    assert invoice.paid_ore == 30_000


# --- credit notes: Stripe's rules for money already paid and for a credit that settles the invoice --------------


def _finance_user():
    from crm.auth.models import Role
    from tests.factories import make_staff

    return make_staff(Role.FINANCE)


def test_a_paid_invoice_is_credited_as_settled_outside_stripe(app, stripe_server):
    from crm.billing.services import issue_credit_note
    from tests.conftest import run_jobs

    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    stripe_server.pay(invoice.stripe_invoice_id)
    reconcile(YEAR, fix=True)
    assert invoice.status is InvoiceStatus.PAID

    # Stripe refuses a post-payment credit note unless refund + balance credit + outside-Stripe add up to it.
    note = issue_credit_note(invoice, 50_000, actor=_finance_user(), reason="Feil omsetningstrinn")
    db.session.commit()
    run_jobs(app)  # the job issues it at Stripe
    db.session.refresh(note)

    [remote] = stripe_server.objects("credit_note")
    assert remote["amount"] == remote["out_of_band_amount"] == 50_000
    assert note.stripe_credit_note_id == remote["id"]
    assert invoice.credited_ore == 50_000
    assert reconcile(YEAR) == []


def test_a_credit_that_settles_an_open_invoice_sends_no_payment_receipt(app, client, stripe_server):
    from crm.billing.services import issue_credit_note
    from tests.billing.conftest import deliver
    from tests.conftest import run_jobs

    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    issue_credit_note(invoice, invoice.gross_ore, actor=_finance_user(), reason="Meldte seg ut før fakturaen")
    db.session.commit()
    run_jobs(app)  # the job issues it at Stripe
    [settled] = stripe_server.events("invoice.paid")  # Stripe calls an invoice with nothing left to pay "paid"
    [remote] = stripe_server.objects("credit_note")
    assert remote["out_of_band_amount"] is None  # nothing had been paid: no money to settle

    deliver(client, settled)
    run_jobs(app)

    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.paid_ore == 0
    receipts = db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.template == "billing_receipt")
    )
    assert receipts == 0, "no 'we have received 0 kr' email"


def test_reminders_ask_for_what_is_left_after_credit_notes(app, stripe_server):
    from crm.billing.services import issue_credit_note

    actor = _finance_user()
    partly = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    issue_credit_note(partly, 100_050, actor=actor, reason="Rabatt")
    settled = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    issue_credit_note(settled, settled.gross_ore, actor=actor, reason="Feil faktura")  # its webhook not in yet

    assert send_due_reminders(partly.due_on + timedelta(days=7)) == {"7": 1, "21": 0}

    [body] = db.session.scalars(select(OutboxMessage.body_text).where(OutboxMessage.template == "billing_reminder"))
    left = partly.gross_ore - 100_050
    assert f"{left // 100:,}".replace(",", "\u00a0") + f",{left % 100:02d}\u00a0kr" in body
    assert settled.reminder_7_sent_at is None, "nothing left to pay: no reminder"


def test_the_export_of_a_periods_payments_is_by_payment_date(app, client, stripe_server):
    from datetime import UTC, datetime

    from crm.auth.models import Role
    from tests.factories import make_staff
    from tests.helpers import login

    invoice = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    unpaid = bill_membership(make_billable().membership.id, YEAR, InvoiceKind.MEMBERSHIP)
    invoice.issued_on = unpaid.issued_on = date(YEAR, 1, 20)
    invoice.status, invoice.paid_ore = InvoiceStatus.PAID, invoice.gross_ore
    invoice.paid_at = datetime(YEAR, 2, 28, 23, 30, tzinfo=UTC)  # 1 March, 00:30 in Oslo
    user = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, user)

    march = client.get(f"/staff/billing/export.csv?period=paid&from={YEAR}-03-01&to={YEAR}-03-31").text
    february = client.get(f"/staff/billing/export.csv?period=paid&from={YEAR}-02-01&to={YEAR}-02-28").text
    by_invoice_date = client.get(f"/staff/billing/export.csv?from={YEAR}-03-01&to={YEAR}-03-31").text

    assert invoice.number in march and unpaid.number not in march
    assert invoice.number not in february
    assert invoice.number not in by_invoice_date  # invoiced in January
    page = client.get(f"/staff/billing/invoices?period=paid&from={YEAR}-03-01").text
    assert '<option value="paid" selected>Betalingsdato</option>' in page
