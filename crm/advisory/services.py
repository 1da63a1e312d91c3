"""Use cases of advisory cases. Services flush, never commit; the acting user is a parameter.

Status changes go through ``_apply_status`` only, guarded by ``STAFF_TRANSITIONS`` (staff) or the
member rules (reply, close, reopen within 30 days). Waiting for the member stops the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select

from crm.advisory import notifications
from crm.advisory.deadlines import CALENDAR, add_business_hours, resume_deadline
from crm.advisory.models import (
    AdviserAbsence,
    Case,
    CaseAccessLog,
    CaseMessage,
    CaseStatus,
    CaseTheme,
    CaseTimeEntry,
    CaseType,
    MessageKind,
    ReplyTemplate,
    ServiceTarget,
    Theme,
    Urgency,
    Visibility,
    legal_deadline,
)
from crm.audit.services import record_audit
from crm.auth.models import Role, User, UserRole
from crm.errors import DomainError, PermissionDenied
from crm.extensions import db
from crm.members.models import Contact, ContactRole, ContactRoleAssignment, Organisation
from crm.members.services import today
from crm.members.services.portal import is_main_contact
from crm.models import utcnow

logger = logging.getLogger(__name__)

S = CaseStatus
REOPEN_WINDOW = timedelta(days=30)
# Business hours (first response, resolution) when no ServiceTarget row covers the category.
DEFAULT_TARGETS: dict[Urgency, tuple[int, int]] = {
    Urgency.HIGH: (4, 16),
    Urgency.NORMAL: (8, 40),
    Urgency.LOW: (16, 80),
}
STAFF_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.NEW: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_FOR_MEMBER, S.RESOLVED, S.CLOSED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.WAITING_FOR_MEMBER, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.WAITING_FOR_MEMBER, S.RESOLVED, S.CLOSED}),
    S.WAITING_FOR_MEMBER: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.IN_PROGRESS, S.CLOSED}),
    S.REOPENED: frozenset({S.IN_PROGRESS, S.WAITING_FOR_MEMBER, S.RESOLVED, S.CLOSED}),
    S.CLOSED: frozenset(),
}
ADVISORY_ROLES = (Role.ADVISER,)  # and admins: the adviser team


def _clean(text: str | None, field: str, message: str) -> str:
    value = (text or "").strip()
    if not value:
        raise DomainError(message, field=field)
    return value


# --- targets and assignment ---------------------------------------------------------------------------


def targets_for(organisation: Organisation, urgency: Urgency) -> tuple[int, int]:
    """(first response, resolution) in business hours for the organisation's membership category."""
    membership = organisation.membership
    if membership is not None:
        target = db.session.scalar(
            select(ServiceTarget).where(
                ServiceTarget.category_id == membership.category_id, ServiceTarget.urgency == urgency
            )
        )
        if target is not None:
            return target.first_response_hours, target.resolution_hours
    return DEFAULT_TARGETS[urgency]


def set_service_target(category_id: int, urgency: Urgency, *, first_hours: int, resolution_hours: int, actor: User):
    """Create or change the target of one category and urgency."""
    if first_hours <= 0 or resolution_hours < first_hours:
        raise DomainError(_("The resolution target must be at least the first-response target, and both positive."))
    target = db.session.scalar(
        select(ServiceTarget).where(ServiceTarget.category_id == category_id, ServiceTarget.urgency == urgency)
    )
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


def assignee_for(organisation: Organisation, on: date) -> User | None:
    """The organisation's dedicated adviser; their backup while they are away (if the backup is not
    away too); otherwise nobody (the unassigned queue)."""
    membership = organisation.membership
    adviser = membership.adviser if membership else None
    if adviser is None or not adviser.is_enabled:
        return None
    absence = absence_on(adviser.id, on)
    if absence is None:
        return adviser
    backup = absence.backup
    if backup is None or not backup.is_enabled or absence_on(backup.id, on) is not None:
        return None
    return backup


def add_absence(
    adviser: User, *, starts_on: date, ends_on: date, backup: User | None, note: str | None, actor: User
) -> AdviserAbsence:
    if ends_on < starts_on:
        raise DomainError(_("The absence must end on or after its first day."), field="ends_on")
    if backup is not None and backup.id == adviser.id:
        raise DomainError(_("The backup must be someone else."), field="backup_id")
    absence = AdviserAbsence(adviser=adviser, backup=backup, starts_on=starts_on, ends_on=ends_on, note=note)
    db.session.add(absence)
    db.session.flush()
    record_audit("advisory.absence.added", actor=actor, target=absence, details={"adviser": adviser.id})
    return absence


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


