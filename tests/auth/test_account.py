"""The account page: own password, language, MFA status."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth import mfa, services
from crm.auth.models import Role
from crm.auth.passwords import verify_password
from crm.errors import DomainError
from crm.extensions import db
from tests.factories import make_staff, make_user
from tests.helpers import DEFAULT_PASSWORD, csrf_token, login

NEW_PASSWORD = "fire-hvite-svaner-i-fjorden"


def test_change_password_checks_the_current_one():
    user = make_user()
    with pytest.raises(DomainError) as info:
        services.change_password(user, current_password="feil-passord-her", new_password=NEW_PASSWORD)
    assert info.value.field == "current_password"
    services.change_password(user, current_password=DEFAULT_PASSWORD, new_password=NEW_PASSWORD)
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert db.session.scalars(select(AuditEntry.action)).all() == ["auth.password.changed"]


def test_set_user_locale_refuses_unknown_languages():
    user = make_user()
    services.set_user_locale(user, "en", allowed={"nb", "en"})
    assert user.locale == "en"
    services.set_user_locale(user, None, allowed={"nb", "en"})
    assert user.locale is None
    with pytest.raises(DomainError):
        services.set_user_locale(user, "sv", allowed={"nb", "en"})


def test_account_page_needs_login(client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_account_page_shows_the_user(client):
    user = make_user(full_name="Kari Nordmann")
    login(client, user)
    page = client.get("/account")
    assert page.status_code == 200
    assert "Min konto" in page.text
    assert "Kari Nordmann" in page.text
    assert "Tofaktorinnlogging" not in page.text  # members have no second factor
    assert page.headers["Cache-Control"] == "no-store"


def test_staff_see_their_mfa_status(client):
    user = make_staff()
    login(client, user)
    assert mfa.is_enrolled(user)
    assert "Tofaktorinnlogging er på." in client.get("/account").text


def _change(client, current, new, confirm=None):
    data = {
        "current_password": current,
        "new_password": new,
        "confirm": new if confirm is None else confirm,
        "csrf_token": csrf_token(client),
    }
    return client.post("/account/password", data=data)


def test_change_password_view(client):
    user = make_user()
    login(client, user)
    response = _change(client, DEFAULT_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert "Passordet er endret" in client.get(response.headers["Location"]).text
    assert verify_password(user.password_hash, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("feil-passord-her", NEW_PASSWORD, None, "Nåværende passord er feil"),
        (DEFAULT_PASSWORD, "kort", None, "minst 12 tegn"),
        (DEFAULT_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "Passordene er ikke like."),
        (DEFAULT_PASSWORD, "Sommer2024!!", None, "for vanlig"),
    ],
)
def test_change_password_view_refuses_bad_input(client, current, new, confirm, message):
    user = make_user()
    login(client, user)
    old_hash, version = user.password_hash, user.session_version
    response = _change(client, current, new, confirm)
    assert response.status_code == 400
    assert message in response.text
    assert (user.password_hash, user.session_version) == (old_hash, version)


def test_language_preference(client):
    user = make_user()
    login(client, user)
    response = client.post("/account/preferences", data={"locale": "en", "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert user.locale == "en"
    assert 'lang="en"' in client.get("/account").text
    client.post("/account/preferences", data={"locale": "", "csrf_token": csrf_token(client)})
    assert user.locale is None


def test_no_language_preference_means_bokmal_whatever_the_browser_says(client):
    user = make_user()
    login(client, user)
    html = client.get("/account", headers={"Accept-Language": "en"}).text
    assert "Standard (norsk bokmål)" in html
    assert 'lang="nb"' in html


def test_language_preference_refuses_unknown_values(client):
    user = make_user(roles={Role.MEMBER})
    login(client, user)
    response = client.post("/account/preferences", data={"locale": "sv", "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert user.locale is None
