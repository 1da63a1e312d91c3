"""Who sees what in the outbox: no staff role can obtain a password link from it, and only administrators
(and the adviser team, for emails about cases) read subjects and bodies. Security issue 8.1: finance read a
member's reset link on the message page and logged in as the member."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import func, select

from crm.advisory.models import CaseAccessLog
from crm.audit.models import AuditEntry
from crm.auth import reset
from crm.auth.models import Role
from crm.auth.services import create_staff_user
from crm.extensions import db
from crm.mail.models import LINK_PLACEHOLDER, OutboxMessage, OutboxStatus
from crm.mail.services import can_read_body, queue_email
from crm.members.models import ContactRole, MembershipStatus
from crm.members.services.invitations import invite_to_portal
from tests.advisory.helpers import build_world
from tests.conftest import run_jobs
from tests.factories import make_case, make_contact, make_organisation, make_staff, make_user
from tests.helpers import DEFAULT_PASSWORD, csrf_token, delivered_link, login

STAFF = [Role.ADMIN, Role.ADVISER, Role.COORDINATOR, Role.FINANCE]
TOKEN_TEMPLATES = {
    "password_reset": "/auth/reset/",
    "invitation": "/auth/invitation/",
    "members_portal_invitation": "/auth/invitation/",
}
PURPOSE = {"/auth/reset/": reset.RESET, "/auth/invitation/": reset.INVITATION}
ADDRESS = "mottaker@example.no"


def _security_message(template: str):
    """The message as the real flow queues it, its recipient, and the organisation page that lists it (if any)."""
    admin = make_staff(Role.ADMIN)
    org = None
    if template == "password_reset":
        recipient = make_user(email=ADDRESS, roles={Role.MEMBER})
        reset.request_password_reset(ADDRESS)
    elif template == "invitation":
        recipient = create_staff_user(email=ADDRESS, full_name="Ny Kollega", roles={Role.ADVISER}, actor=admin)
    else:
        org = make_organisation(status=MembershipStatus.ACTIVE)
        contact = make_contact(org, roles=[ContactRole.MAIN_CONTACT], email=ADDRESS)
        assert invite_to_portal(contact, actor=admin)
        recipient = contact.user
    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == template)).one()
    return message, recipient, org


def _pages(client, message, recipient, org) -> dict[str, str]:
    pages = {
        "list": client.get("/staff/mail/"),
        "message": client.get(f"/staff/mail/messages/{message.id}"),
        "history": client.get(f"/staff/mail/people/{recipient.id}"),
    }
    if org is not None:
        pages["organisation"] = client.get(f"/staff/members/{org.id}?tab=emails")
    for name, response in pages.items():
        assert response.status_code == 200, name
    return {name: response.text for name, response in pages.items()}


@pytest.mark.parametrize("template", TOKEN_TEMPLATES)
@pytest.mark.parametrize("role", STAFF, ids=lambda role: role.value)
def test_no_staff_role_can_obtain_a_password_link_from_any_outbox_page_or_retry(
    app, client, smtp_server, caplog, role, template
):
    caplog.set_level(logging.DEBUG)
    path = TOKEN_TEMPLATES[template]
    message, recipient, org = _security_message(template)
    assert path not in message.body_text + message.body_html  # stored without its link
    assert LINK_PLACEHOLDER in message.body_text and LINK_PLACEHOLDER in message.body_html
    smtp_server.refuse(ADDRESS)
    db.session.commit()
    run_jobs(app)
    assert db.session.get(OutboxMessage, message.id).status is OutboxStatus.FAILED

    staff = make_staff(role)
    login(client, staff)
    seen = _pages(client, message, recipient, org)
    assert f'href="/staff/mail/messages/{message.id}"' in seen["list"]

    # Every staff role may send it again: the retry mints a fresh link for the recipient's inbox only.
    smtp_server.reset()
    response = client.post(
        f"/staff/mail/messages/{message.id}/retry",
        data={"csrf_token": csrf_token(client), "next": f"/staff/mail/messages/{message.id}"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert f"E-posten til {ADDRESS} blir sendt på nytt." in response.text
    seen["retry"] = response.text
    link = delivered_link(app, smtp_server, path)
    [received] = smtp_server.messages
    assert received.rcpt_tos == (ADDRESS,)
    token = link.removeprefix(path)
    assert reset.user_for_password_token(token, PURPOSE[path]) is recipient
    seen.update({f"{name} after sending": text for name, text in _pages(client, message, recipient, org).items()})

    for name, text in seen.items():
        assert path not in text and token not in text, name
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.status is OutboxStatus.SENT
    assert token not in row.body_text + row.body_html + (row.last_error or "")
    for entry in db.session.scalars(select(AuditEntry)):
        assert token not in repr(entry.details)
    # Every log line of the app and the worker; "mail.log" is aiosmtpd's, the test mail server receiving it.
    app_log = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("mail.log"))
    assert token not in app_log and path not in app_log


def test_a_reset_link_read_from_the_outbox_cannot_take_over_the_account(app, client, smtp_server):
    """The attack as reported: finance asks for a member's reset link and looks for it in the outbox."""
    member = make_user(email=ADDRESS, roles={Role.MEMBER})
    finance = make_staff(Role.FINANCE)
    db.session.commit()
    login(client, finance)
    client.post("/auth/forgot-password", data={"email": ADDRESS, "csrf_token": csrf_token(client)})
    message = db.session.scalars(select(OutboxMessage)).one()
    pages = [client.get(f"/staff/mail/messages/{message.id}").text, client.get(f"/staff/mail/people/{member.id}").text]
    for text in pages:
        assert not re.search(r"/auth/(reset|invitation)/\S", text)
    link = delivered_link(app, smtp_server, "/auth/reset/")  # only the member's inbox holds it
    assert reset.user_for_password_token(link.removeprefix("/auth/reset/"), reset.RESET) is member