# --- opening ---------------------------------------------------------------------------------------------


def open_case(
    *,
    organisation: Organisation,
    requester: Contact | None,
    subject: str,
    description: str,
    themes: Iterable[Theme] = (),
    oecd_step: int | None = None,
    urgency: Urgency = Urgency.NORMAL,
    visibility: Visibility = Visibility.ORGANISATION,
    case_type: CaseType = CaseType.ORDINARY,
    received_on: date | None = None,
    actor: User | None,
    now: datetime | None = None,
) -> Case:
    """Open a case for ``organisation``, assign it (adviser, backup or nobody), set its deadlines in
    business hours, and queue the receipt and the assignee's notice. Raises ``DomainError`` on bad input."""
    now = now or utcnow()
    subject = _clean(subject, "subject", _("Write a subject."))
    description = _clean(description, "description", _("Describe what you need help with."))
    if oecd_step is not None and oecd_step not in range(1, 7):
        raise DomainError(_("Choose an OECD step from 1 to 6."), field="oecd_step")
    if requester is not None and requester.organisation_id != organisation.id:
        raise PermissionDenied(_("The requester is not at this organisation."))
    legal = None
    if case_type is CaseType.TRANSPARENCY_REQUEST:
        if received_on is None:
            raise DomainError(_("Give the date the information request was received."), field="received_on")
        if received_on > now.astimezone(CALENDAR.tz).date():
            raise DomainError(_("The date received cannot be in the future."), field="received_on")
        legal = legal_deadline(received_on)
    else:
        received_on = None
    first_hours, resolution_hours = targets_for(organisation, urgency)
    assignee = assignee_for(organisation, now.astimezone(CALENDAR.tz).date())
    case = Case(
        organisation=organisation,
        requester_contact=requester,
        requester_user_id=requester.user_id if requester else getattr(actor, "id", None),
        subject=subject[:200],
        description=description,
        oecd_step=oecd_step,
        urgency=urgency,
        visibility=visibility,
        case_type=case_type,
        received_on=received_on,
        legal_deadline_on=legal,
        status=S.ASSIGNED if assignee else S.NEW,
        assignee=assignee,
        opened_at=now,
        last_activity_at=now,
        first_response_due_at=add_business_hours(now, first_hours),
        resolution_due_at=add_business_hours(now, resolution_hours),
    )
    case.theme_links = [CaseTheme(theme=theme) for theme in dict.fromkeys(themes)]
    db.session.add(case)
    db.session.flush()
    record_audit(
        "advisory.case.opened",
        actor=actor,
        target=case,
        details={"organisation": organisation.id, "assignee": assignee.id if assignee else None},
    )
    logger.info("case %s opened actor=%s assignee=%s", case.id, getattr(actor, "id", None), case.assignee_id)
    notifications.case_opened(case)
    return case


# --- status ---------------------------------------------------------------------------------------------


def _apply_status(case: Case, new: CaseStatus, now: datetime) -> None:
    old = case.status
    if old is new:
        return
    if old is S.WAITING_FOR_MEMBER and case.paused_at is not None:
        case.first_response_due_at = (
            resume_deadline(case.first_response_due_at, case.paused_at, now)
            if case.first_responded_at is None
            else case.first_response_due_at
        )
        case.resolution_due_at = resume_deadline(case.resolution_due_at, case.paused_at, now)
        case.paused_seconds += max(0, CALENDAR.business_seconds_between(case.paused_at, now))
        case.paused_at = None
    if new is S.WAITING_FOR_MEMBER:
        case.paused_at = now
    if new is S.RESOLVED:
        case.resolved_at = now
    if new is S.CLOSED:
        case.closed_at = now
        case.resolved_at = case.resolved_at or now
    if not old.is_open and new.is_open:
        # Back to work: fresh targets from now (the first response too, if there never was one).
        first_hours, resolution_hours = targets_for(case.organisation, case.urgency)
        case.resolution_due_at = add_business_hours(now, resolution_hours)
        if case.first_responded_at is None:
            case.first_response_due_at = add_business_hours(now, first_hours)
        case.resolved_at = None
        case.closed_at = None
    case.status = new
    case.last_activity_at = now


