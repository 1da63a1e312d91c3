"""Portal logins: the invitation on activation, colleagues invited by the main contact, and the portal
closing when the membership ends."""

import re
from datetime import date

import pytest
from sqlalchemy import select

from crm.auth import reset
from crm.auth.access import declared_access
from crm.auth.models import Role
from crm.auth.passwords import verify_password
from crm.auth.services import find_user_by_email
from crm.errors import DomainError
from crm.extensions import db
from crm.mail.models import OutboxMessage
from crm.members.models import Contact, ContactRole, MembershipStatus
from crm.members.services import change_membership_status, ensure_portal_user, invite_to_portal
from tests.factories import make_contact, make_member_user, make_organisation, make_staff, make_user
from tests.helpers import csrf_token, delivered_link, login

S = MembershipStatus
NEW_PASSWORD = "blåbær-på-fjellet-i-august-7"


def _outbox(template="members_portal_invitation"):
    return db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id)
    ).all()


def _link(app, smtp_server) -> str:
    """The invitation link as it reached the mail server (the outbox row holds none)."""
    return delivered_link(app, smtp_server, "/auth/invitation/")


def _activate(org, actor=None):
    return change_membership_status(org.membership, S.ACTIVE, actor=actor, on_date=date(2026, 3, 5))


# --- the invitation on activation ---------------------------------------------------------------------------


def test_activation_invites_the_main_contact_with_a_single_use_link(app, client, smtp_server):
    coordinator = make_staff(Role.COORDINATOR)
    org = make_organisation(name="Fjordmat AS", status=S.BOARD_REVIEW)
    main = make_contact(org, roles=[ContactRole.MAIN_CONTACT], name="Kari Nordmann", email="kari@fjordmat.example")
    make_contact(org, roles=[ContactRole.INVOICE_CONTACT], email="faktura@fjordmat.example")

    event = _activate(org, actor=coordinator)

    assert event.invited == [main]
    user = main.user
    assert user is not None and user.email == "kari@fjordmat.example" and user.full_name == "Kari Nordmann"
    assert user.roles == {Role.MEMBER} and user.password_hash is None
    assert find_user_by_email("faktura@fjordmat.example") is None  # only the main contact
    [message] = _outbox()
    assert message.to_address == "kari@fjordmat.example" and message.recipient_user_id == user.id
    assert message.subject == "Din tilgang til medlemsportalen til Etisk handel Norge"
    assert "Fjordmat AS er medlem av Etisk handel Norge" in message.body_text
    assert "7 dager" in message.body_text and "én gang" in message.body_text
    assert "/auth/invitation/" not in message.body_text + message.body_html

    link = _link(app, smtp_server)
    page = client.get(link)
    assert page.status_code == 200 and "Logg deretter inn med e-postadressen din" in page.text
    assert "tofaktor" not in page.text  # members log in without a second factor
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client)}
    assert client.post(link, data=data).status_code == 302
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert client.get(link).status_code == 400  # single use

    login(client, user, password=NEW_PASSWORD)
    portal = client.get("/portal/organisation/")
    assert portal.status_code == 200 and "Fjordmat AS" in portal.text


def test_the_invitation_link_expires_after_seven_days(app, smtp_server):
    assert app.config["INVITATION_MAX_AGE_SECONDS"] == 7 * 24 * 3600
    org = make_organisation(status=S.BOARD_REVIEW)
    make_contact(org, roles=[ContactRole.MAIN_CONTACT])
    _activate(org)
    token = _link(app, smtp_server).rsplit("/", 1)[1]
    assert reset.user_for_password_token(token, reset.INVITATION) is not None
    assert reset.user_for_password_token(token, reset.RESET) is None  # an invitation is no reset link


