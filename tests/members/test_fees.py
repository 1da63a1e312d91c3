from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.errors import DomainError
from crm.extensions import db
from crm.members.fees import (
    calculate_fee,
    company_steps,
    copy_fee_schedules,
    get_schedule,
    seed_fee_schedules,
)
from crm.members.models import FeeSchedule, MembershipStatus, OrganisationKind
from crm.members.services import ensure_categories, set_fee_override
from tests.factories import make_organisation, make_staff

S = MembershipStatus


@pytest.fixture
def schedules():
    return {s.category.code: s for s in seed_fee_schedules(2026)}


def test_seeded_schedules_follow_the_domain_figures(schedules):
    steps = schedules["company"].rule["steps"]
    assert len(steps) == 40
    assert steps[0][1] == 7_700_00 and steps[-1] == [None, 137_800_00]
    assert [fee for _, fee in steps] == sorted(fee for _, fee in steps)
    assert all(fee % 10_000 == 0 for _, fee in steps)
    assert schedules["municipality"].rule == {"rate_ore": 118, "min_ore": 25_700_00, "max_ore": 99_600_00}
    assert schedules["county"].rule["rate_ore"] == 59
    assert [g["fee_ore"] for g in schedules["organisation"].rule["groups"]] == [7_700_00, 18_900_00, 41_600_00]
    assert seed_fee_schedules(2026) == []  # idempotent


@pytest.mark.parametrize(
    ("turnover", "expected_step"),
    [(0, 0), (1_000_000, 0), (1_000_001, 1), (12_000_000, 6), (500_000_000_000, 39)],
)
def test_company_fee_by_turnover_step(schedules, turnover, expected_step):
    org = make_organisation(annual_turnover_nok=turnover)
    calc = calculate_fee(org.membership, 2026)
    assert calc.amount_ore == company_steps()[expected_step][1]
    assert f"trinn {expected_step + 1}" in calc.lines[1]


def test_company_fee_explanation_in_norwegian(schedules):
    org = make_organisation(annual_turnover_nok=12_000_000)
    calc = calculate_fee(org.membership, 2026)
    assert calc.lines[0] == "Grunnlag: årsomsetning 12\u00a0000\u00a0000\u00a0kr."
    assert calc.lines[-1].startswith("Kontingent 2026:")


@pytest.mark.parametrize(
    ("turnover", "employees", "fee"),
    [(4_000_000, 8, 7_700_00), (4_000_000, 30, 18_900_00), (60_000_000, 5, 41_600_00), (10_000_000, None, 18_900_00)],
)
def test_organisation_fee_by_payment_group(schedules, turnover, employees, fee):
    org = make_organisation(kind=OrganisationKind.ORGANISATION, annual_turnover_nok=turnover, employees=employees)
    assert calculate_fee(org.membership, 2026).amount_ore == fee


@pytest.mark.parametrize(
    ("kind", "inhabitants", "fee"),
    [
        (OrganisationKind.MUNICIPALITY, 50_000, 59_000_00),  # 50 000 x 1.18
        (OrganisationKind.MUNICIPALITY, 5_000, 25_700_00),  # minimum
        (OrganisationKind.MUNICIPALITY, 700_000, 99_600_00),  # maximum
        (OrganisationKind.COUNTY, 100_000, 59_000_00),  # 100 000 x 0.59
        (OrganisationKind.MUNICIPALITY, 23_456, 27_678_00),  # 27 678.08 rounded to whole kroner
    ],
)
def test_per_inhabitant_fee_with_min_and_max(schedules, kind, inhabitants, fee):
    org = make_organisation(kind=kind, inhabitants=inhabitants)
    assert calculate_fee(org.membership, 2026).amount_ore == fee


@pytest.mark.parametrize(
    ("start_on", "percent"),
    [
        (date(2025, 11, 1), 100),
        (date(2026, 1, 1), 100),
        (date(2026, 6, 30), 100),
        (date(2026, 7, 1), 50),
        (date(2026, 9, 30), 50),
        (date(2026, 10, 1), 25),
        (date(2026, 12, 31), 25),
    ],
)
def test_pro_rata_for_members_joining_in_the_year(schedules, start_on, percent):
    org = make_organisation(kind=OrganisationKind.MUNICIPALITY, inhabitants=50_000, status=S.ACTIVE)
    org.membership.start_on = start_on
    calc = calculate_fee(org.membership, 2026)
    assert calc.pro_rata_percent == percent
    assert calc.amount_ore == 59_000_00 * percent // 100
    if percent != 100:
        assert any(f"{percent} % av årskontingenten" in line for line in calc.lines)