def change_status(case: Case, new: CaseStatus, *, actor: User, now: datetime | None = None) -> None:
    """A staff status change, allowed by ``STAFF_TRANSITIONS``; raises ``DomainError`` otherwise."""
    if new not in STAFF_TRANSITIONS[case.status]:
        raise DomainError(
            _("A case cannot go from “%(old)s” to “%(new)s”.", old=case.status.label, new=new.label), field="status"
        )
    old = case.status
    _apply_status(case, new, now or utcnow())
    db.session.flush()
    record_audit("advisory.case.status_changed", actor=actor, target=case, details={"from": old.value, "to": new.value})
    logger.info("case %s %s -> %s actor=%s", case.id, old.value, new.value, actor.id)


def reassign_case(case: Case, *, assignee: User | None, note: str | None, actor: User) -> None:
    """Give the case to another adviser (or back to the unassigned queue), with an optional internal note."""
    if assignee is not None and not (assignee.is_enabled and assignee.has_role(Role.ADVISER, Role.ADMIN)):
        raise DomainError(_("Cases can only go to advisers."), field="assignee_id")
    old = case.assignee_id
    case.assignee = assignee
    if assignee is not None and case.status is S.NEW:
        case.status = S.ASSIGNED
    elif assignee is None and case.status is S.ASSIGNED:
        case.status = S.NEW  # back in the unassigned queue
    if note and note.strip():
        db.session.add(CaseMessage(case=case, kind=MessageKind.INTERNAL_NOTE, author=actor, body=note.strip()))
    db.session.flush()
    record_audit(
        "advisory.case.reassigned",
        actor=actor,
        target=case,
        details={"from": old, "to": assignee.id if assignee else None},
    )
    if assignee is not None and assignee.id != actor.id:
        notifications.case_assigned(case)


# --- messages -------------------------------------------------------------------------------------------


def add_staff_reply(
    case: Case,
    body: str,
    *,
    actor: User,
    then: CaseStatus | None = None,
    now: datetime | None = None,
) -> CaseMessage:
    """A reply to the member (emailed to the requester). The first one stops the first-response clock;
    the case moves to in progress, or to ``then`` (waiting for member, resolved) when given."""
    now = now or utcnow()
    body = _clean(body, "body", _("Write a reply."))
    if case.status is S.CLOSED:
        raise DomainError(_("The case is closed."))
    message = CaseMessage(case=case, kind=MessageKind.STAFF_REPLY, author=actor, body=body, created_at=now)
    db.session.add(message)
    if case.first_responded_at is None:
        case.first_responded_at = now
    target = then or S.IN_PROGRESS
    if target is not case.status:
        if target not in STAFF_TRANSITIONS[case.status] and not (
            case.status is S.WAITING_FOR_MEMBER and target is S.IN_PROGRESS
        ):
            raise DomainError(
                _("A case cannot go from “%(old)s” to “%(new)s”.", old=case.status.label, new=target.label)
            )
        _apply_status(case, target, now)
    case.last_activity_at = now
    db.session.flush()
    record_audit("advisory.case.replied", actor=actor, target=case, details={"message": message.id})
    notifications.staff_replied(case, message)
    return message


def add_internal_note(case: Case, body: str, *, actor: User, now: datetime | None = None) -> CaseMessage:
    """A note for the adviser team only."""
    body = _clean(body, "body", _("Write a note."))
    message = CaseMessage(
        case=case, kind=MessageKind.INTERNAL_NOTE, author=actor, body=body, created_at=now or utcnow()
    )
    db.session.add(message)
    db.session.flush()
    record_audit("advisory.case.noted", actor=actor, target=case, details={"message": message.id})
    return message


def add_member_reply(
    case: Case, body: str, *, contact: Contact, actor: User, now: datetime | None = None
) -> CaseMessage:
    """The member writes on their case: waiting for member restarts the clock (in progress), a resolved
    case is reopened. A closed case must be reopened first."""
    now = now or utcnow()
    require_member_access(case, contact)
    body = _clean(body, "body", _("Write a message."))
    if case.status is S.CLOSED:
        raise DomainError(_("The case is closed. Reopen it to write more."))
    message = CaseMessage(case=case, kind=MessageKind.MEMBER_MESSAGE, author=actor, body=body, created_at=now)
    db.session.add(message)
    if case.status is S.WAITING_FOR_MEMBER:
        _apply_status(case, S.IN_PROGRESS, now)
    elif case.status is S.RESOLVED:
        _apply_status(case, S.REOPENED, now)
    case.last_activity_at = now
    db.session.flush()
    logger.info("case %s member message actor=%s", case.id, actor.id)
    notifications.member_replied(case, message)
    return message


