"""Invoice lines: one per fee component (annual fee, pro-rata reduction, group discount; or the fee staff set),
each with its VAT, the same here and at Stripe."""

from __future__ import annotations

import json
from datetime import date

import pytest

from crm.billing.jobs import bill_membership
from crm.billing.models import InvoiceKind, VatTreatment
from crm.billing.reconcile import reconcile
from crm.billing.services import ensure_stripe_customer, ensure_tax_rate, line_vat
from crm.billing.stripe_gateway import get_gateway
from crm.members.fees import company_steps
from crm.members.services import set_fee_override
from tests.billing.conftest import YEAR, make_billable
from tests.factories import make_staff

NBSP = "\u00a0"
FULL = company_steps()[9][1]  # turnover 40 mill. kr: step 10


def _new_member_in_a_group(start_on: date):
    parent = make_billable(name="Konsern ASA")
    organisation = make_billable(parent_id=parent.id)
    organisation.membership.start_on = start_on
    return organisation


def test_a_new_member_with_a_group_discount_gets_three_lines_here_and_at_stripe(app, stripe_server):
    organisation = _new_member_in_a_group(date(YEAR, 7, 1))
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.PRO_RATA)
    assert stripe_server.total_requests() <= 5  # customer, invoice, all lines in one call, finalise, send

    expected = [
        (f"Medlemskontingent {YEAR}, Bedrift (trinn 10, omsetning opptil 40{NBSP}000{NBSP}000{NBSP}kr)", FULL),
        (f"Innmeldt 01.07.{YEAR}: 50 % av årskontingenten", -FULL // 2),
        ("Konsernrabatt 20 %", -FULL // 2 // 5),
    ]
    assert [(line.position, line.description, line.amount_ore) for line in invoice.lines] == [
        (position, *line) for position, line in enumerate(expected)
    ]
    assert invoice.net_ore == invoice.gross_ore == FULL // 2 * 4 // 5 == sum(amount for _, amount in expected)
    assert all(line.vat_treatment is VatTreatment.OUTSIDE_SCOPE and line.vat_ore == 0 for line in invoice.lines)
    # Read back from Stripe: the same lines, no tax rates, the same total.
    remote = get_gateway().retrieve_invoice(invoice.stripe_invoice_id)
    assert [(line["description"], line["amount"]) for line in remote["lines"]["data"]] == expected
    assert all(line["taxes"] == [] for line in remote["lines"]["data"])
    assert remote["status"] == "open" and remote["total"] == remote["amount_due"] == invoice.gross_ore
    assert reconcile(YEAR) == []


def test_vat_25_is_on_every_line_negative_ones_included_and_sums_as_at_stripe(app, stripe_server, monkeypatch):
    monkeypatch.setitem(app.config, "BILLING_FEE_VAT", "vat_25")
    organisation = _new_member_in_a_group(date(YEAR, 10, 1))
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.PRO_RATA)

    amounts = [FULL, -(FULL - FULL // 4), -(FULL // 4 // 5)]
    assert [line.amount_ore for line in invoice.lines] == amounts
    assert all(line.vat_treatment is VatTreatment.VAT_25 for line in invoice.lines)
    assert [line.vat_ore for line in invoice.lines] == [amount * 25 // 100 for amount in amounts]
    assert invoice.lines[1].vat_ore < 0 and invoice.lines[2].vat_ore < 0
    assert invoice.net_ore == sum(amounts)
    assert invoice.vat_ore == sum(line.vat_ore for line in invoice.lines) == invoice.net_ore // 4
    assert invoice.gross_ore == invoice.net_ore + invoice.vat_ore

    remote = get_gateway().retrieve_invoice(invoice.stripe_invoice_id)
    [rate] = stripe_server.objects("tax_rate")
    for line, local in zip(remote["lines"]["data"], invoice.lines, strict=True):
        assert line["amount"] == local.amount_ore
        assert [(tax["amount"], tax["tax_rate_details"]["tax_rate"]) for tax in line["taxes"]] == [
            (local.vat_ore, rate["id"])
        ]
    assert sum(tax["amount"] for tax in remote["total_taxes"]) == invoice.vat_ore
    assert remote["total"] == invoice.gross_ore
    assert reconcile(YEAR) == []


def test_line_vat_rounds_each_line_as_stripe_does_ties_and_negatives_included(app, stripe_server):
    # 25 % of these gives every fraction of an øre, ties (x.5) and negative ties included.
    amounts = [1, 2, 3, 6, 10, 14, 10_002, 99_998, 137_802, -1, -2, -3, -6, -10, -14, -10_002, -137_802]
    gateway = get_gateway()
    customer_id = ensure_stripe_customer(make_billable(), gateway)
    rate_id = ensure_tax_rate(VatTreatment.VAT_25, gateway)
    draft = gateway.create_invoice(
        "test:rounding", customer_id=customer_id, days_until_due=30, description="x", custom_fields=[], metadata={}
    )
    lines = [{"amount": amount, "description": str(amount), "tax_rates": [rate_id]} for amount in amounts]
    remote = gateway.add_lines(draft["id"], "test:rounding:lines", lines)

    remote_vat = [line["taxes"][0]["amount"] for line in remote["lines"]["data"]]
    assert remote_vat == [line_vat(amount, VatTreatment.VAT_25) for amount in amounts]
    # half up, and a negative line mirrors the positive one (half away from zero); not banker's rounding
    assert [line_vat(amount, VatTreatment.VAT_25) for amount in (2, 6, 10, -2, -6, -10)] == [1, 2, 3, -1, -2, -3]
    assert line_vat(-10_002, VatTreatment.EXEMPT) == line_vat(10_002, VatTreatment.OUTSIDE_SCOPE) == 0


def test_an_overridden_fee_is_one_line_and_its_reason_stays_off_the_invoice(app, stripe_server, monkeypatch):
    monkeypatch.setitem(app.config, "BILLING_FEE_VAT", "vat_25")
    organisation = _new_member_in_a_group(date(YEAR, 7, 1))
    staff = make_staff(full_name="Siri Saksbehandler")
    set_fee_override(organisation.membership, 12_345_02, reason="Styrevedtak om særavtale", actor=staff)
    invoice = bill_membership(organisation.membership.id, YEAR, InvoiceKind.PRO_RATA)

    [line] = invoice.lines
    assert line.description == f"Medlemskontingent {YEAR}, Bedrift (fastsatt av administrasjonen)"
    assert (line.amount_ore, line.vat_ore) == (12_345_02, 3_086_26)  # 3 086.255 kr: half up
    assert (invoice.net_ore, invoice.vat_ore, invoice.gross_ore) == (12_345_02, 3_086_26, 15_431_28)
    assert any("Styrevedtak om særavtale" in text for text in invoice.explanation)  # staff still see why
    [remote] = stripe_server.objects("invoice")
    assert [(item["description"], item["amount"]) for item in remote["lines"]["data"]] == [
        (line.description, 12_345_02)
    ]
    assert remote["total"] == invoice.gross_ore
    printed = json.dumps(remote, ensure_ascii=False)
    assert "Styrevedtak" not in printed and "Siri Saksbehandler" not in printed
    assert remote["description"] == f"Medlemskontingent {YEAR}, Etisk handel Norge"


@pytest.mark.parametrize("kind", [InvoiceKind.MEMBERSHIP, InvoiceKind.PRO_RATA])
def test_a_member_for_the_whole_year_gets_one_line(app, stripe_server, kind):
    organisation = make_billable()
    invoice = bill_membership(organisation.membership.id, YEAR, kind)
    [line] = invoice.lines
    assert line.amount_ore == invoice.net_ore == FULL
    assert len(stripe_server.objects("invoice")[0]["lines"]["data"]) == 1
