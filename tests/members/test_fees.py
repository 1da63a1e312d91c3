from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.errors import DomainError
from crm.extensions import db
from crm.members.fees import (
    DEFAULT_PRO_RATA,
    calculate_fee,
    company_steps,
    copy_fee_schedules,
    get_schedule,
    round_kroner,
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


# --- the fee as invoice lines (components) ----------------------------------------------------------------

NBSP = "\u00a0"


@pytest.mark.parametrize("discount", [20, 17])
@pytest.mark.parametrize("pro_rata", [DEFAULT_PRO_RATA, [[3, 1, 67], [8, 15, 33]]], ids=["default", "odd shares"])
def test_fee_components_sum_exactly_to_the_fee_in_every_case(schedules, discount, pro_rata):
    for schedule in schedules.values():
        schedule.pro_rata = pro_rata
        schedule.group_discount_percent = discount
    parent = make_organisation(name="Konsern ASA", status=S.ACTIVE, annual_turnover_nok=1)
    K = OrganisationKind
    figures = [
        *[(K.COMPANY, {"annual_turnover_nok": t}) for t in (0, 1_000_001, 12_345_678, 75_000_001, 500_000_000_000)],
        *[(K.STATE_BODY, {"annual_turnover_nok": t}) for t in (3_000_000, 999_999_999)],
        (K.ORGANISATION, {"annual_turnover_nok": 4_000_000, "employees": 8}),
        (K.ORGANISATION, {"annual_turnover_nok": 10_000_000, "employees": None}),
        (K.ORGANISATION, {"annual_turnover_nok": 60_000_000, "employees": 5}),
        # per inhabitant: the minimum, the maximum, and rates giving øre before rounding to kroner
        *[(K.MUNICIPALITY, {"inhabitants": n}) for n in (5_000, 23_456, 54_321, 700_000)],
        *[(K.COUNTY, {"inhabitants": n}) for n in (10_000, 77_777, 123_457, 2_000_000)],
    ]
    starts = [date(2024, 5, 1), date(2026, 1, 1), date(2026, 3, 1), date(2026, 7, 1), date(2026, 8, 15)]
    starts += [date(2026, 10, 1), date(2026, 12, 31)]
    checked = 0
    for kind, values in figures:
        org = make_organisation(kind=kind, status=S.ACTIVE, **values)
        org.membership.start_on = date(2020, 1, 1)
        annual = calculate_fee(org.membership, 2026)
        assert [c.amount_ore for c in annual.components] == [annual.amount_ore]
        base = annual.amount_ore
        for start_on in starts:
            for with_parent in (False, True):
                org.membership.start_on = start_on
                org.parent = parent if with_parent else None
                calc = calculate_fee(org.membership, 2026)
                assert calc.components_total == calc.amount_ore, (kind, values, start_on, with_parent)
                # the same steps, rounded to kroner after each: pro rata, then the discount
                share = round_kroner(Decimal(base) * calc.pro_rata_percent / 100)
                final = round_kroner(Decimal(share) * (100 - discount) / 100) if with_parent else share
                expected = [base]
                if calc.pro_rata_percent != 100:
                    expected.append(share - base)
                if with_parent:
                    expected.append(final - share)
                assert [c.amount_ore for c in calc.components] == expected
                assert calc.amount_ore == final
                assert all(c.amount_ore % 100 == 0 for c in calc.components)  # whole kroner
                checked += 1
    assert checked == len(figures) * len(starts) * 2


def test_fee_components_describe_the_schedule_step_group_or_inhabitants(schedules):
    company = make_organisation(annual_turnover_nok=12_000_000)
    [line] = calculate_fee(company.membership, 2026).components
    limit = f"15{NBSP}000{NBSP}000{NBSP}kr"
    assert line.description == f"Medlemskontingent 2026, Bedrift (trinn 7, omsetning opptil {limit})"
    top = make_organisation(annual_turnover_nok=500_000_000_000)
    assert "(trinn 40, omsetning over 100" in calculate_fee(top.membership, 2026).components[0].description
    organisation = make_organisation(kind=OrganisationKind.ORGANISATION, annual_turnover_nok=4_000_000, employees=30)
    [line] = calculate_fee(organisation.membership, 2026).components
    assert line.description == "Medlemskontingent 2026, Organisasjon (betalingsgruppe Gruppe 2)"
    for inhabitants, amount, suffix in [
        (50_000, 59_000_00, ""),
        (5_000, 25_700_00, ", minstekontingent"),
        (700_000, 99_600_00, ", høyeste kontingent"),
    ]:
        municipality = make_organisation(kind=OrganisationKind.MUNICIPALITY, inhabitants=inhabitants)
        [line] = calculate_fee(municipality.membership, 2026).components
        count = f"{inhabitants:,}".replace(",", NBSP)
        assert line.description == f"Medlemskontingent 2026, Kommune ({count} innbyggere × 1,18{NBSP}kr{suffix})"
        assert line.amount_ore == amount


def test_fee_components_of_a_new_member_with_a_group_discount(schedules):
    parent = make_organisation(name="Konsern ASA", status=S.ACTIVE, annual_turnover_nok=1)
    child = make_organisation(parent_id=parent.id, annual_turnover_nok=12_000_000, status=S.ACTIVE)
    child.membership.start_on = date(2026, 7, 1)
    calc = calculate_fee(child.membership, 2026)
    full = company_steps()[6][1]
    assert [(c.description, c.amount_ore) for c in calc.components] == [
        (f"Medlemskontingent 2026, Bedrift (trinn 7, omsetning opptil 15{NBSP}000{NBSP}000{NBSP}kr)", full),
        ("Innmeldt 01.07.2026: 50 % av årskontingenten", -(full // 2)),
        ("Konsernrabatt 20 %", -(full // 2 // 5)),
    ]
    assert calc.amount_ore == calc.components_total == full // 2 * 4 // 5
    assert calc.lines[-1].startswith("Kontingent 2026:")  # the explanation is unchanged


def test_an_override_is_one_component_without_the_internal_reason(schedules):
    staff = make_staff(full_name="Siri Saksbehandler")
    parent = make_organisation(status=S.ACTIVE, annual_turnover_nok=1)
    org = make_organisation(parent_id=parent.id, annual_turnover_nok=12_000_000, status=S.ACTIVE)
    org.membership.start_on = date(2026, 10, 1)
    set_fee_override(org.membership, 5_000_50, reason="Avtalt rabatt første år", actor=staff)
    calc = calculate_fee(org.membership, 2026)
    assert [(c.description, c.amount_ore) for c in calc.components] == [
        ("Medlemskontingent 2026, Bedrift (fastsatt av administrasjonen)", 5_000_50)
    ]
    assert any("Avtalt rabatt første år" in line for line in calc.lines)  # the staff explanation keeps it
    # without a schedule for the year, the override is still the one line
    [line] = calculate_fee(org.membership, 2031).components
    assert line.description == "Medlemskontingent 2031, Bedrift (fastsatt av administrasjonen)"
    assert line.amount_ore == 5_000_50
