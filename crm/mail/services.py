"""The email outbox: queueing, delivery state transitions, staff retries and history."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from rq import Retry
from sqlalchemy import Select, and_, func, or_, select

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.errors import DomainError
from crm.extensions import db
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.mail.smtp import one_line
from crm.models import utcnow

logger = logging.getLogger(__name__)

# Wait before each retry after a temporary failure (4xx, connection error): 1 min, 5 min,
# 15 min, 1 h, 3 h, 6 h, 12 h; about 22 hours in all, then the message is marked failed.
RETRY_INTERVALS: tuple[int, ...] = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
MAX_ATTEMPTS = len(RETRY_INTERVALS) + 1
# A QUEUED row whose job has not run within this time is taken to be lost. Short, so that what was written while
# Redis was down goes out within a minute of its return (the sweeper runs every SWEEP_EVERY); a row whose job is
# merely waiting in the queue is left alone whatever its age (``has_pending_job``).
LOST_JOB_GRACE = timedelta(seconds=30)
SWEEP_EVERY = timedelta(seconds=15)
SWEEP_BATCH = 500

PROBLEM_STATUSES = (OutboxStatus.FAILED, OutboxStatus.RETRYING)
RETRYABLE_STATUSES = (OutboxStatus.FAILED, OutboxStatus.RETRYING)

# One address, no display name, no spaces or characters that could start a second address.
_ADDRESS = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+\.[^@\s<>,;:\"()\[\]\\.]+$")


def clean_address(address: str) -> str:
    """The address trimmed and lower-cased; raises ``DomainError`` (field ``to``) when it is not
    a single plain email address."""
    value = (address or "").strip().lower()
    if len(value) > 254 or not _ADDRESS.match(value) or ".." in value:
        raise DomainError(_("“%(address)s” is not a valid email address.", address=one_line(address)), field="to")
    return value


def retry_policy(attempts_done: int) -> Retry | None:
    """RQ's retry for a send job that starts after ``attempts_done`` attempts: the remaining
    intervals, so RQ's schedule matches ``next_attempt_at``."""
    remaining = list(RETRY_INTERVALS[attempts_done:])
    return Retry(max=len(remaining), interval=remaining) if remaining else None


def queue_email(
    *,
    to: str,
    template: str,
    context: dict[str, Any] | None = None,
    to_name: str | None = None,
    recipient_user_id: int | None = None,
    locale: str | None = None,
) -> OutboxMessage:
    """Render ``templates/mail/<template>.{txt,html}`` and store the message in the current
    transaction; it is sent by a job after commit, and never if the transaction rolls back.

    The subject is the first line of the text template, prefixed ``Subject:``. The templates are
    rendered in ``locale`` (the recipient's language; the default locale when not given).
    Line breaks in the name and subject are folded into spaces; raises ``DomainError`` for an
    address that is not a single plain email address.
    """
    address = clean_address(to)
    locale = locale or current_app.config["BABEL_DEFAULT_LOCALE"]
    context = {"email_locale": locale, **(context or {})}
    with force_locale(locale):
        text = render_template(f"mail/{template}.txt", **context)
        html = render_template(f"mail/{template}.html", **context)
    first_line, _newline, body_text = text.partition("\n")
    if not first_line.startswith("Subject:"):
        raise ValueError(f"mail/{template}.txt must start with a 'Subject:' line")
    message = OutboxMessage(
        template=template,
        to_address=address,
        to_name=one_line(to_name, max_length=200) or None,
        recipient_user_id=recipient_user_id,
        subject=one_line(first_line.removeprefix("Subject:"), max_length=255),
        body_text=body_text.lstrip("\n"),
        body_html=html,
        status=OutboxStatus.QUEUED,
        attempts=0,
    )
    db.session.add(message)
    db.session.flush()
    domain = current_app.config["MAIL_MESSAGE_ID_DOMAIN"]
    message.message_id = f"<outbox-{message.id}@{domain}>"
    from crm.mail.jobs import enqueue_send

    enqueue_send(message)
    logger.info("mail %s queued template=%s", message.id, template)
    return message


# --- delivery state, driven by the send job -------------------------------------------------


def mark_sent(message: OutboxMessage, *, now: datetime | None = None) -> None:
    """The server accepted the message."""
    _require(message, (OutboxStatus.QUEUED, OutboxStatus.RETRYING))
    message.status = OutboxStatus.SENT
    message.attempts += 1
    message.sent_at = now or utcnow()
    message.next_attempt_at = None
    message.last_error = None
    logger.info("mail %s sent actor=worker attempts=%s", message.id, message.attempts)


