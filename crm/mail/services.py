"""The email outbox: queueing, delivery state transitions, staff retries and history."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from rq import Retry
from sqlalchemy import Select, and_, func, or_, select

from crm.audit.services import record_audit
from crm.auth.models import Role, User
from crm.errors import DomainError
from crm.extensions import db
from crm.mail.models import LINK_PLACEHOLDER, OutboxMessage, OutboxStatus
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


# --- security messages: stored without their link ---------------------------------------------


class SecretLinkUnavailable(Exception):
    """No link may be minted for this message any more (the reason, in English, like SMTP errors)."""


# purpose -> build(user): the link for that user, or None when it may no longer be issued
# (an invitation to someone who has chosen a password, a disabled login). auth registers its
# password links here: auth imports mail, so mail cannot import auth's token code.
_secret_link_builders: dict[str, Callable[[User], str | None]] = {}


def register_secret_link(purpose: str, build: Callable[[User], str | None]) -> None:
    """Let ``queue_email(secret_link=purpose)`` store a message whose link ``build(user)`` mints at send time."""
    _secret_link_builders[purpose] = build


def mint_secret_link(message: OutboxMessage) -> str:
    """A fresh link for a security message's recipient, for the send job to put in the SMTP message
    (every attempt and every retry gets its own). Raises ``SecretLinkUnavailable`` when the
    recipient is gone, disabled, no longer has the address the message goes to, or the link's
    purpose no longer applies."""
    build = _secret_link_builders.get(message.secret_link or "")
    if build is None:
        raise SecretLinkUnavailable(f"No link of kind {message.secret_link!r} can be made")
    user = db.session.get(User, message.recipient_user_id) if message.recipient_user_id else None
    if user is None or not user.is_enabled:
        raise SecretLinkUnavailable("The link was not sent: the login is gone or disabled")
    if user.email.strip().lower() != message.to_address:
        raise SecretLinkUnavailable("The link was not sent: the address is no longer the person's")
    link = build(user)
    if link is None:
        raise SecretLinkUnavailable("The link was not sent: it no longer applies (a password has been chosen)")
    return link


# --- who reads message bodies -----------------------------------------------------------------


@dataclass(frozen=True)
class BodyReaders:
    """Who besides administrators may read the bodies of messages about one kind of record, and what
    reading one records there (``on_read(message, actor)``)."""

    roles: frozenset[Role]
    on_read: Callable[[OutboxMessage, User], None] | None = None


# related_type -> readers; a feature registers the records its emails are about (advisory: cases).
_body_readers: dict[str, BodyReaders] = {}


def register_body_readers(
    related_type: str, *, roles: set[Role], on_read: Callable[[OutboxMessage, User], None] | None = None
) -> None:
    """Let staff with one of ``roles`` read the bodies of messages about ``related_type`` records;
    ``on_read`` runs (in the reader's transaction) each time one is read."""
    _body_readers[related_type] = BodyReaders(frozenset(roles), on_read)


def can_read_body(user: User, message: OutboxMessage) -> bool:
    """The one rule for every page that shows outbox messages: administrators read subjects and bodies;
    the team a feature registered reads those of messages about its records (the adviser team: cases);
    other staff see the metadata only (recipient, template, times, status)."""
    if not user.is_staff:
        return False
    if Role.ADMIN in user.roles:
        return True
    readers = _body_readers.get(message.related_type or "")
    return readers is not None and bool(user.roles & readers.roles)


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
    secret_link: str | None = None,
    related: Any = None,
) -> OutboxMessage:
    """Render ``templates/mail/<template>.{txt,html}`` and store the message in the current
    transaction; it is sent by a job after commit, and never if the transaction rolls back.

    The subject is the first line of the text template, prefixed ``Subject:``. The templates are
    rendered in ``locale`` (the recipient's language; the default locale when not given).
    Line breaks in the name and subject are folded into spaces; raises ``DomainError`` for an
    address that is not a single plain email address.

    A security message passes ``secret_link`` (a purpose registered with ``register_secret_link``)
    and ``LINK_PLACEHOLDER`` where its template shows the link; it needs ``recipient_user_id``.
    What is stored holds no token: the send job mints the link for the recipient at each attempt.
    ``related`` (a model row) is the record the message is about, for ``can_read_body``.
    """
    if secret_link is not None and (secret_link not in _secret_link_builders or recipient_user_id is None):
        raise ValueError(f"A {secret_link!r} link needs a registered builder and a recipient user")
    address = clean_address(to)
    locale = locale or current_app.config["BABEL_DEFAULT_LOCALE"]
    context = {"email_locale": locale, **(context or {})}
    with force_locale(locale):
        text = render_template(f"mail/{template}.txt", **context)
        html = render_template(f"mail/{template}.html", **context)
    first_line, _newline, body_text = text.partition("\n")
    if not first_line.startswith("Subject:"):
        raise ValueError(f"mail/{template}.txt must start with a 'Subject:' line")
    if secret_link is not None and not (LINK_PLACEHOLDER in body_text and LINK_PLACEHOLDER in html):
        raise ValueError(f"mail/{template} must show the link where LINK_PLACEHOLDER is passed")
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
        secret_link=secret_link,
        related_type=related.__tablename__ if related is not None else None,
        related_id=related.id if related is not None else None,
    )
    db.session.add(message)
    db.session.flush()
    domain = current_app.config["MAIL_MESSAGE_ID_DOMAIN"]
    # The row id alone repeats when a database is rebuilt (the same Message-ID on two different
    # emails, which receivers then drop as duplicates); the random part, stored with the row, keeps
    # it unique while every retry of this row keeps its Message-ID.
    message.message_id = f"<outbox-{message.id}.{secrets.token_hex(8)}@{domain}>"
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
    from crm.jobs import has_pending_job
    from crm.mail.jobs import enqueue_send, job_id_for

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
        if has_pending_job(job_id_for(message.id)):
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


def view_message(message: OutboxMessage, *, actor: User, ip_address: str | None = None) -> bool:
    """A staff member opens one message; returns whether they may read its subject and body
    (``can_read_body``; the others see its metadata). Audit logged as ``mail.message.viewed``
    (with ``content_shown``); reading the body of a message about a record also runs
    that feature's ``on_read`` (the case access log for advisory emails)."""
    readable = can_read_body(actor, message)
    record_audit(
        "mail.message.viewed", actor=actor, target=message, ip_address=ip_address, details={"content_shown": readable}
    )
    readers = _body_readers.get(message.related_type or "")
    if readable and readers is not None and readers.on_read is not None:
        readers.on_read(message, actor)
    return readable
