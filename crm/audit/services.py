"""Writing to and reading from the audit log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from crm.audit.models import AuditEntry
from crm.extensions import db

logger = logging.getLogger(__name__)

OSLO = ZoneInfo("Europe/Oslo")


def record_audit(
    action: str,
    *,
    actor: Any | None,
    target: Any | None = None,
    target_type: str | None = None,
    target_id: Any | None = None,
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the current transaction. ``action`` is namespaced, e.g. ``auth.login.succeeded``.

    ``target`` may be a model instance; its table name and id become the target.
    """
    if target is not None:
        target_type = target_type or target.__tablename__
        target_id = target.id
    entry = AuditEntry(
        action=action,
        actor_id=getattr(actor, "id", None),
        actor_label=getattr(actor, "email", None),
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip_address=ip_address,
        details=details or {},
    )
    db.session.add(entry)
    db.session.flush()
    logger.info("audit %s actor=%s target=%s:%s", action, entry.actor_label, target_type, target_id)
    return entry


def audit_trail(*, target_type: str, target_id: Any, limit: int = 100) -> list[AuditEntry]:
    """The newest entries about one record."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.target_type == target_type, AuditEntry.target_id == str(target_id))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log viewer narrows the log to; empty values do not filter. Dates are Oslo dates."""

    action_prefix: str | None = None
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None


def _oslo_midnight_utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=OSLO).astimezone(UTC)


def audit_entries_query(filters: AuditFilter) -> Select[tuple[AuditEntry]]:
    """Newest first. The actor matches anywhere in the stored actor label (the email at the time);
    ``date_to`` includes the whole day in Europe/Oslo."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if filters.action_prefix:
        stmt = stmt.where(AuditEntry.action.startswith(filters.action_prefix, autoescape=True))
    if filters.actor:
        stmt = stmt.where(func.lower(AuditEntry.actor_label).contains(filters.actor.lower(), autoescape=True))
    if filters.target_type:
        stmt = stmt.where(AuditEntry.target_type == filters.target_type)
    if filters.target_id:
        stmt = stmt.where(AuditEntry.target_id == filters.target_id)
    if filters.date_from:
        stmt = stmt.where(AuditEntry.at >= _oslo_midnight_utc(filters.date_from))
    if filters.date_to:
        stmt = stmt.where(AuditEntry.at < _oslo_midnight_utc(filters.date_to + timedelta(days=1)))
    return stmt


EXPORT_MAX_ROWS = 50_000  # a year of a busy office; narrow the filter for more


def audit_filter_details(filters: AuditFilter) -> dict[str, Any]:
    """The filter as audit details (dates as ISO strings), leaving out what does not filter."""
    return {
        "action": filters.action_prefix,
        "actor": filters.actor,
        "target_type": filters.target_type,
        "target_id": filters.target_id,
        "date_from": filters.date_from.isoformat() if filters.date_from else None,
        "date_to": filters.date_to.isoformat() if filters.date_to else None,
    }


def export_audit_entries(filters: AuditFilter, *, actor: Any) -> list[AuditEntry]:
    """The entries matching ``filters``, newest first, at most ``EXPORT_MAX_ROWS``; the export itself is audited
    (the log holds people's names, emails and IP addresses)."""
    entries = list(db.session.scalars(audit_entries_query(filters).limit(EXPORT_MAX_ROWS)))
    details = {key: value for key, value in audit_filter_details(filters).items() if value is not None}
    record_audit("audit.log.exported", actor=actor, details={"format": "csv", "rows": len(entries), **details})
    return entries
