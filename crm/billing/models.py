"""Billing: Stripe customers, invoices with their lines and credit notes, webhook events, billing runs."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.members.models import format_orgnr
from crm.models import TimestampMixin, UTCDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.members.models import Membership, Organisation


class InvoiceStatus(enum.Enum):
    """Stripe's invoice states; ``overdue`` is derived (open and past due), never stored."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"

    @property
    def label(self):
        return INVOICE_STATUS_LABELS[self]


INVOICE_STATUS_LABELS = {
    InvoiceStatus.DRAFT: _l("Draft"),
    InvoiceStatus.OPEN: _l("Open"),
    InvoiceStatus.PAID: _l("Paid"),
    InvoiceStatus.VOID: _l("Void"),
    InvoiceStatus.UNCOLLECTIBLE: _l("Uncollectible"),
}


class InvoiceKind(enum.Enum):
    MEMBERSHIP = "membership"  # the annual fee
    PRO_RATA = "pro_rata"  # a new member's share of the year they join

    @property
    def label(self):
        return {self.MEMBERSHIP: _l("Annual fee"), self.PRO_RATA: _l("New member (pro rata)")}[self]


class VatTreatment(enum.Enum):
    VAT_25 = "vat_25"
    EXEMPT = "exempt"
    OUTSIDE_SCOPE = "outside_scope"

    @property
    def percent(self) -> int:
        return 25 if self is VatTreatment.VAT_25 else 0

    @property
    def label(self):
        return {self.VAT_25: _l("VAT 25 %"), self.EXEMPT: _l("VAT exempt"), self.OUTSIDE_SCOPE: _l("Outside VAT")}[self]


class StripeCustomer(db.Model):
    """The Stripe customer of an organisation (billing's own table, so members never depends on billing)."""

    __tablename__ = "stripe_customers"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StripeTaxRate(db.Model):
    """The Stripe tax rate used for a VAT treatment that carries VAT (created once, on first need)."""

    __tablename__ = "stripe_tax_rates"

    treatment: Mapped[VatTreatment] = mapped_column(str_enum(VatTreatment), primary_key=True)
    stripe_tax_rate_id: Mapped[str] = mapped_column(String(64), unique=True)


