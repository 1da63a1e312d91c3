"""Queueing email, header injection, staff retries."""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from jinja2 import ChoiceLoader, DictLoader
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.errors import DomainError
from crm.extensions import db, redis
from crm.jobs import get_queue
from crm.mail.jobs import job_id_for
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.mail.services import RETRY_INTERVALS, mark_sent, queue_email, retry_message
from crm.mail.smtp import one_line
from tests.conftest import run_jobs, run_jobs_until_idle
from tests.factories import make_staff


def _queue(to="kari@example.no", **kwargs) -> OutboxMessage:
    kwargs.setdefault("context", {"requested_by": "Test"})
    return queue_email(to=to, template="test_message", **kwargs)


def _count_messages() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Kari Nordmann", "Kari Nordmann"),
        ("Kari\r\nBcc: evil@example.com", "Kari Bcc: evil@example.com"),
        ("Kari\nNordmann\r", "Kari Nordmann"),
        ("Kari\u2028Nordmann\x85\x00x", "Kari Nordmann x"),
        ("  Kari \t Nordmann  ", "Kari Nordmann"),
        ("", ""),
        (None, ""),
    ],
)
def test_one_line_folds_line_breaks_and_control_characters(raw, expected):
    assert one_line(raw) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "kari",
        "kari@example",
        "kari@@example.no",
        "kari nordmann@example.no",
        "Kari <kari@example.no>",
        "kari@example.no, evil@example.com",
        "kari@example.no\r\nBcc: evil@example.com",
        "kari@exa..mple.no",
        "a" * 250 + "@example.no",
    ],
)
def test_queue_email_refuses_a_bad_address_and_stores_nothing(app, address):
    before = _count_messages()
    with pytest.raises(DomainError) as error:
        _queue(to=address)
    assert error.value.field == "to"
    assert "er ikke en gyldig e-postadresse" in error.value.message
    assert "\n" not in error.value.message
    assert _count_messages() == before


def test_surrounding_whitespace_is_trimmed_from_the_address(app):
    assert _queue(to=" kari@example.no\r\n").to_address == "kari@example.no"


def test_queue_email_stores_a_normalised_address_and_a_message_id_unique_across_installations(app):
    message = _queue(to="  Kari.Nordmann@Example.NO ")
    other = _queue()
    assert message.to_address == "kari.nordmann@example.no"
    # The row id plus a random part stored with the row: a rebuilt database that hands out the same id
    # again still gives a new Message-ID, and every retry of this row keeps its own.
    match = re.fullmatch(rf"<outbox-{message.id}\.([0-9a-f]{{16}})@crm\.etiskhandel\.example>", message.message_id)
    assert match
    assert match.group(1) not in other.message_id
    assert message.status is OutboxStatus.QUEUED
    assert message.attempts == 0
    assert message.body_text.startswith("Hei,")
    assert not message.body_text.startswith("Subject:")


def test_a_name_with_line_breaks_is_folded_not_refused(app):
    # Names come from user data; a stray newline must not stop the email its cause sends.
    message = _queue(to_name="Kari\r\nBcc: evil@example.com")
    assert message.to_name == "Kari Bcc: evil@example.com"


def test_header_injection_through_name_and_subject_never_reaches_a_header(app, smtp_server):
    # Rows written by other code (or older data) are cleaned again when sent.
    message = _queue(to="kari@example.no")
    message.to_name = "Kari\r\nBcc: evil@example.com"
    message.subject = "Hei\r\nBcc: evil2@example.com\r\n\r\nInjected body"
    db.session.commit()
    run_jobs(app)

    [received] = smtp_server.messages
    assert received.rcpt_tos == ("kari@example.no",)
    headers = received.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "\nBcc:" not in headers
    assert received.message["Bcc"] is None
    assert received.message["Subject"] == "Hei Bcc: evil2@example.com Injected body"
    assert received.message["To"].addresses[0].display_name == "Kari Bcc: evil@example.com"
    assert received.message["To"].addresses[0].addr_spec == "kari@example.no"
    assert db.session.get(OutboxMessage, message.id).status is OutboxStatus.SENT


def test_a_line_break_in_a_subject_from_template_data_stays_out_of_the_headers(app, smtp_server, monkeypatch):
    templates = DictLoader(
        {
            "mail/hostile.txt": "Subject: Invitasjon til {{ title }}\n\n{{ title }}\n",
            "mail/hostile.html": "<p>{{ title }}</p>",
        }
    )
    monkeypatch.setattr(app.jinja_env, "loader", ChoiceLoader([templates, app.jinja_env.loader]))
    message = queue_email(to="kari@example.no", template="hostile", context={"title": "Møte\rBcc: evil@example.com"})
    assert message.subject == "Invitasjon til Møte Bcc: evil@example.com"
    db.session.commit()
    run_jobs(app)
    [received] = smtp_server.messages
    assert received.message["Bcc"] is None
    assert received.rcpt_tos == ("kari@example.no",)


