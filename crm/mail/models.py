"""The email outbox: one row per message, written in the same transaction as its cause."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.models import UTCDateTime, str_enum, utcnow

# What a security message's stored body holds where its link goes; staff read this text, and the
# send job puts a freshly minted link in its place in the SMTP message only.
LINK_PLACEHOLDER = "[link removed]"


class OutboxStatus(enum.Enum):
    QUEUED = "queued"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """The status as staff read it, in their language."""
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    OutboxStatus.QUEUED: _l("Queued"),
    OutboxStatus.RETRYING: _l("Retrying"),
    OutboxStatus.SENT: _l("Sent"),
    OutboxStatus.FAILED: _l("Failed"),
}


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    template: Mapped[str] = mapped_column(String(100))
    to_address: Mapped[str] = mapped_column(String(254), index=True)
    to_name: Mapped[str | None] = mapped_column(String(200))
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # A security message (password reset, invitation) is stored without its link: the body holds
    # ``LINK_PLACEHOLDER`` and the send job mints the link of this purpose for the recipient,
    # into the SMTP message only. So no stored row, page or retry ever holds a usable token.
    secret_link: Mapped[str | None] = mapped_column(String(20))
    # What the message is about (``cases``, 42), so that reading it can be governed and logged by
    # the feature that owns that record.
    related_type: Mapped[str | None] = mapped_column(String(50))
    related_id: Mapped[int | None] = mapped_column()
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus),
        default=OutboxStatus.QUEUED,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
