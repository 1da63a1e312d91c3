"""Configuration and bookkeeping around cases: service targets, absences, reply templates, time
entries and the access log. Services flush, never commit; the acting user is a parameter."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from crm.advisory.models import (
    AdviserAbsence,
    Case,
    CaseAccessLog,
    CaseTimeEntry,
    ReplyTemplate,
    ServiceTarget,
    Urgency,
)
from crm.audit.services import record_audit
from crm.auth.models import Role, User, UserRole
from crm.errors import DomainError, StaleEdit, check_version
from crm.extensions import db
from crm.mail.models import OutboxMessage
from crm.members.services import today
from crm.models import utcnow

logger = logging.getLogger(__name__)


def _clean(text: str | None, field: str, message: str) -> str:
    value = (text or "").strip()
    if not value:
        raise DomainError(message, field=field)
    return value


def set_service_target(
    category_id: int,
    urgency: Urgency,
    *,
    first_hours: int,
    resolution_hours: int,
    actor: User,
    version: int | None = None,
):
    """Create or change the target of one category and urgency. ``version`` is the target's version when the
    form was opened, 0 when it had none yet (the defaults): ``StaleEdit`` if it was saved (or made) since."""
    if first_hours <= 0 or resolution_hours < first_hours:
        raise DomainError(_("The resolution target must be at least the first-response target, and both positive."))
    target = db.session.scalar(
        select(ServiceTarget).where(ServiceTarget.category_id == category_id, ServiceTarget.urgency == urgency)
    )
    if target is not None:
        check_version(target, version)
    elif version:  # opened on a target that is gone: cannot happen today (targets are never deleted)
        raise StaleEdit()
    if target is None:
        target = ServiceTarget(category_id=category_id, urgency=urgency)
        db.session.add(target)
    target.first_response_hours, target.resolution_hours = first_hours, resolution_hours
    db.session.flush()
    record_audit(
        "advisory.target.changed",
        actor=actor,
        target=target,
        details={"urgency": urgency.value, "first": first_hours, "resolution": resolution_hours},
    )
    return target


def absence_on(user_id: int, day: date) -> AdviserAbsence | None:
    return db.session.scalar(
        select(AdviserAbsence)
        .where(AdviserAbsence.adviser_id == user_id, AdviserAbsence.starts_on <= day, AdviserAbsence.ends_on >= day)
        .order_by(AdviserAbsence.starts_on.desc())
        .limit(1)
    )


def _check_absence(adviser: User, starts_on: date, ends_on: date, backup: User | None) -> None:
    if ends_on < starts_on:
        raise DomainError(_("The absence must end on or after its first day."), field="ends_on")
    if backup is not None and backup.id == adviser.id:
        raise DomainError(_("The backup must be someone else."), field="backup_id")


def add_absence(
    adviser: User, *, starts_on: date, ends_on: date, backup: User | None, note: str | None, actor: User
) -> AdviserAbsence:
    _check_absence(adviser, starts_on, ends_on, backup)
    absence = AdviserAbsence(adviser=adviser, backup=backup, starts_on=starts_on, ends_on=ends_on, note=note)
    db.session.add(absence)
    db.session.flush()
    record_audit("advisory.absence.added", actor=actor, target=absence, details={"adviser": adviser.id})
    return absence


def update_absence(
    absence: AdviserAbsence,
    *,
    adviser: User,
    starts_on: date,
    ends_on: date,
    backup: User | None,
    note: str | None,
    actor: User,
    version: int | None = None,
) -> AdviserAbsence:
    """Change an absence; ``StaleEdit`` if it was saved since its edit form was opened at ``version``."""
    check_version(absence, version)
    _check_absence(adviser, starts_on, ends_on, backup)
    absence.adviser, absence.backup = adviser, backup
    absence.starts_on, absence.ends_on, absence.note = starts_on, ends_on, note
    db.session.flush()
    record_audit("advisory.absence.changed", actor=actor, target=absence, details={"adviser": adviser.id})
    return absence


def delete_absence(absence: AdviserAbsence, *, actor: User) -> None:
    record_audit(
        "advisory.absence.deleted",
        actor=actor,
        target=absence,
        details={"adviser": absence.adviser_id, "starts_on": absence.starts_on.isoformat()},
    )
    db.session.delete(absence)
    db.session.flush()


def advisers() -> list[User]:
    """Enabled users of the adviser team (advisers and administrators)."""
    stmt = (
        select(User)
        .join(UserRole)
        .where(User.is_enabled, UserRole.role.in_((Role.ADVISER, Role.ADMIN)))
        .distinct()
        .order_by(User.full_name)
    )
    return list(db.session.scalars(stmt))


# --- time, templates, access log --------------------------------------------------------------------------


def add_time_entry(case: Case, *, minutes: int, spent_on: date, note: str | None, actor: User) -> CaseTimeEntry:
    if minutes is None or minutes <= 0 or minutes > 24 * 60:
        raise DomainError(_("Give the time spent in minutes (1 to 1440)."), field="minutes")
    if spent_on > today():
        raise DomainError(_("The date cannot be in the future."), field="spent_on")
    entry = CaseTimeEntry(case=case, staff=actor, minutes=minutes, spent_on=spent_on, note=(note or "").strip() or None)
    db.session.add(entry)
    db.session.flush()
    record_audit("advisory.case.time_logged", actor=actor, target=case, details={"minutes": minutes})
    return entry


def yearly_minutes(organisation_id: int, year: int) -> int:
    """Minutes spent on the organisation's cases in ``year`` (by the date of each entry)."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(CaseTimeEntry.minutes), 0))
        .join(Case)
        .where(
            Case.organisation_id == organisation_id,
            CaseTimeEntry.spent_on >= date(year, 1, 1),
            CaseTimeEntry.spent_on <= date(year, 12, 31),
        )
    )
    return int(total or 0)


