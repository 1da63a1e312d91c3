"""The fee schedule pages under /staff/members/fees: who may use them, how a year reads, editing and creating
a schedule (with the service's refusals that change nothing), copying a year, and the fee the organisation
page calculates after an edit."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.errors import DomainError
from crm.extensions import db
from crm.members.fees import calculate_fee, company_steps, seed_fee_schedules
from crm.members.models import FeeRuleType, FeeSchedule, MembershipCategory, OrganisationKind
from crm.members.services import (
    FeeScheduleInput,
    GroupRow,
    ProRataRow,
    StepRow,
    create_fee_schedule,
    ensure_categories,
    update_fee_schedule,
)
from tests.factories import make_organisation, make_staff, make_user
from tests.helpers import csrf_token, login

YEAR = 2026
FEES = "/staff/members/fees"


@pytest.fixture
def schedules():
    return {s.category.code: s for s in seed_fee_schedules(YEAR)}


@pytest.fixture
def coordinator(client):
    user = make_staff(Role.COORDINATOR)
    login(client, user)
    return user


def _token(client) -> str:
    db.session.commit()  # keep the test's data when a refused request rolls the session back
    return csrf_token(client)


def _edit_url(schedule_or_category, year: int = YEAR) -> str:
    category_id = getattr(schedule_or_category, "category_id", None) or schedule_or_category.id
    return f"{FEES}/{year}/{category_id}"


def _step_rows(steps) -> dict[str, str]:
    """Form data for turnover steps as a person types them, with two blank rows at the end."""
    data = {}
    for i, (upper, fee) in enumerate([*steps, ("", ""), ("", "")]):
        data[f"steps-{i}-upper"] = upper
        data[f"steps-{i}-fee"] = fee
    return data


def _pro_rata_rows(rows=(("01.07", "50"), ("01.10", "25"))) -> dict[str, str]:
    data = {}
    for i, (on, percent) in enumerate([*rows, ("", "")]):
        data[f"pro_rata-{i}-date"] = on
        data[f"pro_rata-{i}-percent"] = percent
    return data


def _audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _rows() -> list[ProRataRow]:
    return [ProRataRow(day=1, month=7, percent=50), ProRataRow(day=1, month=10, percent=25)]


# --- access ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        ({Role.MEMBER}, 403),
        ({Role.ADVISER}, 403),
        ({Role.COORDINATOR}, 200),
        ({Role.FINANCE}, 200),
        ({Role.ADMIN}, 200),
    ],
)
@pytest.mark.parametrize("path", ["", "/2026/{category}", "/2027/{category}"])
def test_access_per_role(client, schedules, roles, status, path):
    user = make_user(roles=roles) if roles == {Role.MEMBER} else make_staff(*roles)
    login(client, user)
    assert client.get(FEES + path.format(category=schedules["company"].category_id)).status_code == status


@pytest.mark.parametrize("roles", [{Role.MEMBER}, {Role.ADVISER}])
def test_posts_by_others_are_refused_and_change_nothing(client, schedules, roles):
    company = schedules["company"]
    login(client, make_user(roles=roles) if roles == {Role.MEMBER} else make_staff(*roles))
    token = csrf_token(client)
    data = {"csrf_token": token, **_step_rows([("", "1")]), **_pro_rata_rows()}
    assert client.post(_edit_url(company), data=data).status_code == 403
    assert client.post(f"{FEES}/{YEAR}/copy", data={"csrf_token": token, "index_percent": "3"}).status_code == 403
    db.session.refresh(company)
    assert company.rule == {"steps": company_steps()}
    assert db.session.scalar(select(func.count()).select_from(FeeSchedule).where(FeeSchedule.year == YEAR + 1)) == 0


def test_posts_without_a_csrf_token_are_refused(client, coordinator, schedules):
    company = schedules["company"]
    db.session.commit()
    response = client.post(_edit_url(company), data={**_step_rows([("", "1 000")]), **_pro_rata_rows()})
    assert response.status_code == 400
    assert client.post(f"{FEES}/{YEAR}/copy", data={"index_percent": "3"}).status_code == 400
    db.session.refresh(company)
    assert company.rule == {"steps": company_steps()}


def test_unknown_category_and_year_out_of_range_are_404(client, coordinator, schedules):
    assert client.get(f"{FEES}/{YEAR}/999999").status_code == 404
    assert client.get(f"{FEES}/1800/{schedules['company'].category_id}").status_code == 404


def test_the_member_list_links_to_the_fee_schedules_for_fee_managers_only(client, schedules):
    login(client, make_staff(Role.FINANCE))
    assert 'href="/staff/members/fees"' in client.get("/staff/members/").text
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, make_staff(Role.ADVISER))
    assert 'href="/staff/members/fees"' not in client.get("/staff/members/").text


# --- reading a year --------------------------------------------------------------------------------------


def test_the_year_reads_in_norwegian(client, coordinator, schedules):
    page = client.get(f"{FEES}?year={YEAR}").text
    assert "Kontingentsatser 2026" in page
    # turnover steps: the first, one in the middle and the unbounded last
    assert "opptil 1\u00a0000\u00a0000\u00a0kr" in page and "7\u00a0700\u00a0kr" in page
    assert "over 100\u00a0000\u00a0000\u00a0000\u00a0kr" in page and "137\u00a0800\u00a0kr" in page
    # payment groups: name, limits, fee
    assert "Gruppe 2" in page and "opptil 50\u00a0000\u00a0000\u00a0kr" in page and "opptil 50<" in page
    assert "18\u00a0900\u00a0kr" in page and "ingen grense" in page
    # per inhabitant with min and max
    assert "Sats per innbygger" in page and "1,18\u00a0kr" in page and "0,59\u00a0kr" in page
    assert "25\u00a0700\u00a0kr" in page and "99\u00a0600\u00a0kr" in page
    # pro rata and group discount
    assert "Innmeldt før 1. juli: 100 % av årskontingenten" in page
    assert "Innmeldt fra 1. juli: 50 % av årskontingenten" in page
    assert "Innmeldt fra 1. oktober: 25 % av årskontingenten" in page
    assert "20 % når morselskapet er medlem" in page


def test_years_with_schedules_and_the_neighbours_are_offered(client, coordinator, schedules):
    seed_fee_schedules(2024)
    page = client.get(f"{FEES}?year={YEAR}").text
    for year in (2024, 2025, 2027):
        assert f'href="/staff/members/fees?year={year}"' in page
    assert 'aria-current="page" href="/staff/members/fees?year=2026"' in page


def test_a_year_without_schedules_says_so_per_category(client, coordinator, schedules):
    page = client.get(f"{FEES}?year=2030").text
    assert page.count("Ingen kontingentsatser for 2030.") == len(ensure_categories())
    assert "Opprett kontingentsatser" in page and "Kopier 2030" not in page


def test_a_category_without_a_schedule_says_so(client, coordinator, schedules):
    db.session.add(MembershipCategory(code="other", name="Annen kategori", sort_order=90))
    page = client.get(FEES).text  # without a year: this year (2026 has schedules)
    assert "Kontingentsatser 2026" in page
    assert page.count("Ingen kontingentsatser for 2026.") == 1


@pytest.mark.parametrize("extra_years", [0, 3])
def test_the_fees_page_runs_a_constant_number_of_queries(client, coordinator, schedules, count_queries, extra_years):
    for i in range(extra_years):
        seed_fee_schedules(2020 + i)
    for i in range(extra_years * 2):
        category = MembershipCategory(code=f"extra{i}", name=f"Ekstra {i}", sort_order=100 + i)
        db.session.add(category)
        db.session.flush()
        create_fee_schedule(YEAR, category, FeeRuleType.PER_INHABITANT, _per_inhabitant(), actor=None)
    client.get(f"{FEES}?year={YEAR}")  # warm-up
    with count_queries() as counter:
        response = client.get(f"{FEES}?year={YEAR}")
    assert response.status_code == 200
    assert counter.count == EXPECTED_FEES_QUERIES, counter.statements


# categories, the year's schedules, the years that have schedules (the logged-in user is cached in the test's
# app context): the same however many categories and years there are.
EXPECTED_FEES_QUERIES = 3


# --- editing ---------------------------------------------------------------------------------------------


def test_a_coordinator_edits_a_step_and_the_organisation_page_fee_follows(client, coordinator, schedules):
    company = schedules["company"]
    org = make_organisation(name="Fjordmat AS", annual_turnover_nok=12_000_000)  # step 7: up to 15 MNOK
    before = calculate_fee(org.membership, YEAR).amount_ore
    assert before == company_steps()[6][1]
    page = client.get(_edit_url(company)).text
    assert 'name="steps-6-upper"' in page and 'value="15 000 000"' in page
    steps = [(f"{upper:,}".replace(",", " ") if upper else "", f"{fee // 100}") for upper, fee in company.rule["steps"]]
    steps[6] = ("15 000 000", "15 500")
    data = {"csrf_token": _token(client), **_step_rows(steps), **_pro_rata_rows()}
    data["group_discount"] = "20"
    response = client.post(_edit_url(company), data=data)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/members/fees?year={YEAR}#category-{company.category_id}")
    db.session.refresh(company)
    assert company.rule["steps"][6] == [15_000_000, 15_500_00] and len(company.rule["steps"]) == 40
    assert calculate_fee(org.membership, YEAR).amount_ore == 15_500_00 != before
    fee_tab = client.get(f"/staff/members/{org.id}?tab=fee").text
    assert "15\u00a0500\u00a0kr" in fee_tab
    (entry,) = _audits("members.fees.schedule_updated")
    assert entry.details["before"] == {"step 7": [15_000_000, company_steps()[6][1]]}
    assert entry.details["after"] == {"step 7": [15_000_000, 15_500_00]}
    assert entry.actor_id == coordinator.id
    # The audit log reads the change in Norwegian.
    from crm.audit.details import audit_action_label, audit_details

    shown = dict(audit_details(entry))
    assert audit_action_label(entry.action) == "Kontingentsatser endret"
    assert shown["Etter"] == "Trinn 7: opptil 15\u00a0000\u00a0000\u00a0kr: 15\u00a0500\u00a0kr"


def test_finance_edits_per_inhabitant_amounts_with_a_decimal_comma(client, schedules):
    login(client, make_staff(Role.FINANCE))
    municipality = schedules["municipality"]
    data = {
        "csrf_token": _token(client),
        "rate": "1,25",
        "minimum": "26 000",
        "maximum": "99600",
        "group_discount": "",
        **_pro_rata_rows(),
    }
    response = client.post(_edit_url(municipality), data=data)
    assert response.status_code == 302
    db.session.refresh(municipality)
    assert municipality.rule == {"rate_ore": 125, "min_ore": 26_000_00, "max_ore": 99_600_00}
    assert municipality.group_discount_percent == 0
    org = make_organisation(kind=OrganisationKind.MUNICIPALITY, inhabitants=50_000)
    assert calculate_fee(org.membership, YEAR).amount_ore == 62_500_00


def test_payment_groups_edit_ignores_blank_rows_and_adds_a_group(client, coordinator, schedules):
    groups = schedules["organisation"]
    data = {"csrf_token": _token(client), **_pro_rata_rows((("01.07", "50"),))}
    rows = [
        ("Gruppe 1", "5 000 000", "10", "7 700"),
        ("", "", "", ""),
        ("Gruppe 2", "50 000 000", "50", "18 900"),
        ("Gruppe 2b", "100 000 000", "", "30 000"),
        ("Gruppe 3", "", "", "41 600"),
    ]
    for i, (name, turnover, employees, fee) in enumerate(rows):
        data |= {
            f"groups-{i}-name": name,
            f"groups-{i}-max_turnover": turnover,
            f"groups-{i}-max_employees": employees,
            f"groups-{i}-fee": fee,
        }
    assert client.post(_edit_url(groups), data=data).status_code == 302
    db.session.refresh(groups)
    assert [g["name"] for g in groups.rule["groups"]] == ["Gruppe 1", "Gruppe 2", "Gruppe 2b", "Gruppe 3"]
    assert groups.rule["groups"][2] == {
        "name": "Gruppe 2b",
        "max_turnover_nok": 100_000_000,
        "max_employees": None,
        "fee_ore": 30_000_00,
    }
    assert groups.pro_rata == [[7, 1, 50]]


def test_saving_unchanged_values_changes_nothing_and_writes_no_audit(client, coordinator, schedules):
    municipality = schedules["municipality"]
    data = {
        "csrf_token": _token(client),
        "rate": "1,18",
        "minimum": "25 700",
        "maximum": "99 600",
        "group_discount": "0",
        **_pro_rata_rows(),
    }
    response = client.post(_edit_url(municipality), data=data, follow_redirects=True)
    assert "Ingenting ble endret." in response.text
    assert _audits("members.fees.schedule_updated") == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"steps-1-upper": "500 000"}, "steps-1-upper", "Trinnene må stige"),
        ({"steps-1-upper": ""}, "steps-1-upper", "Bare siste trinn kan være uten øvre grense."),
        ({"steps-2-upper": "9 000 000"}, "steps-2-upper", "La øvre grense på siste trinn stå tom"),
        ({"steps-0-fee": "0"}, "steps-0-fee", "Kontingenten må være over 0 kr."),
        ({"steps-1-fee": ""}, "steps-1-fee", "Skriv inn kontingenten."),
        ({"steps-1-fee": "7.700"}, "steps-1-fee", "Skriv inn kroner, f.eks. 7 700 eller 1,18."),
        ({"steps-1-upper": "1,5"}, "steps-1-upper", "Skriv inn hele kroner"),
        ({"pro_rata-1-date": "01.06"}, "pro_rata-1-date", "Datoene må komme i rekkefølge gjennom året."),
        ({"pro_rata-0-date": "31.02"}, "pro_rata-0-date", "Ikke en dato som finnes hvert år."),
        ({"pro_rata-0-date": "juli"}, "pro_rata-0-date", "Skriv datoen som dd.mm"),
        ({"pro_rata-0-percent": "120"}, "pro_rata-0-percent", "En prosentsats må være mellom 0 og 100."),
        ({"group_discount": "101"}, "group_discount", "En prosentsats må være mellom 0 og 100."),
    ],
)
def test_bad_input_is_shown_on_its_field_and_changes_nothing(client, coordinator, change, field, message):
    category = ensure_categories()["company"]
    schedule = create_fee_schedule(
        YEAR,
        category,
        FeeRuleType.TURNOVER_STEPS,
        FeeScheduleInput(
            steps=[StepRow(1_000_000, 7_700_00), StepRow(5_000_000, 9_000_00), StepRow(None, 12_000_00)],
            pro_rata=_rows(),
            group_discount_percent=10,
        ),
        actor=None,
    )
    stored = (dict(schedule.rule), list(schedule.pro_rata), schedule.group_discount_percent)
    data = {
        "csrf_token": _token(client),
        **_step_rows([("1 000 000", "7 700"), ("5 000 000", "9 000"), ("", "12 000")]),
        **_pro_rata_rows(),
        "group_discount": "10",
        **change,
    }
    response = client.post(_edit_url(schedule), data=data)
    assert response.status_code == 200
    html = response.text
    assert message in html
    # the message sits under the field at fault, which is marked invalid and points to it
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="{field}"', html), html
    assert f'id="{field}-errors"' in html
    db.session.refresh(schedule)
    assert (schedule.rule, schedule.pro_rata, schedule.group_discount_percent) == stored
    assert _audits("members.fees.schedule_updated") == []


def test_a_schedule_emptied_of_rows_is_refused(client, coordinator, schedules):
    company = schedules["company"]
    data = {"csrf_token": _token(client), **_step_rows([]), **_pro_rata_rows(())}
    html = client.post(_edit_url(company), data=data).text
    assert "Skriv inn minst ett omsetningstrinn." in html
    db.session.refresh(company)
    assert company.rule == {"steps": company_steps()}


# --- the service's rules, without the page --------------------------------------------------------------


def _per_inhabitant(**changes) -> FeeScheduleInput:
    values = {"rate_ore": 118, "min_ore": 25_700_00, "max_ore": 99_600_00, "pro_rata": _rows()}
    return FeeScheduleInput(**(values | changes))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_ore": 100_000_00}, "minimum"),
        ({"rate_ore": 0}, "rate"),
        ({"rate_ore": None}, "rate"),
        ({"max_ore": None}, "maximum"),
        ({"pro_rata": []}, "pro_rata"),
        ({"pro_rata": [ProRataRow(day=29, month=2, percent=50)]}, "pro_rata.0.date"),
        ({"pro_rata": [ProRataRow(day=1, month=7, percent=None)]}, "pro_rata.0.percent"),
        ({"group_discount_percent": -1}, "group_discount"),
    ],
)
def test_per_inhabitant_rules(schedules, changes, field):
    with pytest.raises(DomainError) as refused:
        update_fee_schedule(schedules["municipality"], _per_inhabitant(**changes), actor=None)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([], "groups"),
        ([GroupRow("A", 1_000, None, 100_00), GroupRow("B", 5_000, None, 200_00)], "groups.1.max_turnover"),
        ([GroupRow("A", None, None, 100_00), GroupRow("B", None, None, 200_00)], "groups.0.max_turnover"),
        ([GroupRow("A", None, 5, 100_00), GroupRow("a", None, None, 200_00)], "groups.1.name"),
        ([GroupRow("", None, 5, 100_00), GroupRow("B", None, None, 200_00)], "groups.0.name"),
        ([GroupRow("A", -1, None, 100_00), GroupRow("B", None, None, 200_00)], "groups.0.max_turnover"),
        ([GroupRow("A", None, 5, None), GroupRow("B", None, None, 200_00)], "groups.0.fee"),
    ],
)
def test_payment_group_rules(schedules, rows, field):
    with pytest.raises(DomainError) as refused:
        update_fee_schedule(schedules["organisation"], FeeScheduleInput(groups=rows, pro_rata=_rows()), actor=None)
    assert refused.value.field == field


# --- creating --------------------------------------------------------------------------------------------


def test_a_missing_schedule_is_created_from_the_page(client, coordinator, schedules):
    county = ensure_categories()["county"]
    url = f"{FEES}/2027/{county.id}"
    page = client.get(url).text
    assert "Nye kontingentsatser for Fylkeskommune, 2027" in page
    assert 'name="rate"' in page  # the category's latest schedule is per inhabitant
    page = client.get(url + "?rule_type=payment_groups").text
    assert 'name="groups-0-name"' in page and 'name="rate"' not in page
    data = {
        "csrf_token": _token(client),
        "rate": "0,61",
        "minimum": "26 400",
        "maximum": "102 100",
        "group_discount": "0",
        **_pro_rata_rows(),
    }
    response = client.post(url + "?rule_type=per_inhabitant", data=data)
    assert response.status_code == 302
    created = db.session.scalar(select(FeeSchedule).where(FeeSchedule.year == 2027))
    assert created.category_id == county.id and created.rule_type is FeeRuleType.PER_INHABITANT
    assert created.rule == {"rate_ore": 61, "min_ore": 26_400_00, "max_ore": 102_100_00}
    assert created.pro_rata == [[7, 1, 50], [10, 1, 25]]
    (entry,) = _audits("members.fees.schedule_created")
    assert entry.details["year"] == 2027 and entry.details["after"]["rate_ore"] == 61
    from crm.audit.details import audit_details

    assert dict(audit_details(entry))["Etter"] == (
        "Sats per innbygger: 0,61\u00a0kr; Laveste kontingent: 26\u00a0400\u00a0kr; "
        "Høyeste kontingent: 102\u00a0100\u00a0kr; Forholdsmessig kontingent: 01.07: 50 %, 01.10: 25 %; "
        "Konsernrabatt: 0 %"
    )
    page = client.get(f"{FEES}?year=2027").text
    assert "0,61\u00a0kr" in page and page.count("Ingen kontingentsatser for 2027.") == len(ensure_categories()) - 1


def test_creating_refuses_a_second_schedule_and_bad_input(client, coordinator, schedules):
    county = ensure_categories()["county"]
    with pytest.raises(DomainError):
        create_fee_schedule(YEAR, county, FeeRuleType.PER_INHABITANT, _per_inhabitant(), actor=None)
    with pytest.raises(DomainError):
        create_fee_schedule(2101, county, FeeRuleType.PER_INHABITANT, _per_inhabitant(), actor=None)
    url = f"{FEES}/2027/{county.id}?rule_type=per_inhabitant"
    data = {"csrf_token": _token(client), "rate": "", "minimum": "1", "maximum": "2", **_pro_rata_rows()}
    html = client.post(url, data=data).text
    assert "Skriv inn satsen per innbygger." in html
    assert db.session.scalar(select(func.count()).select_from(FeeSchedule).where(FeeSchedule.year == 2027)) == 0
    assert _audits("members.fees.schedule_created") == []


# --- copying a year --------------------------------------------------------------------------------------


def test_copying_a_year_with_an_index_from_the_page(client, coordinator, schedules):
    data = {"csrf_token": _token(client), "index_percent": "3,5"}
    response = client.post(f"{FEES}/{YEAR}/copy", data=data, follow_redirects=True)
    assert "5 kontingentsatser ble kopiert fra 2026 til 2027 med en indeks på 3,5 %." in response.text
    assert "Kontingentsatser 2027" in response.text
    county = schedules["county"].category_id
    copied = db.session.scalar(select(FeeSchedule).filter_by(year=YEAR + 1, category_id=county))
    assert copied.rule["rate_ore"] == 61  # 59 øre × 1.035, rounded to whole øre
    (entry,) = _audits("members.fees.copied")
    assert entry.details == {"from": YEAR, "to": YEAR + 1, "index_percent": "3.5"}
    assert entry.actor_id == coordinator.id


def test_copying_refuses_when_the_next_year_has_schedules_and_changes_nothing(client, coordinator, schedules):
    seed_fee_schedules(YEAR + 1)
    db.session.commit()
    page = client.get(FEES).text
    assert "2027 har allerede kontingentsatser" in page
    before = db.session.scalars(select(FeeSchedule.rule).where(FeeSchedule.year == YEAR + 1)).all()
    data = {"csrf_token": _token(client), "index_percent": "10"}
    response = client.post(f"{FEES}/{YEAR}/copy", data=data, follow_redirects=True)
    assert "Kontingentsatser for 2027 finnes allerede." in response.text
    assert db.session.scalars(select(FeeSchedule.rule).where(FeeSchedule.year == YEAR + 1)).all() == before
    assert _audits("members.fees.copied") == []


@pytest.mark.parametrize(("index", "message"), [("tre", "Skriv inn en prosentsats"), ("", "Dette feltet")])
def test_copying_refuses_a_bad_index(client, coordinator, schedules, index, message):
    data = {"csrf_token": _token(client), "index_percent": index}
    response = client.post(f"{FEES}/{YEAR}/copy", data=data, follow_redirects=True)
    assert message in response.text
    assert db.session.scalar(select(func.count()).select_from(FeeSchedule).where(FeeSchedule.year == YEAR + 1)) == 0


def test_the_index_field_reads_a_decimal_comma(app):
    from crm.members.fee_forms import CopyFeeYearForm

    with app.test_request_context(method="POST", data={"index_percent": "−2,25"}):
        form = CopyFeeYearForm(meta={"csrf": False})
        assert form.validate() and form.index_percent.data == Decimal("-2.25")


# --- the turn of the year ----------------------------------------------------------------------------------


def test_a_new_year_without_schedules_offers_to_copy_the_previous_year_at_the_top(client, coordinator, schedules):
    page = client.get(f"{FEES}?year={YEAR + 1}").text
    offer = page.split('id="fee-rollover"', 1)[1].split("</section>", 1)[0]
    assert page.index('id="fee-rollover"') < page.index('id="category-')  # above the categories, not below
    assert "2027 har ingen kontingentsatser ennå" in offer
    assert f'action="{FEES}/{YEAR}/copy"' in offer and "Kopier 2026 til 2027" in offer
    assert 'name="next"' not in offer

    data = {"csrf_token": _token(client), "index_percent": "4"}
    response = client.post(f"{FEES}/{YEAR}/copy", data=data)
    assert response.headers["Location"].endswith(f"{FEES}?year={YEAR + 1}")
    assert db.session.scalar(select(func.count()).select_from(FeeSchedule).filter_by(year=YEAR + 1)) == 5
    assert 'id="fee-rollover"' not in client.get(f"{FEES}?year={YEAR + 1}").text  # done: nothing more to offer


def test_the_previous_years_page_links_to_its_copy_form_and_older_gaps_offer_nothing(client, coordinator, schedules):
    page = client.get(f"{FEES}?year={YEAR}").text
    assert '<a href="#copy-title">Kopier 2026 til 2027 med en indeks</a>' in page
    assert 'id="fee-rollover"' not in client.get(f"{FEES}?year={YEAR + 2}").text  # 2027 must be made first


def test_the_copy_returns_only_to_a_page_of_this_site(client, coordinator, schedules):
    data = {"csrf_token": _token(client), "index_percent": "4", "next": "//evil.example/"}
    response = client.post(f"{FEES}/{YEAR}/copy", data=data)
    assert response.headers["Location"].endswith(f"{FEES}?year={YEAR + 1}")
