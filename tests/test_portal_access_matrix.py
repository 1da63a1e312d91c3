"""The portal's access matrix, generic over ``app.url_map``: member A against every portal URL filled with
member B's object ids (GET and POST) gets 403 or 404 and changes nothing of B's; on A's own pages, fields
the portal does not offer (roles of the login, status, fee, organisation) are ignored.

A portal route with an id argument not listed in ``B_IDS`` fails the test: say which of B's objects it
takes, so that new portal pages are checked too.
"""

import io
import re

import pytest
from sqlalchemy import select

from crm.advisory.attachments import store_attachment
from crm.auth.models import Role, User
from crm.extensions import db
from crm.members.models import Contact, ContactRole, Membership, MembershipStatus, Organisation
from tests.factories import make_case, make_contact, make_member_user, make_organisation, make_staff
from tests.helpers import csrf_token, login

S = MembershipStatus
ARGUMENT = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


@pytest.fixture
def world():
    adviser = make_staff(Role.ADVISER)
    a = make_organisation(name="Alfa AS", status=S.ACTIVE, website="https://alfa.example")
    b = make_organisation(name="Beta AS", status=S.ACTIVE, website="https://beta.example")
    b.membership.adviser = adviser
    a_main = make_member_user(organisation=a, full_name="Anne Alfa")
    make_member_user(organisation=a, full_name="Arne Alfa", contact_roles=[ContactRole.TEAM_MEMBER])
    make_member_user(organisation=b, full_name="Bente Beta")
    b_plain = make_member_user(organisation=b, full_name="Bjørn Beta", contact_roles=[ContactRole.TEAM_MEMBER])
    b_left = make_contact(b, name="Berit Borte", is_active=False)
    db.session.commit()
    b_plain_contact = db.session.scalar(select(Contact).where(Contact.user_id == b_plain.id))
    b_case = make_case(b, requester=b_plain_contact, actor=b_plain)
    b_file = store_attachment(b_case, filename="b.pdf", stream=io.BytesIO(b"%PDF-1.4 beta"), actor=b_plain)
    db.session.commit()
    b_contacts = db.session.scalars(select(Contact.id).where(Contact.organisation_id == b.id)).all()
    return {
        "a": a,
        "b": b,
        "a_main": a_main,
        "b_plain": b_plain,
        "b_contacts": b_contacts,
        "b_left": b_left,
        "b_case": b_case.id,
        "b_file": b_file.id,
    }


# Which of member B's object ids each URL argument takes.
B_IDS = {
    "contact_id": lambda w: w["b_contacts"],
    "organisation_id": lambda w: [w["b"].id],
    "membership_id": lambda w: [w["b"].membership.id],
    "user_id": lambda w: [w["b_plain"].id],
    "case_id": lambda w: [w["b_case"]],
    "attachment_id": lambda w: [w["b_file"]],
}

HOSTILE_FORM = {
    "name": "Overtatt",
    "title": "Sjef",
    "email": "overtatt@example.no",
    "phone": "22334455",
    "website": "https://overtatt.example",
    "roles": ["main_contact", "manager"],
    "role": "admin",
    "status": "excluded",
    "to_status": "excluded",
    "fee_override_ore": "0",
    "amount_nok": "0",
    "is_active": "n",
    "newsletter_consent": "y",
}


def _portal_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/portal")]


def _snapshot_of(organisation_id: int) -> dict:
    """Every stored value of the organisation, its membership, contacts (with roles) and their logins."""
    db.session.expire_all()

    def row(obj):
        return {column.key: getattr(obj, column.key) for column in obj.__table__.columns}

    organisation = db.session.get(Organisation, organisation_id)
    membership = db.session.scalar(select(Membership).where(Membership.organisation_id == organisation_id))
    contacts = db.session.scalars(select(Contact).where(Contact.organisation_id == organisation_id)).all()
    users = db.session.scalars(select(User).where(User.id.in_([c.user_id for c in contacts if c.user_id]))).all()
    return {
        "organisation": row(organisation),
        "membership": row(membership),
        "contacts": {c.id: (row(c), sorted(r.value for r in c.roles)) for c in contacts},
        "users": {u.id: (row(u), sorted(r.value for r in u.roles)) for u in users},
    }


def _urls_with_b_ids(rule, world) -> list[str]:
    arguments = ARGUMENT.findall(rule.rule)
    missing = [name for _converter, name in arguments if name not in B_IDS]
    assert not missing, f"{rule.rule}: say which of member B's objects {missing} take (B_IDS)"
    urls = [rule.rule]
    for _converter, name in arguments:
        urls = [
            re.sub(rf"<(?:[^:<>]+:)?{name}>", str(value), url, count=1) for url in urls for value in B_IDS[name](world)
        ]
    return urls


def test_member_a_gets_nothing_of_member_b_on_any_portal_url(app, client, world):
    login(client, world["a_main"])
    token = csrf_token(client)
    b_before = _snapshot_of(world["b"].id)
    checked, wrong = 0, []
    for rule in _portal_rules(app):
        if not ARGUMENT.search(rule.rule):
            continue
        for url in _urls_with_b_ids(rule, world):
            for method in ("GET", "POST"):
                response = client.open(url, method=method, data={"csrf_token": token, **HOSTILE_FORM})
                checked += 1
                allowed = {403, 404, 405}
                if response.status_code not in allowed or "Beta" in response.text:
                    wrong.append(f"{method} {url} -> {response.status_code}")
    assert checked >= 2 * 2 * len(world["b_contacts"])
    assert wrong == []
    assert _snapshot_of(world["b"].id) == b_before


def test_member_a_own_pages_ignore_fields_the_portal_does_not_offer(app, client, world):
    """Every id-free portal page, posted with B's ids and staff-only fields: B is untouched, and A's
    membership, fee and logins keep what staff set."""
    login(client, world["a_main"])
    token = csrf_token(client)
    a, b = world["a"], world["b"]
    b_before = _snapshot_of(b.id)
    a_membership_before = _snapshot_of(a.id)["membership"]
    a_logins_before = {uid: roles for uid, (_row, roles) in _snapshot_of(a.id)["users"].items()}
    b_contact = world["b_contacts"][0]
    posted = 0
    for rule in _portal_rules(app):
        if ARGUMENT.search(rule.rule) or "POST" not in rule.methods:
            continue
        data = {
            "csrf_token": token,
            **HOSTILE_FORM,
            "organisation_id": str(b.id),
            "contact_id": str(b_contact),
            "membership_id": str(b.membership.id),
            "user_id": str(world["b_plain"].id),
        }
        response = client.post(rule.rule, data=data)
        posted += 1
        assert response.status_code in (200, 302, 400, 403), f"POST {rule.rule} -> {response.status_code}"
    assert posted >= 2  # the profile form and the invitation form at least
    after = _snapshot_of(a.id)
    assert after["membership"] == a_membership_before  # status, fee override, category, adviser
    assert after["organisation"]["name"] == "Alfa AS" and after["organisation"]["orgnr"] == a.orgnr
    for user_id, roles in a_logins_before.items():
        assert after["users"][user_id][1] == roles == ["member"]
    assert _snapshot_of(b.id) == b_before
    # The hostile invitation landed at A (the portal's own organisation), never at B.
    invited = db.session.scalar(select(Contact).where(Contact.email == "overtatt@example.no"))
    assert invited is None or invited.organisation_id == a.id