def test_group_discount_only_when_the_parent_is_a_member(schedules):
    parent = make_organisation(name="Konsern ASA", status=S.PROSPECT, annual_turnover_nok=1)
    child = make_organisation(parent_id=parent.id, annual_turnover_nok=12_000_000)
    full = company_steps()[6][1]
    assert calculate_fee(child.membership, 2026).amount_ore == full
    parent.membership.status = S.ACTIVE
    calc = calculate_fee(child.membership, 2026)
    assert calc.discount_percent == 20
    assert calc.amount_ore == full * 80 // 100
    assert any("Konsernrabatt 20 %" in line and "Konsern ASA" in line for line in calc.lines)


def test_override_replaces_the_calculated_fee_and_says_why(schedules):
    staff = make_staff(full_name="Siri Saksbehandler")
    org = make_organisation(annual_turnover_nok=12_000_000)
    set_fee_override(org.membership, 5_000_00, reason="Avtalt rabatt første år", actor=staff)
    calc = calculate_fee(org.membership, 2026)
    assert calc.amount_ore == 5_000_00
    assert calc.calculated_ore == company_steps()[6][1]
    assert calc.overridden
    assert any("Siri Saksbehandler" in line and "Avtalt rabatt første år" in line for line in calc.lines)
    with pytest.raises(DomainError):
        set_fee_override(org.membership, 4_000_00, reason="", actor=staff)
    set_fee_override(org.membership, None, reason=None, actor=staff)
    assert calculate_fee(org.membership, 2026).amount_ore == company_steps()[6][1]


def test_an_override_applies_when_the_basis_is_unknown(schedules):
    staff = make_staff(full_name="Siri Saksbehandler")
    org = make_organisation()  # no turnover: the schedule cannot be applied
    set_fee_override(org.membership, 9_000_00, reason="Omsetning ikke oppgitt; avtalt sats", actor=staff)
    calc = calculate_fee(org.membership, 2026)
    assert (calc.amount_ore, calc.calculated_ore, calc.overridden) == (9_000_00, None, True)
    assert any("omsetning" in line.lower() for line in calc.lines[:-2])  # says why no fee was calculated
    assert "Omsetning ikke oppgitt; avtalt sats" in calc.lines[-2]


def test_missing_schedule_or_basis_is_a_clear_error(schedules):
    org = make_organisation()
    with pytest.raises(DomainError) as exc:
        calculate_fee(org.membership, 2026)
    assert exc.value.field == "annual_turnover_nok"
    org.annual_turnover_nok = 1
    with pytest.raises(DomainError) as exc:
        calculate_fee(org.membership, 2031)
    assert "2031" in exc.value.message


def test_copy_year_indexes_fees_and_rounds_to_hundreds(schedules):
    copies = {s.category.code: s for s in copy_fee_schedules(2026, 2027, Decimal("3.5"))}
    assert len(copies) == 5
    assert copies["company"].rule["steps"][0] == [1_000_000, 8_000_00]  # 7 700 x 1.035 = 7 969.5
    assert copies["company"].rule["steps"][-1] == [None, 142_600_00]  # 137 800 x 1.035 = 142 623
    assert copies["municipality"].rule == {"rate_ore": 122, "min_ore": 26_600_00, "max_ore": 103_100_00}
    assert copies["organisation"].rule["groups"][0]["max_employees"] == 10
    assert get_schedule(2027, ensure_categories()["company"].id).group_discount_percent == 20
    with pytest.raises(DomainError):
        copy_fee_schedules(2026, 2027, Decimal("2"))
    with pytest.raises(DomainError):
        copy_fee_schedules(2019, 2020, Decimal("2"))


def test_copy_year_command(app, schedules):
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "fees", "copy-year", "--from", "2026", "--to", "2027", "--index", "3,5"])
    assert result.exit_code == 0, result.output
    assert "5" in result.output
    assert len(db.session.scalars(select(FeeSchedule).where(FeeSchedule.year == 2027)).all()) == 5
    again = runner.invoke(args=["crm", "fees", "copy-year", "--from", "2026", "--to", "2027", "--index", "3.5"])
    assert again.exit_code != 0
    assert again.output.strip().splitlines()[-1] == "Error: Kontingentsatser for 2027 finnes allerede."
    bad = runner.invoke(args=["crm", "fees", "copy-year", "--from", "2026", "--to", "2028", "--index", "mye"])
    assert bad.exit_code != 0
