"""The send job and the sweeper against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
import socket
from datetime import timedelta

from rq.job import Job, JobStatus
from sqlalchemy import func, select

from crm.extensions import db, redis
from crm.jobs import PERIODIC_JOBS, get_queue
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


def _job_status(message_id: int):
    return Job.fetch(job_id_for(message_id), connection=redis()).get_status()


def test_a_queued_message_is_delivered_as_multipart_with_its_message_id(app, smtp_server):
    message = _queue(to="Kari@Example.no", to_name="Kari Nordmann")
    db.session.commit()
    run_jobs(app)

    row = _fresh(message.id)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 1
    assert row.sent_at is not None
    [received] = smtp_server.messages
    assert received.message_id == row.message_id
    assert re.fullmatch(rf"<outbox-{row.id}\.[0-9a-f]{{16}}@crm\.etiskhandel\.example>", row.message_id)
    assert received.rcpt_tos == ("kari@example.no",)
    assert received.message["From"] == app.config["MAIL_DEFAULT_SENDER"]
    assert received.message["To"].addresses[0].display_name == "Kari Nordmann"
    assert received.subject == "Test-e-post fra medlemssystemet"
    assert received.message.is_multipart()
    assert "fungerer e-postleveringen" in received.part("text/plain")
    assert "fungerer e-postleveringen" in received.part("text/html")
    assert '<html lang="nb">' in received.part("text/html")


def test_the_recipients_locale_picks_the_language(app, smtp_server):
    _queue(locale="en")
    db.session.commit()
    run_jobs(app)
    [received] = smtp_server.messages
    assert received.subject == "Test email from the member CRM"


def test_200_messages_while_the_server_is_down_for_part_of_the_run_arrive_exactly_once(app, smtp_server):
    messages = [_queue(to=f"member{n}@example.no", to_name=f"Medlem {n}") for n in range(200)]
    db.session.commit()
    expected_ids = {message.message_id for message in messages}
    assert len(expected_ids) == 200

    from crm.jobs import make_worker

    worker = make_worker(app)
    worker.subscribe = lambda: None  # as run_jobs does
    worker.work(burst=True, max_jobs=60, with_scheduler=False)
    assert len(smtp_server.messages) == 60

    smtp_server.stop()  # the mail server goes down
    run_jobs(app)
    db.session.expire_all()
    waiting = db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == OutboxStatus.RETRYING)
    )
    assert waiting == 140
    # Every waiting row has its retry scheduled; the sweeper must not add a second job.
    assert get_queue("emails").scheduled_job_registry.count == 140
    assert sweep_outbox(now=utcnow() + timedelta(days=1)) == []

    smtp_server.start()  # back on the same port
    run_jobs_until_idle(app)

    received_ids = smtp_server.message_ids()
    assert len(received_ids) == 200
    assert set(received_ids) == expected_ids
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_([m.id for m in messages]))).all()
    assert {row.status for row in rows} == {OutboxStatus.SENT}
    assert sorted({row.attempts for row in rows}) == [1, 2]


def test_a_rolled_back_transaction_sends_nothing(app, smtp_server):
    message_id = _queue().id
    db.session.rollback()
    db.session.commit()
    run_jobs_until_idle(app)
    assert smtp_server.messages == []
    assert db.session.get(OutboxMessage, message_id) is None
    assert get_queue("emails").count == 0


def test_a_refused_recipient_fails_once_without_retrying(app, smtp_server):
    smtp_server.refuse("nobody@example.no")
    message = _queue(to="nobody@example.no")
    db.session.commit()
    run_jobs_until_idle(app)

    row = _fresh(message.id)
    assert row.status is OutboxStatus.FAILED
    assert row.attempts == 1
    assert "550" in row.last_error
    assert row.next_attempt_at is None
    assert smtp_server.rcpt_attempts["nobody@example.no"] == 1
    assert smtp_server.messages == []
    queue = get_queue("emails")
    assert queue.scheduled_job_registry.count == 0
    assert queue.failed_job_registry.count == 0
    # Nor does the sweeper pick it up again.
    assert sweep_outbox(now=utcnow() + timedelta(days=2)) == []


def test_451_twice_then_accepted_is_delivered_on_the_third_try(app, smtp_server):
    smtp_server.defer("slow@example.no", times=2)
    message = _queue(to="slow@example.no")
    db.session.commit()

    run_jobs(app)
    row = _fresh(message.id)
    assert row.status is OutboxStatus.RETRYING
    assert row.attempts == 1
    assert "451" in row.last_error
    assert row.next_attempt_at > utcnow() + timedelta(seconds=RETRY_INTERVALS[0] - 5)
    assert _job_status(message.id) == JobStatus.SCHEDULED

    run_jobs_until_idle(app)
    row = _fresh(message.id)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 3
    assert row.last_error is None
    assert smtp_server.rcpt_attempts["slow@example.no"] == 3
    assert len(smtp_server.to("slow@example.no")) == 1


def test_a_silent_server_times_out_and_is_retried(app, monkeypatch):
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        state = app.extensions["mail"]
        monkeypatch.setattr(state, "server", "127.0.0.1")
        monkeypatch.setattr(state, "port", silent.getsockname()[1])
        monkeypatch.setitem(app.config, "MAIL_TIMEOUT_SECONDS", 0.3)
        message = _queue()
        db.session.commit()
        run_jobs(app)

    row = _fresh(message.id)
    assert row.status is OutboxStatus.RETRYING
    assert "timed out" in row.last_error.lower() or "Timeout" in row.last_error
    assert _job_status(message.id) == JobStatus.SCHEDULED


def test_the_job_is_safe_to_run_twice(app, smtp_server):
    message = _queue()
    db.session.commit()
    run_jobs(app)
    with app.app_context():
        send_outbox_message(message.id)  # a duplicate job after the message was sent
    assert len(smtp_server.messages) == 1
    assert _fresh(message.id).attempts == 1


def test_a_message_being_sent_by_another_worker_is_skipped(app, smtp_server):
    message = _queue()
    db.session.commit()
    redis().set(f"crm:outbox:sending:{message.id}", "1", ex=60)
    run_jobs(app)
    assert smtp_server.messages == []
    assert _fresh(message.id).status is OutboxStatus.QUEUED


def test_temporary_failures_end_in_failed_after_the_last_attempt(app, smtp_server):
    smtp_server.defer("full@example.no", times=100)
    message = _queue(to="full@example.no")
    db.session.commit()
    run_jobs_until_idle(app)

    row = _fresh(message.id)
    assert row.status is OutboxStatus.FAILED
    assert row.attempts == MAX_ATTEMPTS
    assert row.last_error.startswith(f"Gave up after {MAX_ATTEMPTS} attempts")
    assert smtp_server.rcpt_attempts["full@example.no"] == MAX_ATTEMPTS
    assert get_queue("emails").failed_job_registry.count == 0


# --- the sweeper ---------------------------------------------------------------------------------


def _lose_job(message_id: int) -> None:
    job = Job.fetch(job_id_for(message_id), connection=redis())
    job.delete()


def test_the_sweeper_is_a_periodic_job():
    assert PERIODIC_JOBS["mail.sweep_outbox"].func is sweep_outbox


def test_the_sweeper_re_enqueues_a_lost_queued_message_exactly_once(app, smtp_server):
    message = _queue()
    db.session.commit()
    _lose_job(message.id)  # e.g. Redis was flushed between the commit and the worker
    queue = get_queue("emails")
    assert queue.count == 0

    assert sweep_outbox(now=utcnow() + timedelta(seconds=10)) == []  # still within the grace period (30 s)
    later = utcnow() + timedelta(minutes=10)
    assert sweep_outbox(now=later) == [message.id]
    assert sweep_outbox(now=later + timedelta(minutes=10)) == []  # its job is waiting: no second one
    assert queue.count == 1

    run_jobs_until_idle(app)
    assert len(smtp_server.messages) == 1
    assert _fresh(message.id).status is OutboxStatus.SENT
    assert sweep_outbox(now=later + timedelta(hours=1)) == []


def test_the_sweeper_re_enqueues_a_retrying_message_whose_job_was_lost(app, smtp_server):
    smtp_server.defer("later@example.no", times=1)
    message = _queue(to="later@example.no")
    db.session.commit()
    run_jobs(app)
    row = _fresh(message.id)
    assert row.status is OutboxStatus.RETRYING
    _lose_job(message.id)

    assert sweep_outbox(now=row.next_attempt_at - timedelta(seconds=1)) == []  # not due yet
    assert sweep_outbox(now=row.next_attempt_at + timedelta(seconds=1)) == [message.id]
    job = Job.fetch(job_id_for(message.id), connection=redis())
    assert job.retries_left == len(RETRY_INTERVALS) - 1  # the remaining attempts, not a fresh round
    run_jobs(app)
    row = _fresh(message.id)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 2
    assert len(smtp_server.messages) == 1


def test_the_sweeper_replaces_a_job_that_failed_in_rq(app, smtp_server):
    message = _queue()
    db.session.commit()
    job = Job.fetch(job_id_for(message.id), connection=redis())
    get_queue("emails").remove(job)
    job.set_status(JobStatus.FAILED)

    assert sweep_outbox(now=utcnow() + timedelta(minutes=10)) == [message.id]
    run_jobs(app)
    assert len(smtp_server.messages) == 1
    assert promote_scheduled_jobs() == 0


def test_an_unexpected_error_counts_as_a_failed_attempt(app, smtp_server, monkeypatch):
    # A configuration mistake (no sender) is not an SMTP answer; the message waits for a fix
    # instead of being lost, and would end FAILED after the last attempt.
    monkeypatch.setitem(app.config, "MAIL_DEFAULT_SENDER", None)
    monkeypatch.setattr(app.extensions["mail"], "default_sender", None)
    message = _queue()
    db.session.commit()
    run_jobs(app)

    row = _fresh(message.id)
    assert row.status is OutboxStatus.RETRYING
    assert row.attempts == 1
    assert row.last_error.startswith("AssertionError")
    assert smtp_server.messages == []
    assert _job_status(message.id) == JobStatus.SCHEDULED
