"""Sending stored outbox messages, and the sweeper that re-enqueues what was lost.

Each message has one RQ job id, ``outbox-<id>``, so the sweeper can tell whether a job for it
is still queued, scheduled or running. The send job claims the row in Redis, then reads it
fresh: a second run (a duplicate job, the sweeper racing a slow worker) finds it SENT or
claimed and does nothing. Should a worker die between the server's 250 and our commit, the
message goes out again with the same Message-ID, which receivers use to drop the duplicate.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime

from rq.job import JobStatus

from crm.extensions import db
from crm.jobs import claim, enqueue_after_commit, fetch_job, is_running, periodic
from crm.mail import services
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.mail.smtp import Outcome, send_row

logger = logging.getLogger(__name__)

EMAIL_QUEUE = "emails"


class TemporaryMailFailure(Exception):
    """Raised after the row is marked RETRYING, so that RQ schedules the next attempt."""


def job_id_for(message_id: int) -> str:
    return f"outbox-{message_id}"


def _claim_key(message_id: int) -> str:
    return f"crm:outbox:sending:{message_id}"


def enqueue_send(message: OutboxMessage, *, replace: bool = False) -> None:
    """Enqueue the message's send job once the transaction commits.

    With ``replace``, a job that is waiting in the queue or running on a live worker is kept (it
    will send the row as it then is); a job scheduled for a later retry, one that has ended, or one
    left started by a killed worker is removed first, so that exactly one job carries the message's id.
    """
    if replace:
        job = fetch_job(job_id_for(message.id))
        if job is not None:
            if job.get_status() == JobStatus.QUEUED or is_running(job):
                return
            # Removed before the commit: should the transaction roll back, the row keeps its
            # state and the sweeper enqueues it again.
            job.delete()
    enqueue_after_commit(
        send_outbox_message,
        message.id,
        queue=EMAIL_QUEUE,
        retry=services.retry_policy(message.attempts),
        job_id=job_id_for(message.id),
    )


def send_outbox_message(message_id: int) -> None:
    """Send one stored message and record the outcome; safe to run twice.

    Sent: SENT. A 4xx answer, a connection error or a timeout: RETRYING, then raises
    ``TemporaryMailFailure`` so that RQ retries with backoff (FAILED once the attempts are used
    up). A 5xx answer: FAILED with the reason, without a retry.
    """
    with claim(_claim_key(message_id)) as claimed:
        if not claimed:
            logger.info("mail %s is being sent by another worker; skipped", message_id)
            return
        _send_claimed(message_id)


def _send_claimed(message_id: int) -> None:
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status not in (OutboxStatus.QUEUED, OutboxStatus.RETRYING):
        logger.info("mail %s: nothing to send (%s)", message_id, message.status.value if message else "missing")
        return
    link = None
    try:
        # A security message's link is minted now, for this attempt only, and lives in the
        # SMTP message alone: never in the row, a log line or an error text.
        link = services.mint_secret_link(message) if message.secret_link else None
        result = send_row(message, link=link)
    except services.SecretLinkUnavailable as exc:
        services.mark_permanent_failure(message, str(exc))
        db.session.commit()
        return
    except Exception as exc:
        # Our own bug (template data, encoding): count it as a failed attempt so that a
        # broken message ends FAILED after the retries instead of looping forever.
        trace = _without(link, "".join(traceback.format_exception(exc)))
        logger.error("mail %s: unexpected error while sending\n%s", message_id, trace)
        result_error = _without(link, f"{type(exc).__name__}: {exc}")
        db.session.rollback()
        message = db.session.get(OutboxMessage, message_id)
        if message is None or message.status not in (OutboxStatus.QUEUED, OutboxStatus.RETRYING):
            return
        retry = services.mark_temporary_failure(message, result_error)
        db.session.commit()
        if retry:
            # Not chained: RQ stores and logs the traceback, and the original text may hold the link
            # (the scrubbed trace is logged above).
            raise TemporaryMailFailure(result_error) from None
        return
    error = _without(link, result.error)
    if result.outcome is Outcome.SENT:
        services.mark_sent(message)
        db.session.commit()
    elif result.outcome is Outcome.PERMANENT:
        services.mark_permanent_failure(message, error or "refused")
        db.session.commit()
    else:
        retry = services.mark_temporary_failure(message, error or "temporary failure")
        db.session.commit()
        if retry:
            raise TemporaryMailFailure(error)


def _without(link: str | None, text: str | None) -> str | None:
    """The error text with a security message's link (should a server or an exception echo it) removed."""
    if link and text:
        return text.replace(link, services.LINK_PLACEHOLDER)
    return text


@periodic(services.SWEEP_EVERY, queue=EMAIL_QUEUE, name="mail.sweep_outbox")
def sweep_outbox(now: datetime | None = None) -> list[int]:
    """Re-enqueue outbox rows whose job was lost (see ``services.requeue_lost_messages``)."""
    requeued = services.requeue_lost_messages(now=now)
    db.session.commit()
    return requeued
