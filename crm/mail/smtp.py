"""The SMTP edge: builds a Flask-Mail message from a stored outbox row, sends it, and sorts
the server's answer into delivered, try again later, or refused for good."""

from __future__ import annotations

import enum
import logging
import smtplib
import unicodedata
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

from flask import current_app
from flask_mail import BadHeaderError, Connection, Message
from markupsafe import escape

from crm.mail.models import LINK_PLACEHOLDER, OutboxMessage

logger = logging.getLogger(__name__)


def one_line(value: str | None, *, max_length: int | None = None) -> str:
    """Fold every line break, tab and control character into a single space.

    Names and subjects often come from user data; one stray newline must neither reach a
    header (header injection) nor stop the email that the change causes.
    """
    if not value:
        return ""
    cleaned = "".join(" " if unicodedata.category(char) in {"Cc", "Zl", "Zp"} else char for char in value)
    folded = " ".join(cleaned.split())
    return folded[:max_length].rstrip() if max_length else folded


class Outcome(enum.Enum):
    SENT = "sent"
    TEMPORARY = "temporary"  # 4xx, connection error, timeout: try again later
    PERMANENT = "permanent"  # 5xx: the server refused this message for good


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    error: str | None = None


class _Connection(Connection):
    """Flask-Mail 0.10 opens ``smtplib.SMTP`` without a timeout, so a silent server would hold a
    worker until RQ's job timeout. Same set-up, with ``MAIL_TIMEOUT_SECONDS``."""

    def configure_host(self) -> smtplib.SMTP | smtplib.SMTP_SSL:
        timeout = current_app.config.get("MAIL_TIMEOUT_SECONDS", 20)
        host: smtplib.SMTP | smtplib.SMTP_SSL
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(self.mail.server, self.mail.port, timeout=timeout)
        else:
            host = smtplib.SMTP(self.mail.server, self.mail.port, timeout=timeout)
        try:
            if self.mail.use_tls:
                host.starttls()
            if self.mail.username and self.mail.password:
                host.login(self.mail.username, self.mail.password)
        except BaseException:
            host.close()
            raise
        return host

    def __exit__(self, exc_type, exc_value, tb) -> None:
        # After a failed transaction the server may already have hung up; QUIT must not hide
        # the real error (Flask-Mail's own __exit__ would raise SMTPServerDisconnected instead).
        if self.host is None:
            return
        try:
            self.host.quit()
        except (smtplib.SMTPException, OSError):
            self.host.close()


class OutboxMail(Message):
    """Flask-Mail's message, with From, To and Subject written by the standard library's email
    policy. Flask-Mail 0.10 pre-encodes them with ``email.header.Header`` and then generates with
    ``policy.SMTP``, which re-folds that text and breaks long non-ASCII names and subjects on the
    wire ("Bjør nstjerne"). The policy also refuses any header value containing a line break."""

    def _message(self):
        msg = super()._message()  # its policy is email.policy.SMTP by now
        sender_name, sender_address = parseaddr(self.sender if isinstance(self.sender, str) else "")
        if sender_address:
            del msg["From"]
            msg["From"] = Address(display_name=sender_name, addr_spec=sender_address)
        if len(self.recipients) == 1 and isinstance(self.recipients[0], tuple):
            name, address = self.recipients[0]
            del msg["To"]
            msg["To"] = Address(display_name=name, addr_spec=address)
        if self.subject:
            del msg["Subject"]
            msg["Subject"] = self.subject
        return msg


def build_message(row: OutboxMessage, *, link: str | None = None) -> Message:
    """A multipart (text and HTML) message with the row's deterministic Message-ID. A security
    message gets ``link`` where its stored body has the placeholder; the row itself is not changed."""
    config = current_app.config
    name = one_line(row.to_name, max_length=200)
    address = row.to_address.strip()
    body_text, body_html = row.body_text, row.body_html
    if link is not None:
        body_text = body_text.replace(LINK_PLACEHOLDER, link)
        body_html = body_html.replace(LINK_PLACEHOLDER, str(escape(link)))
    message = OutboxMail(
        subject=one_line(row.subject, max_length=255),
        recipients=[(name, address)] if name else [address],
        body=body_text,
        html=body_html,
        sender=config["MAIL_DEFAULT_SENDER"],
        charset="utf-8",
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    if row.message_id:
        message.msgId = row.message_id
    return message


def send_row(row: OutboxMessage, *, link: str | None = None) -> SendResult:
    """Hand one stored message (with ``link`` for a security message) to the SMTP server and
    classify its answer. Never raises for SMTP or network trouble; other exceptions (our own bugs)
    propagate."""
    if "\r" in row.to_address or "\n" in row.to_address:
        return SendResult(Outcome.PERMANENT, "The recipient address contains a line break")
    message = build_message(row, link=link)
    state = current_app.extensions["mail"]
    if state.suppress:
        logger.info("MAIL_SUPPRESS_SEND is on: %s to %s is not sent", row.message_id, row.to_address)
    try:
        # With MAIL_SUPPRESS_SEND the connection only records the message (Flask-Mail's signal).
        with _Connection(state) as connection:
            connection.send(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{addr}: {code} {_text(reply)}" for addr, (code, reply) in exc.recipients.items())
        outcome = Outcome.TEMPORARY if any(400 <= code < 500 for code in codes) else Outcome.PERMANENT
        return SendResult(outcome, f"Recipient refused: {detail}")
    except smtplib.SMTPAuthenticationError as exc:
        # Our credentials, not this message: keep it and try again once the settings are fixed.
        return SendResult(Outcome.TEMPORARY, f"SMTP login failed: {exc.smtp_code} {_text(exc.smtp_error)}")
    except smtplib.SMTPResponseException as exc:
        outcome = Outcome.PERMANENT if 500 <= exc.smtp_code < 600 else Outcome.TEMPORARY
        return SendResult(outcome, f"{exc.smtp_code} {_text(exc.smtp_error)}")
    except BadHeaderError:
        return SendResult(Outcome.PERMANENT, "A header contained a line break")
    except (smtplib.SMTPException, OSError) as exc:  # refused/reset connection, timeout, disconnect
        return SendResult(Outcome.TEMPORARY, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return SendResult(Outcome.SENT)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
