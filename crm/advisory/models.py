"""Advisory cases: members ask, advisers answer, on time and in confidence.

Themes and OECD steps are enums (not tables): they come from the OECD guidance and the
organisation's fixed list of advisory areas, they need translated labels, and changing them is a code
change anyway (reports and the dashboard group by them). A case's themes live in ``case_themes``.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models import TimestampMixin, UTCDateTime, VersionedMixin, str_enum, utcnow

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.members.models import Contact, MembershipCategory, Organisation

TRANSPARENCY_ACT_DAYS = 21  # the Transparency Act §7: answer within three weeks of receiving the request


class Theme(enum.Enum):
    HUMAN_RIGHTS = "human_rights"
    FORCED_LABOUR = "forced_labour"
    CHILD_LABOUR = "child_labour"
    LIVING_WAGE = "living_wage"
    WORKING_HOURS = "working_hours"
    HEALTH_SAFETY = "health_safety"
    FREEDOM_OF_ASSOCIATION = "freedom_of_association"
    DISCRIMINATION = "discrimination"
    MIGRANT_WORKERS = "migrant_workers"
    ENVIRONMENT_CLIMATE = "environment_climate"
    ANTI_CORRUPTION = "anti_corruption"
    ANIMAL_WELFARE = "animal_welfare"
    TRANSPARENCY_ACT = "transparency_act"
    PURCHASING_PRACTICES = "purchasing_practices"
    PUBLIC_PROCUREMENT = "public_procurement"

    @property
    def label(self):
        return THEME_LABELS[self]


THEME_LABELS = {
    Theme.HUMAN_RIGHTS: _l("Human rights"),
    Theme.FORCED_LABOUR: _l("Forced labour"),
    Theme.CHILD_LABOUR: _l("Child labour"),
    Theme.LIVING_WAGE: _l("Living wage"),
    Theme.WORKING_HOURS: _l("Working hours"),
    Theme.HEALTH_SAFETY: _l("Health and safety"),
    Theme.FREEDOM_OF_ASSOCIATION: _l("Freedom of association"),
    Theme.DISCRIMINATION: _l("Discrimination"),
    Theme.MIGRANT_WORKERS: _l("Migrant workers"),
    Theme.ENVIRONMENT_CLIMATE: _l("Environment and climate"),
    Theme.ANTI_CORRUPTION: _l("Anti-corruption"),
    Theme.ANIMAL_WELFARE: _l("Animal welfare"),
    Theme.TRANSPARENCY_ACT: _l("The Transparency Act"),
    Theme.PURCHASING_PRACTICES: _l("Purchasing practices"),
    Theme.PUBLIC_PROCUREMENT: _l("Public procurement and contract follow-up"),
}

OECD_STEPS = {
    1: _l("1 Embed responsible business conduct"),
    2: _l("2 Identify and assess adverse impacts"),
    3: _l("3 Cease, prevent and mitigate"),
    4: _l("4 Track implementation and results"),
    5: _l("5 Communicate how impacts are addressed"),
    6: _l("6 Provide for or cooperate in remediation"),
}


class Urgency(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"

    @property
    def label(self):
        return {Urgency.LOW: _l("Low"), Urgency.NORMAL: _l("Normal"), Urgency.HIGH: _l("High")}[self]


class Visibility(enum.Enum):
    ORGANISATION = "organisation"  # everyone at the organisation with portal access
    PRIVATE = "private"  # the requester and the organisation's main contact(s)

    @property
    def label(self):
        return {
            Visibility.ORGANISATION: _l("Everyone at our organisation"),
            Visibility.PRIVATE: _l("Only me and our main contact"),
        }[self]


class CaseType(enum.Enum):
    ORDINARY = "ordinary"
    TRANSPARENCY_REQUEST = "transparency_request"  # help with an information request under the Transparency Act

    @property
    def label(self):
        return {
            CaseType.ORDINARY: _l("Question"),
            CaseType.TRANSPARENCY_REQUEST: _l("Information request under the Transparency Act"),
        }[self]


class CaseStatus(enum.Enum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_MEMBER = "waiting_for_member"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"

    @property
    def label(self):
        return STATUS_LABELS[self]

    @property
    def is_open(self) -> bool:
        return self not in (CaseStatus.RESOLVED, CaseStatus.CLOSED)


STATUS_LABELS = {
    CaseStatus.NEW: _l("New"),
    CaseStatus.ASSIGNED: _l("Assigned"),
    CaseStatus.IN_PROGRESS: _l("In progress"),
    CaseStatus.WAITING_FOR_MEMBER: _l("Waiting for member"),
    CaseStatus.RESOLVED: _l("Resolved"),
    CaseStatus.CLOSED: _l("Closed"),
    CaseStatus.REOPENED: _l("Reopened"),
}
OPEN_STATUSES = tuple(status for status in CaseStatus if status.is_open)


class MessageKind(enum.Enum):
    MEMBER_MESSAGE = "member_message"
    STAFF_REPLY = "staff_reply"
    INTERNAL_NOTE = "internal_note"  # staff only: never on a member-facing page, email or export


class Case(TimestampMixin, db.Model):
    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("oecd_step IS NULL OR (oecd_step BETWEEN 1 AND 6)", name="oecd_step_range"),
        # The queue: open cases by assignee / status, sorted by what is due first.
        Index("ix_cases_status_assignee", "status", "assignee_id"),
        Index("ix_cases_status_resolution_due", "status", "resolution_due_at"),
        Index("ix_cases_organisation_status", "organisation_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    requester_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    requester_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    oecd_step: Mapped[int | None] = mapped_column()
    urgency: Mapped[Urgency] = mapped_column(str_enum(Urgency), default=Urgency.NORMAL)
    visibility: Mapped[Visibility] = mapped_column(str_enum(Visibility), default=Visibility.ORGANISATION)
    case_type: Mapped[CaseType] = mapped_column(str_enum(CaseType), default=CaseType.ORDINARY)
    received_on: Mapped[date | None] = mapped_column()  # Transparency Act requests: when the member got it
    legal_deadline_on: Mapped[date | None] = mapped_column()  # received_on + 3 weeks
    status: Mapped[CaseStatus] = mapped_column(str_enum(CaseStatus), default=CaseStatus.NEW)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The clock stops while the case waits for the member: ``paused_at`` is set while it waits and
    # ``paused_seconds`` adds up the business seconds of every finished pause.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_seconds: Mapped[int] = mapped_column(default=0)
    # The part of ``paused_seconds`` (and of a pause running then) before the first response, so that
    # the first-response time leaves out the waiting as the resolution time does.
    first_response_paused_seconds: Mapped[int] = mapped_column(default=0)

    organisation: Mapped[Organisation] = relationship()
    requester_user: Mapped[User | None] = relationship(foreign_keys=[requester_user_id])
    requester_contact: Mapped[Contact | None] = relationship(foreign_keys=[requester_contact_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    theme_links: Mapped[list[CaseTheme]] = relationship(
        back_populates="case", cascade="all, delete-orphan", lazy="selectin"
    )
    messages: Mapped[list[CaseMessage]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="(CaseMessage.created_at, CaseMessage.id)"
    )
    attachments: Mapped[list[CaseAttachment]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseAttachment.id"
    )
    time_entries: Mapped[list[CaseTimeEntry]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="(CaseTimeEntry.spent_on, CaseTimeEntry.id)"
    )

    @property
    def themes(self) -> list[Theme]:
        order = list(Theme)
        return sorted((link.theme for link in self.theme_links), key=order.index)

    @property
    def reference(self) -> str:
        return f"#{self.id}"

    @property
    def oecd_step_label(self):
        return OECD_STEPS.get(self.oecd_step) if self.oecd_step else None

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def next_due_at(self) -> datetime | None:
        """The deadline that matters now: first response until answered, then resolution; none when
        resolved, closed or waiting for the member."""
        if not self.status.is_open or self.is_paused:
            return None
        if self.first_responded_at is None and self.first_response_due_at is not None:
            return self.first_response_due_at
        return self.resolution_due_at

    def is_breached(self, now: datetime | None = None) -> bool:
        due = self.next_due_at
        return due is not None and due < (now or utcnow())

    @property
    def expected_answer_at(self) -> datetime | None:
        """What the member is told to expect."""
        return self.next_due_at

    def __repr__(self) -> str:
        return f"<Case {self.id} {self.status.value}>"


class CaseTheme(db.Model):
    __tablename__ = "case_themes"
    __table_args__ = (Index("ix_case_themes_theme", "theme"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    theme: Mapped[Theme] = mapped_column(str_enum(Theme), primary_key=True)

    case: Mapped[Case] = relationship(back_populates="theme_links")


class CaseMessage(db.Model):
    __tablename__ = "case_messages"
    __table_args__ = (Index("ix_case_messages_case_kind", "case_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[MessageKind] = mapped_column(str_enum(MessageKind))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="messages")
    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[CaseAttachment]] = relationship(back_populates="message")

    @property
    def is_internal(self) -> bool:
        return self.kind is MessageKind.INTERNAL_NOTE


class CaseAttachment(db.Model):
    """A file in the storage (crm/storage.py) under the key ``stored_name`` (random); never under static/."""

    __tablename__ = "case_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("case_messages.id", ondelete="SET NULL"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="attachments")
    message: Mapped[CaseMessage | None] = relationship(back_populates="attachments")
    uploaded_by: Mapped[User | None] = relationship()


class CaseTimeEntry(db.Model):
    __tablename__ = "case_time_entries"
    __table_args__ = (CheckConstraint("minutes > 0", name="minutes_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    minutes: Mapped[int] = mapped_column()
    spent_on: Mapped[date] = mapped_column(index=True)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="time_entries")
    staff: Mapped[User | None] = relationship()


class ReplyTemplate(VersionedMixin, TimestampMixin, db.Model):
    """A canned reply; ``{organisation}``, ``{contact}`` and ``{adviser}`` are filled in when used."""

    __tablename__ = "reply_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    body: Mapped[str] = mapped_column(Text)


class ServiceTarget(VersionedMixin, db.Model):
    """Response and resolution targets in business hours, per membership category and urgency."""

    __tablename__ = "service_targets"
    __table_args__ = (
        UniqueConstraint("category_id", "urgency"),
        CheckConstraint("first_response_hours > 0 AND resolution_hours >= first_response_hours", name="hours"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("membership_categories.id", ondelete="CASCADE"))
    urgency: Mapped[Urgency] = mapped_column(str_enum(Urgency))
    first_response_hours: Mapped[int] = mapped_column()
    resolution_hours: Mapped[int] = mapped_column()

    category: Mapped[MembershipCategory] = relationship()


class CaseAccessLog(db.Model):
    """Who on the staff viewed, exported or downloaded from which case, and when."""

    __tablename__ = "case_access_logs"
    __table_args__ = (Index("ix_case_access_logs_case_at", "case_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # view, export, download
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User | None] = relationship()


class AdviserAbsence(VersionedMixin, db.Model):
    """An adviser is away from ``starts_on`` to ``ends_on`` (inclusive); new cases go to ``backup``."""

    __tablename__ = "adviser_absences"
    __table_args__ = (
        CheckConstraint("ends_on >= starts_on", name="period"),
        CheckConstraint("backup_id IS NULL OR backup_id <> adviser_id", name="backup_not_self"),
        Index("ix_adviser_absences_adviser_period", "adviser_id", "starts_on", "ends_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    adviser_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    starts_on: Mapped[date] = mapped_column()
    ends_on: Mapped[date] = mapped_column()
    note: Mapped[str | None] = mapped_column(String(200))

    adviser: Mapped[User] = relationship(foreign_keys=[adviser_id])
    backup: Mapped[User | None] = relationship(foreign_keys=[backup_id])


class CaseReminder(db.Model):
    """A reminder sent to the assignee before a deadline: one per case, kind and due time."""

    __tablename__ = "case_reminders"
    __table_args__ = (UniqueConstraint("case_id", "kind", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # first_response, resolution
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def legal_deadline(received_on: date) -> date:
    return received_on + timedelta(days=TRANSPARENCY_ACT_DAYS)
