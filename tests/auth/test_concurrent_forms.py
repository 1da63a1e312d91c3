"""Staff user admin: a roles form opened before a colleague's change is refused with the current roles (a login
changes nothing there), and a new user sent twice is created and invited once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm.auth import services
from crm.auth.models import Role, User
from crm.errors import StaleEdit
from crm.extensions import db
from crm.mail.models import OutboxMessage
from tests.factories import make_staff
from tests.helpers import form_values, login

STALE = "Noen andre lagret dette etter at du åpnet skjemaet"


@pytest.fixture
def admin(client):
    user = make_staff(Role.ADMIN, full_name="Anne Admin")
    db.session.commit()
    login(client, user)
    return user


def _open(client, url: str, action: str | None = None):
    db.session.commit()  # keep the test's data when a refused request rolls the session back
    response = client.get(url)
    assert response.status_code == 200
    return form_values(response.text, action)


def test_roles_from_an_outdated_form_are_refused_with_the_current_roles(client, admin):
    user = make_staff(Role.ADVISER)
    action = f"/staff/users/{user.id}/roles"
    mine = _open(client, f"/staff/users/{user.id}", action)
    services.update_staff_roles(user, {Role.ADVISER, Role.FINANCE}, actor=admin, version=user.roles_version)
    db.session.commit()

    mine.setlist("roles", ["adviser", "coordinator"])
    response = client.post(action, data=mine)

    assert response.status_code == 409 and STALE in response.text
    again = form_values(response.text, action)
    assert sorted(again.getlist("roles")) == ["adviser", "finance"]  # the colleague's roles are ticked
    db.session.refresh(user)
    assert user.roles == {Role.ADVISER, Role.FINANCE}

    # the re-shown form is current: saving it works
    again.setlist("roles", ["adviser", "coordinator"])
    assert client.post(action, data=again).status_code == 302
    db.session.refresh(user)
    assert user.roles == {Role.ADVISER, Role.COORDINATOR}


def test_a_login_does_not_make_the_roles_form_outdated(app, client, admin):
    user = make_staff(Role.ADVISER)
    action = f"/staff/users/{user.id}/roles"
    mine = _open(client, f"/staff/users/{user.id}", action)
    login(app.test_client(), user)  # writes the user's row (last login, second factor)
    mine.setlist("roles", ["adviser", "finance"])
    assert client.post(action, data=mine).status_code == 302
    db.session.refresh(user)
    assert user.roles == {Role.ADVISER, Role.FINANCE}


def test_a_roles_save_that_loses_the_race_after_its_check_is_refused(admin):
    user = make_staff(Role.ADVISER)
    db.session.commit()
    # A concurrent request changes the roles after this one read the row (roles_version 1).
    db.session.execute(User.__table__.update().where(User.id == user.id).values(roles_version=2))
    with pytest.raises(StaleEdit):
        services.update_staff_roles(user, {Role.FINANCE}, actor=admin, version=1)


def test_new_user_sent_twice_is_created_and_invited_once(client, admin):
    form = _open(client, "/staff/users/new", "/staff/users/new")
    form["full_name"], form["email"] = "Nina Ny", "nina@example.no"
    form.setlist("roles", ["adviser"])
    responses = [client.post("/staff/users/new", data=form) for _ in range(2)]
    created = db.session.scalar(select(User).where(User.email == "nina@example.no"))
    assert [r.status_code for r in responses] == [302, 302]
    assert responses[0].location == responses[1].location == f"/staff/users/{created.id}"
    invitations = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.to_address == created.email)
    assert db.session.scalar(invitations) == 1
