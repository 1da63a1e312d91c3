"""The append-only audit log: who did what to which record, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from crm.extensions import db
from crm.models import UTCDateTime, utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Kept even when the actor's account is gone, so the trail still reads.
    actor_label: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditLogIsAppendOnly(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context, instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEntry):
            raise AuditLogIsAppendOnly("Audit entries are never changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_audit_changes(state) -> None:
    # ``update(AuditEntry)`` / ``delete(AuditEntry)`` bypass the flush; refuse them too.
    if (state.is_update or state.is_delete) and any(m.class_ is AuditEntry for m in state.all_mappers):
        raise AuditLogIsAppendOnly("Audit entries are never changed or deleted")