def test_a_retry_hours_later_sends_a_working_link_minted_then(app, client, smtp_server, monkeypatch):
    import itsdangerous.timed

    member = make_user(email=ADDRESS, roles={Role.MEMBER})
    reset.request_password_reset(ADDRESS)
    smtp_server.refuse(ADDRESS)
    db.session.commit()
    real_time = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 3 * 3600)  # queued 3 h ago
    run_jobs(app)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status is OutboxStatus.FAILED
    login(client, make_staff(Role.COORDINATOR))
    smtp_server.reset()
    client.post(f"/staff/mail/messages/{message.id}/retry", data={"csrf_token": csrf_token(client)})
    # A link made when the message was queued would have expired after 1 hour; the retry's own is new.
    link = delivered_link(app, smtp_server, "/auth/reset/")
    assert reset.user_for_password_token(link.removeprefix("/auth/reset/"), reset.RESET) is member


def test_an_invitation_sent_after_the_password_was_chosen_carries_no_live_link(app, smtp_server):
    admin = make_staff(Role.ADMIN)
    user = create_staff_user(email=ADDRESS, full_name="Ny Kollega", roles={Role.ADVISER}, actor=admin)
    from crm.auth.services import set_password

    set_password(user, "en-lang-og-god-passordfrase-42", actor=user, reason="test")
    db.session.commit()
    run_jobs(app)
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status is OutboxStatus.FAILED
    assert "a password has been chosen" in message.last_error
    assert smtp_server.messages == []


def test_a_reset_for_an_address_the_person_no_longer_has_is_not_sent(app, smtp_server):
    user = make_user(email=ADDRESS, roles={Role.MEMBER})
    reset.request_password_reset(ADDRESS)
    user.email = "ny.adresse@example.no"
    db.session.commit()
    run_jobs(app)
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status is OutboxStatus.FAILED
    assert "no longer the person's" in message.last_error
    assert smtp_server.messages == []


