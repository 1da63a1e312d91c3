"""Queueing email through the outbox."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template

from crm.errors import DomainError
from crm.extensions import db
from crm.jobs import enqueue_after_commit
from crm.mail.models import OutboxMessage


def _single_line(value: str, what: str) -> str:
    if "\r" in value or "\n" in value:
        raise DomainError(f"{what} must be a single line")
    return value.strip()


def queue_email(
    *,
    to: str,
    template: str,
    context: dict[str, Any] | None = None,
    to_name: str | None = None,
    recipient_user_id: int | None = None,
) -> OutboxMessage:
    """Render ``templates/mail/<template>.{txt,html}`` and store the message in the current
    transaction; it is sent by a job after commit, and never if the transaction rolls back.

    The subject is the first line of the text template, prefixed ``Subject:``.
    """
    context = dict(context or {})
    text = render_template(f"mail/{template}.txt", **context)
    html = render_template(f"mail/{template}.html", **context)
    first_line, _, body_text = text.partition("\n")
    if not first_line.startswith("Subject:"):
        raise ValueError(f"mail/{template}.txt must start with a 'Subject:' line")
    message = OutboxMessage(
        template=template,
        to_address=_single_line(to, "The recipient address"),
        to_name=_single_line(to_name, "The recipient name") if to_name else None,
        recipient_user_id=recipient_user_id,
        subject=_single_line(first_line.removeprefix("Subject:"), "The subject"),
        body_text=body_text.lstrip("\n"),
        body_html=html,
    )
    db.session.add(message)
    db.session.flush()
    domain = current_app.config["MAIL_MESSAGE_ID_DOMAIN"]
    message.message_id = f"<outbox-{message.id}@{domain}>"
    from crm.mail.jobs import send_outbox_message

    enqueue_after_commit(send_outbox_message, message.id, queue="emails")
    return message
