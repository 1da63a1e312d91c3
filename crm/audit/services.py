"""Writing to and reading from the audit log."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.extensions import db

logger = logging.getLogger(__name__)


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