def test_a_security_message_needs_its_placeholder_and_a_recipient(app):
    user = make_user()
    with pytest.raises(ValueError, match="recipient user"):
        queue_email(
            to=user.email,
            template="password_reset",
            context={"user": user, "url": LINK_PLACEHOLDER, "hours": 1},
            secret_link=reset.RESET,
        )
    with pytest.raises(ValueError, match="LINK_PLACEHOLDER"):
        queue_email(
            to=user.email,
            template="password_reset",
            context={"user": user, "url": "https://crm.test/somewhere", "hours": 1},
            recipient_user_id=user.id,
            secret_link=reset.RESET,
        )


# --- who reads subjects and bodies ------------------------------------------------------------------------


def _advisory_message():
    world = build_world(commit=False)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"], subject="Tvangsarbeid i Xinjiang")
    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "advisory_new_case")).one()
    assert (message.related_type, message.related_id) == ("cases", case.id)
    return message, world["adviser"], case


def _plain_message():
    person = make_user(email=ADDRESS, roles={Role.MEMBER})
    message = queue_email(
        to=ADDRESS, template="test_message", context={"requested_by": "Test"}, recipient_user_id=person.id
    )
    return message, person, None


READS = {
    # role: (plain email, advisory email)
    Role.ADMIN: (True, True),
    Role.ADVISER: (False, True),
    Role.COORDINATOR: (False, False),
    Role.FINANCE: (False, False),
}


@pytest.mark.parametrize("kind", ["plain", "advisory"])
@pytest.mark.parametrize("role", STAFF, ids=lambda role: role.value)
def test_only_administrators_and_for_case_emails_the_adviser_team_read_subjects_and_bodies(app, client, role, kind):
    message, recipient, case = _advisory_message() if kind == "advisory" else _plain_message()
    message.status, message.last_error = OutboxStatus.FAILED, "550 nope"
    subject, body_line = message.subject, max(message.body_text.splitlines(), key=len)
    db.session.commit()
    staff = make_staff(role)
    login(client, staff)
    readable = READS[role][kind == "advisory"]
    assert can_read_body(staff, message) is readable

    listing = client.get("/staff/mail/").text
    history = client.get(f"/staff/mail/people/{recipient.id}").text
    page = client.get(f"/staff/mail/messages/{message.id}").text
    for text in (listing, history, page):
        assert (subject in text) is readable
        assert message.to_address in text  # the metadata everyone on the staff sees
    for text in (listing, history):
        assert (f"<code>{message.template}</code></a>" in text) is not readable  # in place of the subject
    assert f"<code>{message.template}</code>" in page
    assert (body_line in page) is readable
    assert ("Bare administratorer" in page) is not readable
    retried = client.post(f"/staff/mail/messages/{message.id}/retry", data={"csrf_token": csrf_token(client)})
    assert retried.status_code == 302  # every staff role may send it again
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "mail.message.viewed"))
    assert entry.details == {"content_shown": readable}
    if case is not None:
        logged = db.session.scalar(
            select(func.count())
            .select_from(CaseAccessLog)
            .where(CaseAccessLog.case_id == case.id, CaseAccessLog.user_id == staff.id, CaseAccessLog.action == "email")
        )
        assert logged == (1 if readable else 0)


def test_reading_a_case_email_shows_in_the_case_access_log(app, client):
    message, _adviser, case = _advisory_message()
    db.session.commit()
    adviser = make_staff(Role.ADVISER, full_name="Lese Rådgiver")
    login(client, adviser)
    client.get(f"/staff/mail/messages/{message.id}")
    page = client.get(f"/staff/advisory/{case.id}").text
    assert "Lese Rådgiver · leste en e-post om saken" in page


def test_a_member_sees_nothing(app):
    message, _person, _case = _plain_message()
    assert not can_read_body(make_user(roles={Role.MEMBER}, password=DEFAULT_PASSWORD), message)
