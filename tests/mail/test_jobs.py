"""The send job and the sweeper against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.jobs import get_queue
from crm.mail.jobs import job_id_for, send_outbox_message, sweep_outbox
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.mail.services import MAX_ATTEMPTS, RETRY_INTERVALS, queue_email
from crm.models import utcnow
from tests.conftest import promote_scheduled_jobs, run_jobs, run_jobs_until_idle


def _queue(to="kari@example.no", **kwargs) -> OutboxMessage:
    kwargs.setdefault("context", {"requested_by": "Test"})
    return queue_email(to=to, template="test_message", **kwargs)


def _fresh(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


def test_a_queued_message_is_delivered_as_multipart_with_its_message_id(app, smtp_server):
    message = _queue(to="Kari@Example.no", to_name="Kari Nordmann")
    db.session.commit()
    run_jobs(app)

    row = _fresh(message.id)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 1
    assert row.sent_at is not None
    [received] = smtp_server.messages
    assert received.message_id == row.message_id == f"<outbox-{row.id}@crm.etiskhandel.example>"
    assert received.rcpt_tos == ("kari@example.no",)
    assert received.message["From"] == app.config["MAIL_DEFAULT_SENDER"]
    assert received.message["To"].addresses[0].display_name == "Kari Nordmann"
    assert received.subject == "Test-e-post fra medlemssystemet"
    assert "fungerer e-postleveringen" in received.part("text/plain")
    assert "fungerer e-postleveringen" in received.part("text/html")
    assert received.message.get_content_type() in ("multipart/mixed", "multipart/alternative")