def _decode(received, header: str) -> str:
    from email import message_from_bytes
    from email.header import decode_header, make_header
    from email.policy import compat32

    raw = message_from_bytes(received.raw, policy=compat32)[header]
    return str(make_header(decode_header(raw)))


def test_non_ascii_and_long_names_are_encoded(app, smtp_server):
    long_name = "Åse Ødegård-Læstad " + "Bjørnstjerne " * 12
    message = _queue(to="aase@example.no", to_name=long_name)
    long_subject = "Årsmøte i Etisk handel Norge – påmelding og sakliste for " + "særdeles viktige saker " * 6
    message.subject = long_subject
    _queue(to="ola@example.no", to_name='Ola "Ola" Nordmann, jr.')
    db.session.commit()
    run_jobs(app)

    received = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    headers = received["aase@example.no"].raw.split(b"\r\n\r\n", 1)[0]
    headers.decode("ascii")  # every header is 7-bit: the name is RFC 2047 encoded
    # Decoded as RFC 2047 says: whitespace between adjacent encoded words is dropped (the standard
    # library's header registry keeps it, so it is not used here).
    raw_to = received["aase@example.no"].message.get_all("To", failobj=[])
    assert len(raw_to) == 1
    assert _decode(received["aase@example.no"], "To") == f"{one_line(long_name)} <aase@example.no>"
    assert _decode(received["aase@example.no"], "Subject") == one_line(long_subject)
    ola = received["ola@example.no"].message["To"].addresses
    assert len(ola) == 1
    assert ola[0].display_name == 'Ola "Ola" Nordmann, jr.'
    assert ola[0].addr_spec == "ola@example.no"


def test_html_template_escapes_context(app):
    assert "&lt;b&gt;" in render_template_string("{{ v }}", v="<b>")  # sanity: autoescape for .html
    message = _queue(context={"requested_by": "<script>x</script>"})
    assert "<script>x</script>" not in message.body_html
    assert "&lt;script&gt;" in message.body_html
    assert "<script>x</script>" in message.body_text  # the text part is plain text


# --- staff retry -----------------------------------------------------------------------------------


def test_retry_message_sends_a_failed_message_again_and_is_audit_logged(app, smtp_server):
    staff = make_staff(Role.ADVISER)
    smtp_server.refuse("typo@example.no")
    message = _queue(to="typo@example.no")
    db.session.commit()
    run_jobs_until_idle(app)
    db.session.expire_all()
    message = db.session.get(OutboxMessage, message.id)
    assert message.status is OutboxStatus.FAILED

    smtp_server.reset()  # the mailbox exists now
    retry_message(message, actor=staff)
    assert message.status is OutboxStatus.QUEUED
    assert message.attempts == 0
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "mail.message.retried")).one()
    assert entry.actor_id == staff.id
    assert entry.target_type == "outbox_messages"
    assert entry.target_id == str(message.id)
    assert entry.details["previous_status"] == "failed"
    assert "550" in entry.details["last_error"]
    db.session.commit()

    run_jobs_until_idle(app)
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).status is OutboxStatus.SENT
    assert len(smtp_server.messages) == 1


def test_retry_message_moves_a_scheduled_retry_to_now_without_a_second_job(app, smtp_server):
    staff = make_staff(Role.ADVISER)
    smtp_server.defer("slow@example.no", times=1)
    message = _queue(to="slow@example.no")
    db.session.commit()
    run_jobs(app)
    db.session.expire_all()
    message = db.session.get(OutboxMessage, message.id)
    assert message.status is OutboxStatus.RETRYING
    queue = get_queue("emails")
    assert queue.scheduled_job_registry.count == 1

    retry_message(message, actor=staff)
    db.session.commit()
    assert queue.scheduled_job_registry.count == 0
    assert queue.count == 1
    job = Job.fetch(job_id_for(message.id), connection=redis())
    assert job.get_status() == JobStatus.QUEUED
    assert job.retries_left == len(RETRY_INTERVALS)
    run_jobs_until_idle(app)
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("status", [OutboxStatus.QUEUED, OutboxStatus.SENT])
def test_retry_message_refuses_queued_and_sent_messages(app, status):
    staff = make_staff(Role.ADVISER)
    message = _queue()
    message.status = status
    db.session.flush()
    with pytest.raises(DomainError):
        retry_message(message, actor=staff)
    assert message.status is status


def test_a_sent_message_cannot_be_marked_again_and_the_refusal_names_the_status_in_norwegian(app):
    message = _queue()
    mark_sent(message)
    with app.test_request_context(), pytest.raises(DomainError) as refused:
        mark_sent(message)
    assert refused.value.message == "E-posten har status «Sendt» og kan ikke endres."
    assert message.attempts == 1