def test_activation_by_a_staff_member_tells_who_was_invited(client):
    org = make_organisation(status=S.BOARD_REVIEW)
    make_contact(org, roles=[ContactRole.MAIN_CONTACT], name="Kari Nordmann")
    login(client, make_staff(Role.COORDINATOR))
    response = client.post(
        f"/staff/members/{org.id}/status",
        data={"csrf_token": csrf_token(client), "to_status": "active", "on_date": "2026-03-05", "reason": "Styret"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "En invitasjon til portalen er sendt på e-post til Kari Nordmann." in response.text
    assert len(_outbox()) == 1


def test_an_existing_login_is_linked_and_not_invited_again():
    user = make_user(email="per@example.no")  # has a password already
    org = make_organisation(status=S.BOARD_REVIEW)
    main = make_contact(org, roles=[ContactRole.MAIN_CONTACT], email="per@example.no")
    event = _activate(org)
    assert main.user_id == user.id and event.invited == []
    assert _outbox() == []


def test_a_login_moves_from_a_contact_who_has_left():
    user = make_user(email="ola@example.no", password=None)
    old = make_contact(make_organisation(status=S.ENDED), email="ola@example.no", user_id=user.id, is_active=False)
    org = make_organisation(status=S.BOARD_REVIEW)
    new = make_contact(org, roles=[ContactRole.MAIN_CONTACT], email="ola@example.no")
    _activate(org)
    assert new.user_id == user.id and old.user_id is None
    assert len(_outbox()) == 1


def test_staff_logins_and_contacts_without_email_are_skipped_and_the_activation_stands():
    make_staff(Role.ADVISER, email="radgiver@etiskhandel.example")
    org = make_organisation(status=S.BOARD_REVIEW)
    staffish = make_contact(org, roles=[ContactRole.MAIN_CONTACT], email="radgiver@etiskhandel.example")
    silent = make_contact(org, roles=[ContactRole.MAIN_CONTACT], email=None)
    event = _activate(org)
    assert org.membership.status is S.ACTIVE and event.invited == []
    assert staffish.user_id is None and silent.user_id is None
    assert _outbox() == []
    with pytest.raises(DomainError):
        ensure_portal_user(staffish, actor=None)


def test_withdrawn_notice_and_demo_data_send_no_invitation():
    org = make_organisation(status=S.NOTICE_GIVEN)
    make_contact(org, roles=[ContactRole.MAIN_CONTACT])
    change_membership_status(org.membership, S.ACTIVE, actor=None, reason="Trakk oppsigelsen")
    other = make_organisation(status=S.BOARD_REVIEW)
    make_contact(other, roles=[ContactRole.MAIN_CONTACT])
    change_membership_status(other.membership, S.ACTIVE, actor=None, side_effects=False)
    assert _outbox() == []


def test_inviting_a_contact_whose_login_has_a_password_sends_nothing():
    user = make_member_user()
    contact = db.session.scalar(select(Contact).where(Contact.user_id == user.id))
    assert invite_to_portal(contact, actor=None) is False
    assert _outbox() == []


# --- the main contact invites colleagues ----------------------------------------------------------------------


@pytest.fixture
def alfa():
    org = make_organisation(name="Alfa AS", status=S.ACTIVE)
    main_user = make_member_user(organisation=org, full_name="Anne Hoved")
    plain_user = make_member_user(organisation=org, full_name="Per Vanlig", contact_roles=[ContactRole.TEAM_MEMBER])
    db.session.commit()
    return org, main_user, plain_user


def test_main_contact_invites_a_colleague(client, alfa):
    org, main_user, _plain = alfa
    other = make_organisation(name="Beta AS", status=S.ACTIVE)
    db.session.commit()
    login(client, main_user)
    assert client.get("/portal/organisation/contacts/new").status_code == 200
    response = client.post(
        "/portal/organisation/contacts/new",
        data={
            "csrf_token": csrf_token(client),
            "name": "Nina Ny",
            "email": "Nina@Alfa.example",
            "roles": ["purchaser"],
            # not the portal's to set:
            "organisation_id": str(other.id),
            "is_active": "n",
            "user_id": str(main_user.id),
        },
    )
    assert response.status_code == 302
    contact = db.session.scalar(select(Contact).where(Contact.email == "nina@alfa.example"))
    assert contact.organisation_id == org.id and contact.is_active
    assert contact.roles == {ContactRole.PURCHASER}
    assert contact.user is not None and contact.user.roles == {Role.MEMBER} and contact.user_id != main_user.id
    [message] = _outbox()
    assert message.to_address == "nina@alfa.example" and "Alfa AS" in message.body_text
    page = client.get("/portal/organisation/").text
    assert "Nina Ny er lagt til og har fått en invitasjon til portalen på e-post." in page


def test_an_address_in_use_elsewhere_is_refused_without_naming_anyone(client, alfa):
    _org, main_user, _plain = alfa
    beta = make_organisation(name="Beta AS", status=S.ACTIVE)
    make_contact(beta, name="Bente Beta", email="bente@beta.example")
    db.session.commit()
    login(client, main_user)
    before = db.session.scalar(select(db.func.count(Contact.id)))
    response = client.post(
        "/portal/organisation/contacts/new",
        data={"csrf_token": csrf_token(client), "name": "Bente", "email": "bente@beta.example"},
    )
    assert response.status_code == 400
    assert "allerede registrert på en kontaktperson" in response.text
    assert "Bente Beta" not in response.text and "Beta AS" not in response.text
    assert db.session.scalar(select(db.func.count(Contact.id))) == before
    assert _outbox() == []


def test_a_staff_login_cannot_be_invited_from_the_portal(client, alfa):
    _org, main_user, _plain = alfa
    make_staff(Role.ADMIN, email="sjef@etiskhandel.example")
    db.session.commit()
    login(client, main_user)
    response = client.post(
        "/portal/organisation/contacts/new",
        data={"csrf_token": csrf_token(client), "name": "Sjefen", "email": "sjef@etiskhandel.example"},
    )
    assert response.status_code == 400
    assert db.session.scalar(select(Contact).where(Contact.email == "sjef@etiskhandel.example")) is None
    assert find_user_by_email("sjef@etiskhandel.example").roles == {Role.ADMIN}


def test_ordinary_contacts_cannot_invite(client, alfa):
    _org, _main, plain_user = alfa
    login(client, plain_user)
    assert client.get("/portal/organisation/contacts/new").status_code == 403
    response = client.post(
        "/portal/organisation/contacts/new",
        data={"csrf_token": csrf_token(client), "name": "Nina Ny", "email": "nina@alfa.example"},
    )
    assert response.status_code == 403
    assert db.session.scalar(select(Contact).where(Contact.email == "nina@alfa.example")) is None
    assert "Inviter en kollega" not in client.get("/portal/organisation/").text


# --- access ends with the membership, on every portal page ---------------------------------------------------


def _portal_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/portal")]


def test_every_portal_page_is_for_members(app):
    rules = _portal_rules(app)
    assert len(rules) >= 5
    assert {rule.rule: declared_access(app.view_functions[rule.endpoint]) for rule in rules} == {
        rule.rule: "member" for rule in rules
    }


@pytest.mark.parametrize(
    ("status", "left", "message"),
    [
        (S.ENDED, False, "Medlemskapet til Alfa AS er ikke aktivt, så medlemsportalen er stengt."),
        (S.EXCLUDED, False, "Medlemskapet til Alfa AS er ikke aktivt, så medlemsportalen er stengt."),
        (S.ACTIVE, True, "Du er registrert som sluttet i Alfa AS, så medlemsportalen er stengt for deg."),
    ],
)
def test_every_portal_page_closes_when_the_membership_ends(app, client, alfa, monkeypatch, status, left, message):
    org, main_user, _plain = alfa
    login(client, main_user)
    assert client.get("/portal/").status_code == 200
    org.membership.status = status
    if left:
        db.session.scalar(select(Contact).where(Contact.user_id == main_user.id)).is_active = False
    db.session.commit()
    # A bare POST would meet the CSRF check first; the access check must answer on its own.
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    contact_id = db.session.scalar(select(Contact.id).where(Contact.user_id == main_user.id))
    wrong = []
    for rule in _portal_rules(app):
        url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", str(contact_id), rule.rule)
        for method in sorted(rule.methods & {"GET", "POST"}):
            response = client.open(url, method=method, data={"name": "Endret"})
            if response.status_code != 403 or message not in response.text:
                wrong.append(f"{method} {url} -> {response.status_code}")
    assert wrong == []
    db.session.expire_all()
    assert db.session.get(Contact, contact_id).name == "Anne Hoved"
    assert org.name == "Alfa AS"


def test_a_member_login_without_an_organisation_gets_the_closed_page(client):
    login(client, make_user(roles={Role.MEMBER}))
    response = client.get("/portal/")
    assert response.status_code == 403
    assert "Innloggingen din er ikke knyttet til en medlemsvirksomhet." in response.text


def test_notice_given_keeps_the_portal_open(client, alfa):
    org, main_user, _plain = alfa
    org.membership.status = S.NOTICE_GIVEN
    db.session.commit()
    login(client, main_user)
    assert client.get("/portal/organisation/").status_code == 200


# --- staff send (or resend) an invitation from the contact page ---------------------------------------------


def test_staff_send_a_portal_invitation_from_the_contact_page(client):
    org = make_organisation(name="Gamma AS", status=S.ACTIVE)
    contact = make_contact(org, roles=[ContactRole.PURCHASER], name="Guri Gamma", email="guri@gamma.example")
    login(client, make_staff(Role.ADVISER))
    page = client.get(f"/staff/members/contacts/{contact.id}/edit").text
    assert "Har ikke innlogging til portalen ennå." in page and "Send invitasjon til portalen" in page
    response = client.post(
        f"/staff/members/contacts/{contact.id}/invite", data={"csrf_token": csrf_token(client)}, follow_redirects=True
    )
    assert "En invitasjon til portalen er sendt på e-post til Guri Gamma." in response.text
    assert "Invitert, men har ikke valgt passord ennå." in response.text
    assert contact.user.email == "guri@gamma.example" and len(_outbox()) == 1
    client.post(f"/staff/members/contacts/{contact.id}/invite", data={"csrf_token": csrf_token(client)})
    assert len(_outbox()) == 2  # a new link (the first still works until a password is chosen)


@pytest.mark.parametrize("status", [S.APPLIED, S.ENDED])
def test_no_portal_invitation_for_non_members(client, status):
    contact = make_contact(make_organisation(status=status), email="nei@example.no")
    login(client, make_staff(Role.COORDINATOR))
    assert "Send invitasjon til portalen" not in client.get(f"/staff/members/contacts/{contact.id}/edit").text
    response = client.post(
        f"/staff/members/contacts/{contact.id}/invite", data={"csrf_token": csrf_token(client)}, follow_redirects=True
    )
    assert "Bare personer hos medlemmer med aktivt medlemskap kan bruke portalen." in response.text
    assert _outbox() == [] and find_user_by_email("nei@example.no") is None


def test_finance_staff_and_members_cannot_send_invitations(client):
    contact = make_contact(make_organisation(status=S.ACTIVE))
    login(client, make_staff(Role.FINANCE))
    response = client.post(f"/staff/members/contacts/{contact.id}/invite", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 403 and _outbox() == []