def close_by_member(case: Case, *, contact: Contact, actor: User, now: datetime | None = None) -> None:
    """The member closes their case (nothing more is needed)."""
    require_member_access(case, contact)
    if case.status is S.CLOSED:
        raise DomainError(_("The case is already closed."))
    _apply_status(case, S.CLOSED, now or utcnow())
    db.session.flush()
    logger.info("case %s closed by member actor=%s", case.id, actor.id)


def reopen_by_member(case: Case, *, contact: Contact, actor: User, now: datetime | None = None) -> None:
    """Reopen a resolved case, or a closed one within 30 days of closing."""
    now = now or utcnow()
    require_member_access(case, contact)
    if case.status is S.CLOSED:
        if case.closed_at is None or now - case.closed_at > REOPEN_WINDOW:
            raise DomainError(_("A case can be reopened within 30 days of closing. Please open a new request."))
    elif case.status is not S.RESOLVED:
        raise DomainError(_("The case is still open."))
    _apply_status(case, S.REOPENED, now)
    db.session.flush()
    logger.info("case %s reopened by member actor=%s", case.id, actor.id)


# --- member visibility ----------------------------------------------------------------------------------


def member_can_see(case: Case, contact: Contact) -> bool:
    """Users of the case's organisation; a private case only its requester and the main contact(s)."""
    if case.organisation_id != contact.organisation_id:
        return False
    if case.visibility is Visibility.ORGANISATION:
        return True
    return case.requester_contact_id == contact.id or is_main_contact(contact)


def require_member_access(case: Case, contact: Contact) -> None:
    if not member_can_see(case, contact):
        raise PermissionDenied(_("You do not have access to this case."))


def visible_cases_stmt(contact: Contact) -> Select[tuple[Case]]:
    stmt = select(Case).where(Case.organisation_id == contact.organisation_id)
    if not is_main_contact(contact):
        stmt = stmt.where(or_(Case.visibility == Visibility.ORGANISATION, Case.requester_contact_id == contact.id))
    return stmt.order_by(Case.last_activity_at.desc(), Case.id.desc())


def member_case(contact: Contact, case_id: int) -> Case | None:
    case = db.session.get(Case, case_id)
    if case is None or not member_can_see(case, contact):
        return None
    return case


def member_messages(case: Case) -> list[CaseMessage]:
    """The thread as the member sees it: never internal notes."""
    return [message for message in case.messages if message.kind is not MessageKind.INTERNAL_NOTE]


def case_recipients(case: Case) -> list[tuple[str, str, User | None]]:
    """Who gets the member-facing emails: the requester (address, name, user)."""
    contact = case.requester_contact
    if contact is not None and contact.is_active and contact.email:
        return [(contact.email, contact.name, contact.user)]
    if case.requester_user is not None:
        return [(case.requester_user.email, case.requester_user.full_name, case.requester_user)]
    return []


def main_contacts(organisation_id: int) -> list[Contact]:
    return list(
        db.session.scalars(
            select(Contact)
            .join(ContactRoleAssignment)
            .where(
                Contact.organisation_id == organisation_id,
                Contact.is_active,
                ContactRoleAssignment.role == ContactRole.MAIN_CONTACT,
            )
        )
    )


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


def save_reply_template(template: ReplyTemplate | None, *, name: str, body: str, actor: User) -> ReplyTemplate:
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


def log_access(case: Case, *, user: User, action: str = "view") -> None:
    """A row in the case's access log (every staff view, export and download)."""
    db.session.add(CaseAccessLog(case_id=case.id, user_id=user.id, action=action))
    db.session.flush()


def access_log(case: Case, limit: int = 50) -> list[CaseAccessLog]:
    return list(
        db.session.scalars(
            select(CaseAccessLog)
            .where(CaseAccessLog.case_id == case.id)
            .order_by(CaseAccessLog.at.desc(), CaseAccessLog.id.desc())
            .limit(limit)
        )
    )


def last_contact_by_organisation(organisation_ids: Iterable[int]) -> dict[int, datetime]:
    """The newest message (reply or member message, not internal notes) per organisation."""
    ids = list(organisation_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(Case.organisation_id, func.max(CaseMessage.created_at))
        .join(CaseMessage)
        .where(Case.organisation_id.in_(ids), CaseMessage.kind != MessageKind.INTERNAL_NOTE)
        .group_by(Case.organisation_id)
    )
    return {org_id: at for org_id, at in rows}
