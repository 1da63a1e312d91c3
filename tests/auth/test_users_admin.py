"""Administrators manage staff users: services, then the /staff/users pages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth import mfa, services
from crm.auth.models import Role, User
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.mail.models import OutboxMessage
from tests.factories import make_staff, make_user
from tests.helpers import csrf_token, login


def _last_action() -> AuditEntry:
    return db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()


# --- services ---------------------------------------------------------------------------------


def test_create_staff_user_invites_and_audits():
    admin = make_staff(Role.ADMIN)
    user = services.create_staff_user(
        email=" Nina@Example.no", full_name="Nina Ny", roles={Role.ADVISER, Role.FINANCE}, actor=admin
    )
    assert user.email == "nina@example.no"
    assert user.password_hash is None
    assert user.roles == {Role.ADVISER, Role.FINANCE}
    assert db.session.scalars(select(OutboxMessage.template)).all() == ["invitation"]
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["auth.user.created", "auth.user.invited"]


@pytest.mark.parametrize(
    ("email", "name", "roles", "error"),
    [
        ("taken@example.no", "Navn", {Role.ADVISER}, Conflict),
        ("ikke-en-adresse", "Navn", {Role.ADVISER}, DomainError),
        ("ny@example.no", "  ", {Role.ADVISER}, DomainError),
        ("ny@example.no", "Navn", set(), DomainError),
        ("ny@example.no", "Navn", {Role.MEMBER}, DomainError),
    ],
)
def test_create_staff_user_refuses_bad_input(email, name, roles, error):
    admin = make_staff(Role.ADMIN)
    make_user(email="taken@example.no")
    with pytest.raises(error):
        services.create_staff_user(email=email, full_name=name, roles=roles, actor=admin)
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_update_roles_audits_before_and_after():
    admin = make_staff(Role.ADMIN)
    user = make_staff(Role.ADVISER)
    services.update_staff_roles(user, {Role.COORDINATOR, Role.FINANCE}, actor=admin)
    db.session.expire(user)
    assert user.roles == {Role.COORDINATOR, Role.FINANCE}
    entry = _last_action()
    assert entry.action == "auth.user.roles_changed"
    assert entry.details == {"before": ["adviser"], "after": ["coordinator", "finance"]}


def test_update_roles_keeps_a_member_role():
    admin = make_staff(Role.ADMIN)
    user = make_user(roles={Role.MEMBER, Role.ADVISER})
    services.update_staff_roles(user, {Role.FINANCE}, actor=admin)
    assert user.roles == {Role.MEMBER, Role.FINANCE}


def test_admin_cannot_remove_their_own_admin_role_or_disable_themselves():
    admin = make_staff(Role.ADMIN)
    with pytest.raises(DomainError):
        services.update_staff_roles(admin, {Role.ADVISER}, actor=admin)
    with pytest.raises(DomainError):
        services.set_user_enabled(admin, False, actor=admin)
    assert Role.ADMIN in admin.roles and admin.is_enabled


def test_users_query_searches_name_and_email():
    make_user(full_name="Kari Nordmann", email="kari@example.no")
    make_user(full_name="Ola Hansen", email="ola@firma.no")
    make_user(full_name="Pst_Prosent%", email="x@example.no")
    names = lambda q: [u.full_name for u in db.session.scalars(services.users_query(q))]  # noqa: E731
    assert names("nord") == ["Kari Nordmann"]
    assert names("FIRMA") == ["Ola Hansen"]
    assert names("%") == ["Pst_Prosent%"]
    assert names("_") == ["Pst_Prosent%"]
    assert len(names("")) == 3


# --- views ------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(app):
    admin = make_staff(Role.ADMIN, full_name="Anne Admin")
    with app.test_client() as client:
        login(client, admin)
        client.admin = admin
        yield client


@pytest.mark.parametrize("role", [Role.ADVISER, Role.COORDINATOR, Role.FINANCE])
def test_other_staff_get_403(client, role):
    login(client, make_staff(role))
    assert client.get("/staff/users/").status_code == 403
    assert "Brukere" not in client.get("/staff/").text


def test_admins_see_the_nav_entry_and_list(admin_client):
    make_user(full_name="Kari Nordmann")
    page = admin_client.get("/staff/users/")
    assert page.status_code == 200
    assert 'href="/staff/users/"' in admin_client.get("/staff/").text
    assert "Kari Nordmann" in page.text


def test_list_search_and_pagination(admin_client, app, monkeypatch):
    monkeypatch.setitem(app.config, "PER_PAGE", 2)
    for n in range(3):
        make_user(full_name=f"Søkbar {n}")
    page = admin_client.get("/staff/users/?q=søkbar")
    assert "Søkbar 0" in page.text and "Søkbar 1" in page.text and "Søkbar 2" not in page.text
    assert "Viser 1–2 av 3" in page.text
    page2 = admin_client.get("/staff/users/?q=søkbar&page=2")
    assert "Søkbar 2" in page2.text
    assert "Ingen brukere passer til søket." in admin_client.get("/staff/users/?q=finnesikke").text


def test_list_has_no_n_plus_one(admin_client, count_queries):
    for _ in range(10):
        make_user(roles={Role.ADVISER, Role.FINANCE})
    db.session.expire_all()
    with count_queries() as few:
        assert len(re.findall(r'href="/staff/users/\d+"', admin_client.get("/staff/users/").text)) == 11
    for _ in range(10):
        make_user(roles={Role.ADVISER})
    db.session.expire_all()
    with count_queries() as more:
        assert len(re.findall(r'href="/staff/users/\d+"', admin_client.get("/staff/users/").text)) == 21
    assert more.count == few.count


def test_create_staff_user_view(admin_client):
    data = {"full_name": "Nina Ny", "email": "nina@example.no", "roles": ["adviser", "finance"]}
    response = admin_client.post("/staff/users/new", data=data | {"csrf_token": csrf_token(admin_client)})
    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.email == "nina@example.no")).one()
    assert response.headers["Location"] == f"/staff/users/{user.id}"
    assert user.roles == {Role.ADVISER, Role.FINANCE}
    assert "invitasjon" in admin_client.get(response.headers["Location"]).text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"full_name": "X", "email": "taken@example.no", "roles": ["adviser"]}, "finnes allerede"),
        ({"full_name": "X", "email": "ny@example.no"}, "Velg minst én rolle"),
        ({"full_name": "X", "email": "ny@example.no", "roles": ["member"]}, "Bare ansattroller kan gis her."),
        ({"full_name": "X", "email": "ny@example.no", "roles": ["nonsense"]}, "Velg minst én rolle"),
    ],
)
def test_create_staff_user_view_refuses_bad_input(admin_client, data, message):
    make_user(email="taken@example.no")
    db.session.commit()  # the view rolls its session back on refusal, and the test shares that session
    before = db.session.scalars(select(User)).all()
    response = admin_client.post("/staff/users/new", data=data | {"csrf_token": csrf_token(admin_client)})
    assert response.status_code == 400
    assert message in response.text
    assert len(db.session.scalars(select(User)).all()) == len(before)


def test_a_roles_error_is_tied_to_the_role_choices(admin_client):
    response = admin_client.post(
        "/staff/users/new", data={"full_name": "X", "email": "ny@example.no", "csrf_token": csrf_token(admin_client)}
    )
    assert '<fieldset class="mb-3" aria-describedby="roles-errors">' in response.text
    assert re.search(r'<div class="invalid-feedback" id="roles-errors">Velg minst én rolle\.</div>', response.text)


def test_edit_roles_view(admin_client):
    user = make_staff(Role.ADVISER)
    assert admin_client.get(f"/staff/users/{user.id}").status_code == 200
    response = admin_client.post(
        f"/staff/users/{user.id}/roles", data={"roles": ["coordinator"], "csrf_token": csrf_token(admin_client)}
    )
    assert response.status_code == 302
    assert user.roles == {Role.COORDINATOR}
    assert _last_action().action == "auth.user.roles_changed"


def test_disable_and_enable_views(admin_client):
    user = make_user()
    admin_client.post(f"/staff/users/{user.id}/disable", data={"csrf_token": csrf_token(admin_client)})
    assert user.is_enabled is False
    assert _last_action().action == "auth.user.disabled"
    admin_client.post(f"/staff/users/{user.id}/enable", data={"csrf_token": csrf_token(admin_client)})
    assert user.is_enabled is True
    assert _last_action().action == "auth.user.enabled"


def test_admin_cannot_disable_themselves_in_the_view(admin_client):
    admin = admin_client.admin
    response = admin_client.post(f"/staff/users/{admin.id}/disable", data={"csrf_token": csrf_token(admin_client)})
    assert response.status_code == 302
    assert "Du kan ikke deaktivere din egen konto." in admin_client.get(response.headers["Location"]).text
    assert admin.is_enabled


def test_reset_mfa_view(admin_client, app):
    user = make_staff(Role.FINANCE)
    with app.test_client() as other:
        login(other, user)
    assert mfa.is_enrolled(user)
    response = admin_client.post(f"/staff/users/{user.id}/reset-mfa", data={"csrf_token": csrf_token(admin_client)})
    assert response.status_code == 302
    assert not mfa.is_enrolled(user)
    assert _last_action().action == "auth.user.mfa_reset"
    assert _last_action().actor_id == admin_client.admin.id


def test_unknown_user_is_404(admin_client):
    assert admin_client.get("/staff/users/999999").status_code == 404


def test_actions_need_csrf(admin_client):
    user = make_user()
    assert admin_client.post(f"/staff/users/{user.id}/disable").status_code == 400
    assert user.is_enabled


def test_resend_invitation(admin_client):
    invited = make_staff(Role.ADVISER, password=None)
    page = admin_client.get(f"/staff/users/{invited.id}")
    assert "Send invitasjonen på nytt" in page.text
    response = admin_client.post(f"/staff/users/{invited.id}/invite", data={"csrf_token": csrf_token(admin_client)})
    assert response.status_code == 302
    assert db.session.scalars(select(OutboxMessage.template)).all() == ["invitation"]
    assert _last_action().action == "auth.user.invited"


def test_no_invitation_for_users_with_a_password(admin_client):
    user = make_staff(Role.ADVISER)
    assert "Send invitasjonen på nytt" not in admin_client.get(f"/staff/users/{user.id}").text
    response = admin_client.post(f"/staff/users/{user.id}/invite", data={"csrf_token": csrf_token(admin_client)})
    assert "Bare aktive brukere" in admin_client.get(response.headers["Location"]).text
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_the_user_list_says_never_for_users_who_have_not_logged_in(client):
    login(client, make_staff(Role.ADMIN, email="admin@etiskhandel.example"))
    make_staff(Role.ADVISER, email="ny@etiskhandel.example", full_name="Ny Rådgiver")
    db.session.commit()
    page = client.get("/staff/users/").text
    row = page[page.index("Ny Rådgiver") :].split("</tr>")[0]
    assert "aldri" in row