def mark_temporary_failure(message: OutboxMessage, error: str, *, now: datetime | None = None) -> bool:
    """A 4xx answer or a connection problem. Returns True when another attempt is due (the row is
    RETRYING with ``next_attempt_at``), False when the attempts are used up (the row is FAILED)."""
    _require(message, (OutboxStatus.QUEUED, OutboxStatus.RETRYING))
    now = now or utcnow()
    message.attempts += 1
    if message.attempts >= MAX_ATTEMPTS:
        message.status = OutboxStatus.FAILED
        message.next_attempt_at = None
        message.last_error = f"Gave up after {message.attempts} attempts: {error}"
        logger.warning("mail %s failed actor=worker attempts=%s: %s", message.id, message.attempts, error)
        return False
    message.status = OutboxStatus.RETRYING
    message.last_error = error
    message.next_attempt_at = now + timedelta(seconds=RETRY_INTERVALS[message.attempts - 1])
    logger.info(
        "mail %s retrying actor=worker attempts=%s at=%s: %s",
        message.id,
        message.attempts,
        message.next_attempt_at.isoformat(),
        error,
    )
    return True


def mark_permanent_failure(message: OutboxMessage, reason: str) -> None:
    """A 5xx answer: the server refused the message for good; it is not tried again."""
    _require(message, (OutboxStatus.QUEUED, OutboxStatus.RETRYING))
    message.attempts += 1
    message.status = OutboxStatus.FAILED
    message.next_attempt_at = None
    message.last_error = reason
    logger.warning("mail %s failed actor=worker attempts=%s: %s", message.id, message.attempts, reason)


def _require(message: OutboxMessage, states: tuple[OutboxStatus, ...]) -> None:
    if message.status not in states:
        raise DomainError(_("This email is %(status)s and cannot be changed.", status=message.status.label))


# --- the sweeper ------------------------------------------------------------------------------


def requeue_lost_messages(*, now: datetime | None = None, grace: timedelta = LOST_JOB_GRACE) -> list[int]:
    """Enqueue again the rows whose job was lost: QUEUED rows older than ``grace`` and RETRYING
    rows whose next attempt is due, when no job for them is queued, scheduled or running.
    Returns their ids. The send job is idempotent and keeps the Message-ID, so an extra run
    cannot send twice."""
    from crm.mail.jobs import enqueue_send, has_pending_job

    now = now or utcnow()
    stmt = (
        select(OutboxMessage)
        .where(
            or_(
                and_(
                    OutboxMessage.status == OutboxStatus.QUEUED,
                    func.coalesce(OutboxMessage.enqueued_at, OutboxMessage.created_at) < now - grace,
                ),
                and_(OutboxMessage.status == OutboxStatus.RETRYING, OutboxMessage.next_attempt_at <= now),
            )
        )
        .order_by(OutboxMessage.id)
        .limit(SWEEP_BATCH)
    )
    requeued = []
    for message in db.session.scalars(stmt):
        if has_pending_job(message.id):
            continue
        message.enqueued_at = now
        enqueue_send(message, replace=True)
        requeued.append(message.id)
    if requeued:
        db.session.flush()
        logger.warning("mail sweeper re-enqueued %s lost message(s): %s", len(requeued), requeued[:20])
    return requeued


# --- staff ------------------------------------------------------------------------------------


def retry_message(message: OutboxMessage, *, actor: User, ip_address: str | None = None) -> None:
    """Send a FAILED or RETRYING message again now, with a fresh round of attempts.

    Raises ``DomainError`` for any other state. Audit logged as ``mail.message.retried``.
    """
    if message.status not in RETRYABLE_STATUSES:
        raise DomainError(_("Only failed or retrying emails can be sent again."))
    from crm.mail.jobs import enqueue_send

    details = {"previous_status": message.status.value, "attempts": message.attempts, "last_error": message.last_error}
    message.status = OutboxStatus.QUEUED
    message.attempts = 0
    message.next_attempt_at = None
    message.enqueued_at = utcnow()
    db.session.flush()
    enqueue_send(message, replace=True)
    record_audit("mail.message.retried", actor=actor, target=message, ip_address=ip_address, details=details)
    logger.info("mail %s retry requested actor=%s", message.id, actor.email)


def problem_messages_query() -> Select[tuple[OutboxMessage]]:
    """Failed and retrying messages, newest first."""
    return (
        select(OutboxMessage)
        .where(OutboxMessage.status.in_(PROBLEM_STATUSES))
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    )


def email_history_query(user: User) -> Select[tuple[OutboxMessage]]:
    """The messages sent (or to be sent) to a person, by user id or by their email address; newest first."""
    return (
        select(OutboxMessage)
        .where(
            or_(
                OutboxMessage.recipient_user_id == user.id,
                OutboxMessage.to_address == user.email.strip().lower(),
            )
        )
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    )


def record_history_viewed(user: User, *, actor: User, page: int, ip_address: str | None = None) -> None:
    """A staff member looked at one page of a person's email history: audit logged as ``mail.history.viewed``."""
    record_audit("mail.history.viewed", actor=actor, target=user, ip_address=ip_address, details={"page": page})


def view_message(message: OutboxMessage, *, actor: User, ip_address: str | None = None) -> OutboxMessage:
    """A staff member reads one message (its body is personal data): audit logged as
    ``mail.message.viewed``."""
    record_audit("mail.message.viewed", actor=actor, target=message, ip_address=ip_address)
    return message
