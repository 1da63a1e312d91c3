"""Every number a request carries is parsed within a range: huge, negative, zero and non-numeric values in
the query string of every staff and portal GET page (lists, exports, filters) and in every path id answer a
page or a 404, never a 5xx.

Generic on purpose: it walks ``app.url_map``, so pages that later features add are covered too.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from crm.auth.models import Role
from crm.extensions import db
from crm.members.models import Contact, MembershipStatus
from crm.members.panels import panels
from tests.factories import make_case, make_member_user, make_organisation, make_staff
from tests.helpers import login

ARGUMENT = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")

# Every query parameter some list, filter or export reads as a number (or as a date or an id).
NUMERIC_PARAMS = (
    "page", "per_page", "year", "category", "adviser", "sector", "template", "target_id", "from", "to",
    "date_from", "date_to",  # the audit log's dates: 9999-12-31 has no next day, 0001-01-01 no Oslo midnight
)  # fmt: skip
HOSTILE_VALUES = ("99999999999999999999", "-5", "0", "abc", "1e3", "²", "12.5", "", "9999-12-31", "0001-01-01")
STAFF_ROLES = (Role.ADMIN, Role.ADVISER, Role.COORDINATOR, Role.FINANCE)


@pytest.fixture
def world():
    organisation = make_organisation(name="Grense AS", status=MembershipStatus.ACTIVE, website="https://grense.example")
    member = make_member_user(organisation=organisation, full_name="Grete Grense")
    db.session.commit()
    contact = db.session.scalar(select(Contact).where(Contact.user_id == member.id))
    case = make_case(organisation, requester=contact, actor=member)
    staff = make_staff(*STAFF_ROLES, full_name="Stian Stab")
    db.session.commit()
    return {
        "member": member,
        "staff": staff,
        "ids": {
            "organisation_id": organisation.id,
            "case_id": case.id,
            "contact_id": contact.id,
            "user_id": member.id,
            "year": 2026,
            "fmt": "csv",
        },
    }


def _get_rules(app, prefix: str):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(prefix) and "GET" in rule.methods and rule.endpoint != "static"
    ]


def _filled(rule, ids: dict) -> str:
    return ARGUMENT.sub(lambda match: str(ids.get(match.group(2), 1)), rule.rule)


def _paths(app, prefix: str, ids: dict) -> list[str]:
    paths = [_filled(rule, ids) for rule in _get_rules(app, prefix)]
    if prefix == "/staff":
        # The organisation page's tabs read their own numbers (the fee tab's year); every tab is a list too.
        paths += [f"/staff/members/{ids['organisation_id']}?tab={panel.key}" for panel in panels()]
        paths += ["/staff/members/export.xlsx"]
    return paths


def _server_errors(client, paths: list[str]) -> list[str]:
    wrong = []
    for path in paths:
        joiner = "&" if "?" in path else "?"
        for value in HOSTILE_VALUES:
            for period in ("", "&period=paid"):  # the invoice list reads its dates as payment dates then
                query = "&".join(f"{name}={value}" for name in NUMERIC_PARAMS) + period
                response = client.get(f"{path}{joiner}{query}")
                if response.status_code >= 500:
                    wrong.append(f"GET {path}{joiner}{query} -> {response.status_code}")
        # One at a time too, so that one parameter refused early cannot hide another's failure.
        for name in NUMERIC_PARAMS:
            response = client.get(f"{path}{joiner}{name}={HOSTILE_VALUES[0]}")
            if response.status_code >= 500:
                wrong.append(f"GET {path}{joiner}{name}={HOSTILE_VALUES[0]} -> {response.status_code}")
    return wrong


def test_staff_lists_and_exports_survive_hostile_numbers(app, client, world):
    login(client, world["staff"])
    paths = _paths(app, "/staff", world["ids"])
    assert "/staff/billing/invoices" in paths and "/staff/billing/export.csv" in paths
    assert _server_errors(client, paths) == []


def test_portal_lists_and_exports_survive_hostile_numbers(app, client, world):
    login(client, world["member"])
    paths = _paths(app, "/portal", world["ids"])
    assert "/portal/invoices/" in paths
    assert _server_errors(client, paths) == []


@pytest.mark.parametrize("value", ["99999999999999999999", "2147483648"])
def test_a_huge_id_in_the_path_is_not_found(app, client, world, value):
    """Ids in paths are bounded by the URL converter: past the database's integer range is a 404."""
    login(client, world["staff"])
    wrong = []
    for rule in _get_rules(app, "/staff"):
        if not rule.arguments or "fmt" in rule.arguments:
            continue
        path = ARGUMENT.sub(value, rule.rule)
        response = client.get(path)
        if response.status_code != 404:
            wrong.append(f"GET {path} -> {response.status_code}")
    assert wrong == []


def test_the_invoice_list_ignores_a_year_out_of_range(client, world):
    login(client, world["staff"])
    response = client.get("/staff/billing/invoices?year=99999999999999999999")
    assert response.status_code == 200


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_date_field_of_every_form_is_bounded(app):
    """A date from a form is a number too: 9999-12-31 has no next day and 0001-01-01 no Oslo midnight, so a
    deadline, a period's end or a filter computed from one would answer 500. Every form's date field takes
    ``within_calendar``; walking the form classes keeps forms that later features add covered."""
    from flask_wtf import FlaskForm
    from wtforms import DateField
    from wtforms.fields.core import UnboundField

    from crm.forms import within_calendar

    unbounded = []
    for form in set(_all_subclasses(FlaskForm)):
        if not form.__module__.startswith("crm."):
            continue
        for name in dir(form):
            field = getattr(form, name, None)
            if isinstance(field, UnboundField) and issubclass(field.field_class, DateField):
                validators = field.kwargs.get("validators") or (field.args[1] if len(field.args) > 1 else ())
                if within_calendar not in validators:
                    unbounded.append(f"{form.__module__}.{form.__name__}.{name}")
    assert unbounded == []


def test_a_date_beyond_the_calendar_is_a_field_error_and_saves_nothing(client):
    from crm.advisory.models import CaseTimeEntry
    from tests.advisory.helpers import build_world
    from tests.helpers import form_values

    world = build_world()
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"])
    db.session.commit()
    login(client, world["adviser"])
    form = form_values(client.get(f"/staff/advisory/{case.id}").text, f"/staff/advisory/{case.id}/time")
    for day in ("9999-12-31", "0001-01-01"):
        form["time-minutes"], form["time-spent_on"] = "30", day
        response = client.post(f"/staff/advisory/{case.id}/time", data=form, follow_redirects=True)
        assert response.status_code < 500
        assert "Velg en dato mellom 2000 og 2100." in response.text
    assert db.session.scalar(select(CaseTimeEntry.id).where(CaseTimeEntry.case_id == case.id)) is None
