"""Memberships, their categories and their status history."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models import TimestampMixin, UTCDateTime, VersionedMixin, str_enum, utcnow

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.members.models.organisations import Organisation


class MembershipStatus(enum.Enum):
    PROSPECT = "prospect"
    APPLIED = "applied"
    BOARD_REVIEW = "board_review"
    ACTIVE = "active"
    NOTICE_GIVEN = "notice_given"
    ENDED = "ended"
    REJECTED = "rejected"
    EXCLUDED = "excluded"

    @property
    def label(self):
        return STATUS_LABELS[self]

    @property
    def is_member(self) -> bool:
        """Members in good standing (they pay, vote and use the portal)."""
        return self in (MembershipStatus.ACTIVE, MembershipStatus.NOTICE_GIVEN)


STATUS_LABELS = {
    MembershipStatus.PROSPECT: _l("Prospect"),
    MembershipStatus.APPLIED: _l("Applied"),
    MembershipStatus.BOARD_REVIEW: _l("Board review"),
    MembershipStatus.ACTIVE: _l("Active"),
    MembershipStatus.NOTICE_GIVEN: _l("Notice given"),
    MembershipStatus.ENDED: _l("Ended"),
    MembershipStatus.REJECTED: _l("Rejected"),
    MembershipStatus.EXCLUDED: _l("Excluded"),
}


class MembershipCategory(db.Model):
    """Membership categories are data (company, organisation, municipality ...); fee schedules hang on them."""

    __tablename__ = "membership_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int] = mapped_column(default=100)

    def __repr__(self) -> str:
        return f"<MembershipCategory {self.code}>"


class Membership(VersionedMixin, TimestampMixin, db.Model):
    """One per organisation; its status changes only through ``change_membership_status``."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_status_category", "status", "category_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    status: Mapped[MembershipStatus] = mapped_column(
        str_enum(MembershipStatus), default=MembershipStatus.PROSPECT, index=True
    )
    category_id: Mapped[int] = mapped_column(ForeignKey("membership_categories.id"), index=True)
    adviser_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    principles_version: Mapped[str | None] = mapped_column(String(20))
    principles_accepted_on: Mapped[date | None] = mapped_column()
    applied_on: Mapped[date | None] = mapped_column()
    decision_on: Mapped[date | None] = mapped_column()
    start_on: Mapped[date | None] = mapped_column()
    end_on: Mapped[date | None] = mapped_column()
    basic_level_deadline: Mapped[date | None] = mapped_column()

    # A staff override of the calculated fee (every year until removed), with who, when and why.
    fee_override_ore: Mapped[int | None] = mapped_column()
    fee_override_reason: Mapped[str | None] = mapped_column(Text)
    fee_override_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    fee_override_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    organisation: Mapped[Organisation] = relationship(back_populates="membership")
    category: Mapped[MembershipCategory] = relationship()
    adviser: Mapped[User | None] = relationship(foreign_keys=[adviser_id])
    fee_override_by: Mapped[User | None] = relationship(foreign_keys=[fee_override_by_id])
    events: Mapped[list[MembershipEvent]] = relationship(
        back_populates="membership",
        cascade="all, delete-orphan",
        order_by="(MembershipEvent.at.desc(), MembershipEvent.id.desc())",
    )

    def __repr__(self) -> str:
        return f"<Membership {self.id} {self.status.value}>"


class MembershipEvent(db.Model):
    """One status change of a membership: the history staff read on the organisation page."""

    __tablename__ = "membership_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[MembershipStatus | None] = mapped_column(str_enum(MembershipStatus))
    to_status: Mapped[MembershipStatus] = mapped_column(str_enum(MembershipStatus))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    on_date: Mapped[date] = mapped_column()  # the date the change takes effect (decision, start, end)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    membership: Mapped[Membership] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()

    # Not stored: the contacts that ``change_membership_status`` invited to the portal with this change.
    invited = ()
