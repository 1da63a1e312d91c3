"""Staff email pages: problems list with retry, a person's history, one message."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.extensions import db
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.mail.services import queue_email
from tests.conftest import run_jobs
from tests.factories import make_staff, make_user
from tests.helpers import csrf_token, login


def _message(status=OutboxStatus.FAILED, to="kari@example.no", **fields) -> OutboxMessage:
    message = queue_email(to=to, template="test_message", context={"requested_by": "Test"})
    message.status = status
    for name, value in fields.items():
        setattr(message, name, value)
    db.session.flush()
    return message


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def staff(client):
    user = make_staff(Role.COORDINATOR)
    login(client, user)
    return user


def _urls(message_id: int, user_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/staff/mail/"),
        ("GET", f"/staff/mail/people/{user_id}"),
        ("GET", f"/staff/mail/messages/{message_id}"),
        ("POST", f"/staff/mail/messages/{message_id}/retry"),
    ]


@pytest.mark.parametrize("index", range(4))
def test_a_member_gets_403_on_every_staff_mail_page(app, client, index):
    member = make_user(roles={Role.MEMBER})
    message = _message(recipient_user_id=member.id)
    db.session.commit()
    login(client, member)
    method, url = _urls(message.id, member.id)[index]
    token = csrf_token(client)
    response = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
    assert response.status_code == 403
    assert _audit("mail.history.viewed") == []
    assert db.session.get(OutboxMessage, message.id).status is OutboxStatus.FAILED


def test_anonymous_visitors_are_sent_to_the_login_page(app, client):
    response = client.get("/staff/mail/")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_the_list_shows_failed_and_retrying_messages_only(app, client, staff):
    _message(OutboxStatus.FAILED, to="failed@example.no", last_error="550 5.1.1 Mailbox unavailable")
    _message(OutboxStatus.RETRYING, to="retrying@example.no", last_error="451 4.3.0 Try again later")
    _message(OutboxStatus.SENT, to="sent@example.no")
    db.session.commit()

    response = client.get("/staff/mail/")
    assert response.status_code == 200
    assert "E-poster som har feilet eller venter på nytt forsøk" in response.text
    assert "failed@example.no" in response.text
    assert "retrying@example.no" in response.text
    assert "sent@example.no" not in response.text
    assert "550 5.1.1 Mailbox unavailable" in response.text
    assert response.text.count("Send på nytt</button>") == 2
    assert 'href="/staff/mail/"' in response.text  # the "E-post" navigation entry
    assert response.headers["Cache-Control"] == "no-store"


def test_the_list_has_an_empty_state(app, client, staff):
    response = client.get("/staff/mail/")
    assert "Ingen e-poster har feilet" in response.text


def test_the_list_is_paginated(app, client, staff):
    for n in range(app.config["PER_PAGE"] + 2):
        _message(to=f"p{n}@example.no")
    db.session.commit()
    first = client.get("/staff/mail/")
    assert first.text.count("Send på nytt</button>") == app.config["PER_PAGE"]
    assert "/staff/mail/?page=2" in first.text
    per_page = app.config["PER_PAGE"]
    assert f"Viser 1–{per_page} av {per_page + 2}" in first.text
    second = client.get("/staff/mail/?page=2")
    assert second.text.count("Send på nytt</button>") == 2
    assert client.get("/staff/mail/?page=99").status_code == 200


def test_the_list_page_query_count_does_not_grow_with_the_messages(app, client, staff, count_queries):
    for n in range(3):
        _message(to=f"a{n}@example.no")
    db.session.commit()
    with count_queries() as few:
        assert client.get("/staff/mail/").status_code == 200
    for n in range(20):
        _message(to=f"b{n}@example.no", recipient_user_id=staff.id)
    db.session.commit()
    with count_queries() as many:
        assert client.get("/staff/mail/").status_code == 200
    assert many.count == few.count


def test_the_retry_button_queues_the_message_again(app, client, staff, smtp_server):
    message = _message(OutboxStatus.FAILED, last_error="550 refused", attempts=1)
    db.session.commit()
    response = client.post(
        f"/staff/mail/messages/{message.id}/retry",
        data={"csrf_token": csrf_token(client), "next": "/staff/mail/"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "E-posten til kari@example.no blir sendt på nytt." in response.text
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.status is OutboxStatus.QUEUED
    [entry] = _audit("mail.message.retried")
    assert entry.actor_id == staff.id
    assert entry.target_id == str(message.id)

    run_jobs(app)
    assert len(smtp_server.messages) == 1


def test_the_retry_button_needs_a_csrf_token(app, client, staff):
    message = _message(OutboxStatus.FAILED)
    db.session.commit()
    response = client.post(f"/staff/mail/messages/{message.id}/retry", data={})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).status is OutboxStatus.FAILED
    assert _audit("mail.message.retried") == []


def test_retrying_a_sent_message_is_refused_with_a_message(app, client, staff):
    message = _message(OutboxStatus.SENT)
    db.session.commit()
    token = csrf_token(client)
    response = client.post(
        f"/staff/mail/messages/{message.id}/retry", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Bare e-poster som har feilet eller venter på et nytt forsøk, kan sendes på nytt." in response.text
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).status is OutboxStatus.SENT
    assert _audit("mail.message.retried") == []


def test_a_persons_history_lists_their_messages_and_is_audit_logged(app, client, staff):
    person = make_user(email="ola@example.no", full_name="Ola Nordmann")
    _message(OutboxStatus.SENT, to="ola@example.no")  # matched by address
    _message(OutboxStatus.FAILED, to="ola.privat@example.no", recipient_user_id=person.id, last_error="550 nope")
    _message(OutboxStatus.SENT, to="someone.else@example.no")
    db.session.commit()

    response = client.get(f"/staff/mail/people/{person.id}")
    assert response.status_code == 200
    assert "E-posthistorikk for Ola Nordmann" in response.text
    assert "ola.privat@example.no" in response.text
    # a coordinator sees which template each one is, not its subject (see test_outbox_access.py)
    assert response.text.count("<code>test_message</code></a>") == 2
    assert "Test-e-post fra medlemssystemet" not in response.text
    assert "someone.else@example.no" not in response.text
    assert "550 nope" in response.text
    [entry] = _audit("mail.history.viewed")
    assert entry.actor_id == staff.id
    assert (entry.target_type, entry.target_id) == ("users", str(person.id))


def test_a_persons_history_is_paginated_and_records_the_page_asked_for(app, client, staff):
    person = make_user(email="ola@example.no")
    for n in range(app.config["PER_PAGE"] + 1):
        _message(OutboxStatus.SENT, to=f"ola.{n}@example.no", recipient_user_id=person.id)
    db.session.commit()
    first = client.get(f"/staff/mail/people/{person.id}")
    assert f'href="/staff/mail/people/{person.id}?page=2" rel="next"' in first.text
    last = client.get(f"/staff/mail/people/{person.id}?page=99")
    assert last.text.count("<code>test_message</code></a>") == 1
    assert [entry.details for entry in _audit("mail.history.viewed")] == [{"page": 1}, {"page": 99}]


def test_the_history_page_query_count_does_not_grow_with_the_messages(app, client, staff, count_queries):
    person = make_user(email="ola@example.no")
    for n in range(3):
        _message(OutboxStatus.FAILED, to="ola@example.no", recipient_user_id=person.id)
    db.session.commit()
    with count_queries() as few:
        assert client.get(f"/staff/mail/people/{person.id}").status_code == 200
    for n in range(20):
        _message(OutboxStatus.RETRYING, to=f"ola.{n}@example.no", recipient_user_id=person.id)
    db.session.commit()
    with count_queries() as many:
        assert client.get(f"/staff/mail/people/{person.id}").status_code == 200
    assert many.count == few.count


def test_history_of_an_unknown_person_is_404(app, client, staff):
    assert client.get("/staff/mail/people/999999").status_code == 404


def test_the_message_page_shows_an_administrator_the_text_body_and_is_audit_logged(app, client):
    login(client, make_staff(Role.ADMIN))  # only administrators read every body (see test_outbox_access.py)
    message = _message(OutboxStatus.FAILED, last_error="550 5.1.1 Mailbox unavailable")
    db.session.commit()
    response = client.get(f"/staff/mail/messages/{message.id}")
    assert response.status_code == 200
    assert "fungerer e-postleveringen" in response.text
    assert message.message_id.replace("<", "&lt;").replace(">", "&gt;") in response.text
    assert "Send på nytt</button>" in response.text
    [entry] = _audit("mail.message.viewed")
    assert entry.target_id == str(message.id)
    assert client.get("/staff/mail/messages/999999").status_code == 404


def test_send_test_email_command_queues_a_message(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "send-test-email", "--to", "Drift@Example.no"])
    assert result.exit_code == 0, result.output
    assert "queued for drift@example.no" in result.output
    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == "drift@example.no")).one()
    assert message.template == "test_message"
    assert message.status is OutboxStatus.QUEUED


def test_send_test_email_command_refuses_a_bad_address(app):
    result = app.test_cli_runner().invoke(args=["crm", "send-test-email", "--to", "not an address"])
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0
    assert "er ikke en gyldig e-postadresse" in result.output
    assert db.session.scalars(select(OutboxMessage)).first() is None


def test_an_admin_reaches_a_users_email_history_from_the_users_page(app, client):
    login(client, make_staff(Role.ADMIN))
    person = make_user(email="ola@example.no", full_name="Ola Nordmann")
    page = client.get(f"/staff/users/{person.id}").text
    assert f'<a href="/staff/mail/people/{person.id}">E-posthistorikk</a>' in page


def test_the_organisation_page_links_its_portal_contacts_and_messages_to_the_email_pages(app, client, staff):
    from crm.members.models import MembershipStatus
    from tests.factories import make_contact, make_member_user, make_organisation

    org = make_organisation(status=MembershipStatus.ACTIVE)
    member = make_member_user(organisation=org, full_name="Kari Portal", email="kari@alfa.no")
    make_contact(org, name="Uten Innlogging", email="uten@alfa.no")
    sent = _message(OutboxStatus.SENT, to="kari@alfa.no", recipient_user_id=member.id)
    db.session.commit()

    contacts = client.get(f"/staff/members/{org.id}?tab=contacts").text
    assert contacts.count("/staff/mail/people/") == 1  # only the contact with a login has a history page
    assert f'href="/staff/mail/people/{member.id}"' in contacts

    emails = client.get(f"/staff/members/{org.id}?tab=emails").text
    assert f'href="/staff/mail/messages/{sent.id}"' in emails
    assert f'href="/staff/mail/people/{member.id}"' in emails
    assert ">Sendt</span>" in emails  # the status in the reader's language, not the stored code
    assert ">sent<" not in emails


def test_reading_an_organisations_email_tab_is_audit_logged_but_kept_out_of_its_change_trail(app, client, staff):
    from crm.audit.models import AuditEntry
    from crm.members.models import MembershipStatus
    from tests.factories import make_organisation

    org = make_organisation(status=MembershipStatus.ACTIVE)
    db.session.commit()
    client.get(f"/staff/members/{org.id}?tab=emails")
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "members.emails.viewed")).one()
    assert (entry.target_type, entry.target_id) == ("organisations", str(org.id))
    from crm.members.services import organisation_audit_trail

    assert entry not in organisation_audit_trail(org)
