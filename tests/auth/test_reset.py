"""Password reset by email, and invitation links (the same single-use token, another purpose)."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth import reset
from crm.auth.models import Role
from crm.auth.passwords import verify_password
from crm.errors import DomainError
from crm.extensions import db
from crm.mail.models import OutboxMessage
from tests.factories import make_staff, make_user
from tests.helpers import csrf_token, delivered_link

NEW_PASSWORD = "tre-grønne-epler-på-benken"


def _outbox() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _link(app, smtp_server, path: str) -> str:
    """The link as it reached the mail server: the outbox row holds none."""
    return delivered_link(app, smtp_server, path)


# --- services ---------------------------------------------------------------------------------


def test_reset_request_for_a_known_address_queues_a_norwegian_email(app, smtp_server):
    user = make_user(email="ola@example.no", full_name="Ola Nordmann")
    reset.request_password_reset("OLA@example.no")
    [message] = _outbox()
    assert message.to_address == "ola@example.no"
    assert message.template == "password_reset"
    assert message.subject == "Nytt passord til Etisk handel Norge CRM"
    assert "Hei Ola Nordmann" in message.body_text
    assert "1 time" in message.body_text
    assert "/auth/reset/" not in message.body_text + message.body_html  # stored without its link
    assert "[link removed]" in message.body_text
    assert message.recipient_user_id == user.id
    token = _link(app, smtp_server, "/auth/reset/").removeprefix("/auth/reset/")
    assert reset.user_for_password_token(token, reset.RESET) is user


@pytest.mark.parametrize("email", ["nobody@example.no", "disabled@example.no"])
def test_reset_request_for_unknown_or_disabled_sends_nothing(email):
    make_user(email="disabled@example.no", is_enabled=False)
    reset.request_password_reset(email)
    assert _outbox() == []
    entry = db.session.scalars(select(AuditEntry)).one()
    assert entry.action == "auth.password.reset_requested"
    assert entry.details == {"email": email, "sent": False}


def test_token_is_single_use():
    user = make_user()
    token = reset.make_password_token(user, reset.RESET)
    assert reset.user_for_password_token(token, reset.RESET) is user
    version = user.session_version
    reset.set_password_with_token(token, NEW_PASSWORD, purpose=reset.RESET)
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert user.session_version == version + 1
    assert reset.user_for_password_token(token, reset.RESET) is None
    with pytest.raises(DomainError):
        reset.set_password_with_token(token, "en-helt-annen-frase-99", purpose=reset.RESET)


def test_every_older_link_dies_once_a_password_is_set():
    user = make_user()
    first = reset.make_password_token(user, reset.RESET)
    second = reset.make_password_token(user, reset.RESET)
    reset.set_password_with_token(second, NEW_PASSWORD, purpose=reset.RESET)
    assert reset.user_for_password_token(first, reset.RESET) is None


def _token_made_seconds_ago(monkeypatch, user, purpose, seconds):
    import itsdangerous.timed

    real_time = time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - seconds)
    token = reset.make_password_token(user, purpose)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    return token


@pytest.mark.parametrize(
    ("purpose", "age", "valid"),
    [
        (reset.RESET, 3500, True),
        (reset.RESET, 3700, False),
        (reset.INVITATION, 6 * 86400, True),
        (reset.INVITATION, 7 * 86400 + 100, False),
    ],
)
def test_links_expire(monkeypatch, purpose, age, valid):
    user = make_user()
    token = _token_made_seconds_ago(monkeypatch, user, purpose, age)
    assert (reset.user_for_password_token(token, purpose) is user) is valid


def test_tokens_only_work_for_their_purpose_and_cannot_be_forged():
    user = make_user()
    invitation = reset.make_password_token(user, reset.INVITATION)
    assert reset.user_for_password_token(invitation, reset.RESET) is None
    assert reset.user_for_password_token(invitation + "x", reset.INVITATION) is None
    assert reset.user_for_password_token("not-a-token", reset.RESET) is None


def test_disabled_users_cannot_use_a_link():
    user = make_user()
    token = reset.make_password_token(user, reset.RESET)
    user.is_enabled = False
    assert reset.user_for_password_token(token, reset.RESET) is None


def test_weak_password_is_refused_and_keeps_the_link():
    user = make_user()
    old_hash = user.password_hash
    token = reset.make_password_token(user, reset.RESET)
    with pytest.raises(DomainError) as info:
        reset.set_password_with_token(token, "kort", purpose=reset.RESET)
    assert info.value.field == "password"
    assert user.password_hash == old_hash
    assert reset.user_for_password_token(token, reset.RESET) is user


# --- views ------------------------------------------------------------------------------------


def _forgot(client, email):
    return client.post("/auth/forgot-password", data={"email": email, "csrf_token": csrf_token(client)})


def test_forgot_password_answers_the_same_for_known_and_unknown(app):
    make_user(email="kjent@example.no")
    answers = []
    for email in ("kjent@example.no", "ukjent@example.no"):
        with app.test_client() as client:
            response = _forgot(client, email)
            page = client.get(response.headers["Location"])
            flash = re.search(r'<div class="alert[^"]*">([^<]+)</div>', page.text).group(1)
            answers.append((response.status_code, response.headers["Location"], flash))
    assert answers[0] == answers[1]
    assert answers[0][2].startswith("Hvis adressen hører til en konto")
    assert len(_outbox()) == 1


def test_forgot_password_is_rate_limited_per_ip(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "PASSWORD_RESET_LIMIT_PER_IP", "2 per minute")
    make_user(email="kjent@example.no")
    for _ in range(2):
        assert _forgot(client, "kjent@example.no").status_code == 302
    response = _forgot(client, "kjent@example.no")
    assert response.status_code == 429
    assert "For mange forsøk" in response.text
    assert len(_outbox()) == 2


def test_reset_page_sets_the_password_once(app, client, smtp_server):
    user = make_user(email="per@example.no")
    reset.request_password_reset(user.email)
    link = _link(app, smtp_server, "/auth/reset/")
    assert client.get(link).status_code == 200
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client)}
    response = client.post(link, data=data)
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id.desc())).first() == "auth.password.set"
    again = client.get(link)
    assert again.status_code == 400
    assert "Lenken er ugyldig, utløpt eller allerede brukt." in again.text


@pytest.mark.parametrize(
    ("new", "confirm", "message"),
    [
        ("kort", "kort", "minst 12 tegn"),
        ("passord12345", "passord12345", "for vanlig"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "Passordene er ikke like."),
    ],
)
def test_reset_page_refuses_bad_passwords(client, new, confirm, message):
    user = make_user()
    old_hash = user.password_hash
    link = "/auth/reset/" + reset.make_password_token(user, reset.RESET)
    response = client.post(link, data={"new_password": new, "confirm": confirm, "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert message in response.text
    assert user.password_hash == old_hash


def test_invitation_link_lets_a_new_staff_user_choose_a_password(app, client, smtp_server):
    admin = make_staff(Role.ADMIN)
    from crm.auth.services import create_staff_user

    user = create_staff_user(email="ny@example.no", full_name="Nina Ny", roles={Role.ADVISER}, actor=admin)
    [message] = _outbox()
    assert message.subject == "Du er invitert til Etisk handel Norge CRM"
    assert "7 dager" in message.body_text
    link = _link(app, smtp_server, "/auth/invitation/")
    assert "Velkommen" in client.get(link).text
    data = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(client)}
    assert client.post(link, data=data).status_code == 302
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert client.get(link).status_code == 400


def test_forgot_password_is_rate_limited_per_address(app, monkeypatch):
    monkeypatch.setitem(app.config, "PASSWORD_RESET_LIMIT_PER_ADDRESS", "2 per minute")
    make_user(email="offer@example.no")
    for n in range(2):
        with app.test_client() as client:
            client.environ_base["REMOTE_ADDR"] = f"10.2.0.{n}"
            assert _forgot(client, "Offer@example.no").status_code == 302
    with app.test_client() as client:
        client.environ_base["REMOTE_ADDR"] = "10.2.0.9"
        assert _forgot(client, "offer@example.no").status_code == 429
    assert len(_outbox()) == 2
