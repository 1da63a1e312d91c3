"""Organisations, their sector tags and their contact people."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models import TimestampMixin, UTCDateTime, VersionedMixin, str_enum

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.members.models.memberships import Membership


class OrganisationKind(enum.Enum):
    COMPANY = "company"
    MUNICIPALITY = "municipality"
    COUNTY = "county"
    STATE_BODY = "state_body"
    ORGANISATION = "organisation"

    @property
    def label(self):
        return KIND_LABELS[self]


KIND_LABELS = {
    OrganisationKind.COMPANY: _l("Company"),
    OrganisationKind.MUNICIPALITY: _l("Municipality"),
    OrganisationKind.COUNTY: _l("County"),
    OrganisationKind.STATE_BODY: _l("State body"),
    OrganisationKind.ORGANISATION: _l("Organisation"),
}


class TransparencyScope(enum.Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"

    @property
    def label(self):
        return {self.YES: _l("Yes"), self.NO: _l("No"), self.UNKNOWN: _l("Unknown")}[self]


class ContactRole(enum.Enum):
    MAIN_CONTACT = "main_contact"
    INVOICE_CONTACT = "invoice_contact"
    REPORTING_CONTACT = "reporting_contact"
    SUSTAINABILITY_LEAD = "sustainability_lead"
    PURCHASER = "purchaser"
    MANAGER = "manager"
    TEAM_MEMBER = "team_member"

    @property
    def label(self):
        return CONTACT_ROLE_LABELS[self]


CONTACT_ROLE_LABELS = {
    ContactRole.MAIN_CONTACT: _l("Main contact"),
    ContactRole.INVOICE_CONTACT: _l("Invoice contact"),
    ContactRole.REPORTING_CONTACT: _l("Reporting contact"),
    ContactRole.SUSTAINABILITY_LEAD: _l("Sustainability lead"),
    ContactRole.PURCHASER: _l("Purchaser / contract manager"),
    ContactRole.MANAGER: _l("Manager"),
    ContactRole.TEAM_MEMBER: _l("Team member"),
}


def format_orgnr(orgnr: str | None) -> str:
    """``974 760 673``."""
    if not orgnr:
        return ""
    return f"{orgnr[:3]} {orgnr[3:6]} {orgnr[6:]}" if len(orgnr) == 9 else orgnr


def format_phone(phone: str | None) -> str:
    """``+47 22 33 44 55`` for Norwegian numbers; others as stored."""
    if not phone:
        return ""
    if phone.startswith("+47") and len(phone) == 11:
        digits = phone[3:]
        return "+47 " + " ".join(digits[i : i + 2] for i in range(0, 8, 2))
    return phone


organisation_sectors = Table(
    "organisation_sectors",
    db.metadata,
    Column("organisation_id", ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True),
    Column("sector_id", ForeignKey("sectors.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Sector(db.Model):
    """A sector tag (textiles, food, ICT ...), used for filtering and network meetings."""

    __tablename__ = "sectors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)

    def __repr__(self) -> str:
        return f"<Sector {self.name}>"


class Organisation(VersionedMixin, TimestampMixin, db.Model):
    __tablename__ = "organisations"
    __table_args__ = (
        UniqueConstraint("country", "foreign_id"),
        # Norwegian organisations have an organisation number; foreign ones a national id instead.
        CheckConstraint("orgnr IS NOT NULL OR foreign_id IS NOT NULL", name="identified"),
        # PostgreSQL only: SQLite cannot reflect an expression index, so every batch migration (which reflects the
        # table and the tables it references) warned, and recreating the table silently dropped it.
        Index("ix_organisations_name_lower", func.lower(text("name"))).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    orgnr: Mapped[str | None] = mapped_column(String(9), unique=True)
    country: Mapped[str] = mapped_column(String(2), default="NO")
    foreign_id: Mapped[str | None] = mapped_column(String(50))
    kind: Mapped[OrganisationKind] = mapped_column(str_enum(OrganisationKind), index=True)
    is_contracting_authority: Mapped[bool] = mapped_column(default=False)
    employees: Mapped[int | None] = mapped_column()
    inhabitants: Mapped[int | None] = mapped_column()
    annual_turnover_nok: Mapped[int | None] = mapped_column(BigInteger)

    postal_street: Mapped[str | None] = mapped_column(String(200))
    postal_postcode: Mapped[str | None] = mapped_column(String(10))
    postal_city: Mapped[str | None] = mapped_column(String(100))
    postal_country: Mapped[str] = mapped_column(String(2), default="NO")
    visiting_street: Mapped[str | None] = mapped_column(String(200))
    visiting_postcode: Mapped[str | None] = mapped_column(String(10))
    visiting_city: Mapped[str | None] = mapped_column(String(100))
    visiting_country: Mapped[str] = mapped_column(String(2), default="NO")
    website: Mapped[str | None] = mapped_column(String(255))

    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"), index=True)
    transparency_act_scope: Mapped[TransparencyScope] = mapped_column(
        str_enum(TransparencyScope), default=TransparencyScope.UNKNOWN, index=True
    )

    invoice_email: Mapped[str | None] = mapped_column(String(254))
    buyer_reference_required: Mapped[bool] = mapped_column(default=False)
    default_buyer_reference: Mapped[str | None] = mapped_column(String(100))
    ehf_receiver: Mapped[bool] = mapped_column(default=False)
    notes: Mapped[str | None] = mapped_column(Text)

    parent: Mapped[Organisation | None] = relationship(remote_side=[id], back_populates="subsidiaries")
    subsidiaries: Mapped[list[Organisation]] = relationship(back_populates="parent")
    sectors: Mapped[list[Sector]] = relationship(secondary=organisation_sectors, order_by=Sector.name)
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="organisation", order_by="(Contact.is_active.desc(), Contact.name)"
    )
    membership: Mapped[Membership | None] = relationship(back_populates="organisation", uselist=False)

    @property
    def orgnr_display(self) -> str:
        return format_orgnr(self.orgnr)

    @property
    def identifier_display(self) -> str:
        return self.orgnr_display if self.orgnr else f"{self.country} {self.foreign_id}"

    @property
    def peppol_id(self) -> str | None:
        """The EHF (Peppol) address, ``0192:<orgnr>``, for Norwegian organisations that receive EHF."""
        if self.ehf_receiver and self.orgnr:
            return f"0192:{self.orgnr}"
        return None

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.name}>"


class Contact(VersionedMixin, TimestampMixin, db.Model):
    """A person at an organisation. An email belongs to at most one active contact."""

    __tablename__ = "contacts"
    __table_args__ = (
        # The service checks first (for a friendly message); the index closes the race.
        Index(
            "uq_contacts_active_email",
            "email",
            unique=True,
            sqlite_where=text("is_active = 1"),
            postgresql_where=text("is_active"),
        ),
        Index("ix_contacts_name_lower", func.lower(text("name"))).ddl_if(dialect="postgresql"),  # as organisations
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # stored lower-case
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164, e.g. +4722334455
    is_active: Mapped[bool] = mapped_column(default=True)
    left_on: Mapped[date | None] = mapped_column()
    newsletter_consent: Mapped[bool] = mapped_column(default=False)
    newsletter_consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), unique=True)

    organisation: Mapped[Organisation] = relationship(back_populates="contacts")
    user: Mapped[User | None] = relationship()
    role_links: Mapped[list[ContactRoleAssignment]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> frozenset[ContactRole]:
        return frozenset(link.role for link in self.role_links)

    @property
    def sorted_roles(self) -> list[ContactRole]:
        order = list(ContactRole)
        return sorted(self.roles, key=order.index)

    @property
    def phone_display(self) -> str:
        return format_phone(self.phone)

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.name}>"


class ContactRoleAssignment(db.Model):
    __tablename__ = "contact_roles"
    __table_args__ = (UniqueConstraint("contact_id", "role"), Index("ix_contact_roles_role", "role"))

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    role: Mapped[ContactRole] = mapped_column(str_enum(ContactRole))

    contact: Mapped[Contact] = relationship(back_populates="role_links")