def render_reply_template(template: ReplyTemplate, case: Case, *, actor: User) -> str:
    """The template's body with {organisation}, {contact} and {adviser} filled in; other braces stay as written."""
    values = {
        "{organisation}": case.organisation.name,
        "{contact}": case.requester_contact.name if case.requester_contact else "",
        "{adviser}": actor.full_name,
    }
    body = template.body
    for key, value in values.items():
        body = body.replace(key, value)
    return body


def save_reply_template(
    template: ReplyTemplate | None, *, name: str, body: str, actor: User, version: int | None = None
) -> ReplyTemplate:
    """Add a template (``template`` None) or change one; ``StaleEdit`` if it was saved since its edit form was
    opened at ``version``, ``DomainError`` for a blank or taken name."""
    if template is not None:
        check_version(template, version)
    name = _clean(name, "name", _("Give the template a name."))
    body = _clean(body, "body", _("Write the template text."))
    clash = db.session.scalar(select(ReplyTemplate).where(func.lower(ReplyTemplate.name) == name.lower()))
    if clash is not None and clash is not template:
        raise DomainError(_("A template with this name exists."), field="name")
    if template is None:
        template = ReplyTemplate(name=name, body=body)
        db.session.add(template)
    template.name, template.body = name, body
    db.session.flush()
    record_audit("advisory.template.saved", actor=actor, target=template)
    return template


def delete_reply_template(template: ReplyTemplate, *, actor: User) -> None:
    record_audit("advisory.template.deleted", actor=actor, target=template, details={"name": template.name})
    db.session.delete(template)
    db.session.flush()


ACCESS_LOG_WINDOW = timedelta(hours=1)


def log_access(case: Case, *, user: User, action: str = "view") -> None:
    """A row in the case's access log for a staff view, export or download, unless the same person did the same
    on the same case within the last hour: the log says who looked and when, and a reload or a posted form
    re-rendering the page is not a new look."""
    recent = db.session.scalar(
        select(CaseAccessLog.id)
        .where(
            CaseAccessLog.case_id == case.id,
            CaseAccessLog.user_id == user.id,
            CaseAccessLog.action == action,
            CaseAccessLog.at > utcnow() - ACCESS_LOG_WINDOW,
        )
        .limit(1)
    )
    if recent is None:
        db.session.add(CaseAccessLog(case_id=case.id, user_id=user.id, action=action))
        db.session.flush()


def log_case_email_read(message: OutboxMessage, actor: User) -> None:
    """A staff member read an email about a case in the outbox: a row (``email``) in that case's access log."""
    case = db.session.get(Case, message.related_id) if message.related_type == Case.__tablename__ else None
    if case is not None:
        log_access(case, user=actor, action="email")


def access_log(case: Case, limit: int = 50) -> list[CaseAccessLog]:
    return list(
        db.session.scalars(
            select(CaseAccessLog)
            .where(CaseAccessLog.case_id == case.id)
            .order_by(CaseAccessLog.at.desc(), CaseAccessLog.id.desc())
            .limit(limit)
        )
    )