class Invoice(TimestampMixin, db.Model):
    """A membership invoice, mirroring its Stripe invoice. One per (membership, year, kind, sequence): the row is
    written before Stripe is called, so a retried job finds it and never bills twice. ``sequence`` is 1 for the
    first invoice; finance reissuing a voided one makes the next (its idempotency keys carry the sequence).
    At most one invoice per membership and year is live (not void): a partial unique index guards it."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("membership_id", "year", "kind", "sequence"),
        Index(
            "uq_invoices_live_membership_year",
            "membership_id",
            "year",
            unique=True,
            sqlite_where=text("status != 'void'"),
            postgresql_where=text("status != 'void'"),
        ),
        Index("ix_invoices_year_status", "year", "status"),
        Index("ix_invoices_status_due_on", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id", ondelete="RESTRICT"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    year: Mapped[int] = mapped_column()
    kind: Mapped[InvoiceKind] = mapped_column(str_enum(InvoiceKind))
    sequence: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    status: Mapped[InvoiceStatus] = mapped_column(str_enum(InvoiceStatus), default=InvoiceStatus.DRAFT)
    number: Mapped[str | None] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="NOK")
    net_ore: Mapped[int] = mapped_column(default=0)
    vat_ore: Mapped[int] = mapped_column(default=0)
    gross_ore: Mapped[int] = mapped_column(default=0)
    paid_ore: Mapped[int] = mapped_column(default=0)
    credited_ore: Mapped[int] = mapped_column(default=0)
    refunded_ore: Mapped[int] = mapped_column(default=0)
    explanation: Mapped[list[str]] = mapped_column(JSON, default=list)
    customer_name: Mapped[str] = mapped_column(String(200))
    orgnr: Mapped[str | None] = mapped_column(String(9))
    invoice_email: Mapped[str | None] = mapped_column(String(254))
    buyer_reference: Mapped[str | None] = mapped_column(String(100))
    ehf: Mapped[bool] = mapped_column(default=False)
    issued_on: Mapped[date | None] = mapped_column()
    due_on: Mapped[date | None] = mapped_column()
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    receipt_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminder_7_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminder_21_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # How far the Stripe side got: none -> created -> lines -> finalized -> sent (a retried job resumes here).
    stripe_step: Mapped[str] = mapped_column(String(20), default="none")
    stripe_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(500))
    invoice_pdf: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # A void asked for by staff and not yet done at Stripe (a job does it): set while pending, cleared when the
    # job ends. A permanent refusal is kept in ``void_error`` until the next request.
    void_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    void_requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    void_reason: Mapped[str | None] = mapped_column(Text)
    void_error: Mapped[str | None] = mapped_column(Text)

    membership: Mapped[Membership] = relationship()
    organisation: Mapped[Organisation] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    void_requested_by: Mapped[User | None] = relationship(foreign_keys=[void_requested_by_id])
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="InvoiceLine.position"
    )
    credit_notes: Mapped[list[CreditNote]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="CreditNote.id"
    )

    @property
    def idempotency_base(self) -> str:
        # The first invoice keeps the keys it always had; a reissue's carry its sequence, so Stripe never
        # answers a reissue with the voided invoice it replaces.
        base = f"invoice:{self.membership_id}:{self.year}:{self.kind.value}"
        return base if (self.sequence or 1) == 1 else f"{base}:{self.sequence}"

    @property
    def is_reissue(self) -> bool:
        return (self.sequence or 1) > 1

    def is_overdue(self, today: date) -> bool:
        return self.status is InvoiceStatus.OPEN and self.due_on is not None and self.due_on < today

    def days_overdue(self, today: date) -> int:
        return (today - self.due_on).days if self.is_overdue(today) and self.due_on else 0

    @property
    def orgnr_display(self) -> str:
        return format_orgnr(self.orgnr)

    @property
    def void_pending(self) -> bool:
        return self.void_requested_at is not None

    @property
    def pending_credit_notes(self) -> list[CreditNote]:
        return [note for note in self.credit_notes if note.status is CreditNoteStatus.PENDING]

    @property
    def pending_credit_ore(self) -> int:
        """The part of ``credited_ore`` reserved by credit notes not yet issued at Stripe."""
        return sum(note.amount_ore for note in self.pending_credit_notes)

    @property
    def outstanding_ore(self) -> int:
        if self.status is not InvoiceStatus.OPEN:
            return 0
        return max(0, self.gross_ore - self.paid_ore - self.credited_ore)

    def __repr__(self) -> str:
        return f"<Invoice {self.id} {self.year} {self.kind.value} {self.status.value}>"


class InvoiceLine(db.Model):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    description: Mapped[str] = mapped_column(String(500))
    amount_ore: Mapped[int] = mapped_column()  # net
    vat_treatment: Mapped[VatTreatment] = mapped_column(str_enum(VatTreatment))
    vat_ore: Mapped[int] = mapped_column(default=0)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class CreditNoteStatus(enum.Enum):
    """A credit note is written (and its amount reserved on the invoice) in the request; a job issues it at
    Stripe. A permanent refusal fails it and releases the amount. A note issued in Stripe's dashboard arrives issued
    through its webhook event."""

    PENDING = "pending"
    ISSUED = "issued"
    FAILED = "failed"
    VOID = "void"  # voided at Stripe (its dashboard) after it was issued: it no longer credits the invoice


class CreditNote(db.Model):
    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    amount_ore: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    number: Mapped[str | None] = mapped_column(String(64))
    stripe_credit_note_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[CreditNoteStatus] = mapped_column(
        str_enum(CreditNoteStatus), default=CreditNoteStatus.ISSUED, server_default=CreditNoteStatus.ISSUED.value
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    invoice: Mapped[Invoice] = relationship(back_populates="credit_notes")
    created_by: Mapped[User | None] = relationship()


class StripeEvent(db.Model):
    """A webhook event, stored once (the unique event id) before it is processed."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the invoice / charge it is about
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class BillingRunStatus(enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"


class BillingRun(db.Model):
    __tablename__ = "billing_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(index=True)
    status: Mapped[BillingRunStatus] = mapped_column(str_enum(BillingRunStatus), default=BillingRunStatus.RUNNING)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    created_by: Mapped[User | None] = relationship()
    items: Mapped[list[BillingRunItem]] = relationship(back_populates="run", cascade="all, delete-orphan")


class RunItemStatus(enum.Enum):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def label(self):
        return {
            self.QUEUED: _l("Queued"),
            self.DONE: _l("Done"),
            self.FAILED: _l("Failed"),
            self.SKIPPED: _l("Skipped"),
        }[self]


class BillingRunItem(db.Model):
    __tablename__ = "billing_run_items"
    __table_args__ = (
        UniqueConstraint("run_id", "membership_id"),
        Index("ix_billing_run_items_run_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("billing_runs.id", ondelete="CASCADE"))
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id", ondelete="CASCADE"), index=True)
    status: Mapped[RunItemStatus] = mapped_column(str_enum(RunItemStatus), default=RunItemStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Stripe could not be reached: when the job tries again (the run page says so, rather than sitting at 0 %).
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    run: Mapped[BillingRun] = relationship(back_populates="items")
    membership: Mapped[Membership] = relationship()
    invoice: Mapped[Invoice | None] = relationship()
