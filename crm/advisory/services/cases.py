"""Use cases of one case: opening, assignment, status, messages, member visibility. Services flush,
never commit; the acting user is a parameter.

Status changes go through ``_move`` (which writes each to the audit log, staff's and members' alike)
and ``_apply_status``, guarded by ``STAFF_TRANSITIONS`` (staff) or the member rules (reply, close,
reopen within 30 days). Waiting for the member stops the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select

from crm.advisory import notifications
from crm.advisory.deadlines import CALENDAR, add_business_hours, resume_deadline
from crm.advisory.models import (
    Case,
    CaseMessage,
    CaseStatus,
    CaseTheme,
    CaseType,
    MessageKind,
    ServiceTarget,
    Theme,
    Urgency,
    Visibility,
    legal_deadline,
)
from crm.advisory.services.admin import absence_on
from crm.audit.services import record_audit
from crm.auth.models import Role, User
from crm.errors import UNCHECKED, DomainError, PermissionDenied, Unchecked, check_unchanged
from crm.extensions import db
from crm.members.models import Contact, ContactRole, ContactRoleAssignment, Organisation
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


def change_status(
    case: Case,
    new: CaseStatus,
    *,
    actor: User,
    now: datetime | None = None,
    status_was: CaseStatus | Unchecked = UNCHECKED,
) -> None:
    """A staff status change, allowed by ``STAFF_TRANSITIONS``; raises ``DomainError`` otherwise, and ``StaleEdit``
    when the case has left ``status_was`` (the status its form was opened at) since."""
    check_unchanged(case, "status", status_was)
    if new not in STAFF_TRANSITIONS[case.status]:
        raise DomainError(
            _("A case cannot go from “%(old)s” to “%(new)s”.", old=case.status.label, new=new.label), field="status"
        )
    _move(case, new, actor=actor, now=now or utcnow())


def _move(case: Case, new: CaseStatus, *, actor: User, now: datetime) -> None:
    """Apply a status change and write it to the audit log, whoever makes it (staff or member)."""
    old = case.status
    if old is new:
        return
    _apply_status(case, new, now)
    db.session.flush()
    record_audit("advisory.case.status_changed", actor=actor, target=case, details={"from": old.value, "to": new.value})
    logger.info("case %s %s -> %s actor=%s", case.id, old.value, new.value, actor.id)


def reassign_case(
    case: Case,
    *,
    assignee: User | None,
    note: str | None,
    actor: User,
    assigned_was: int | Unchecked | None = UNCHECKED,
) -> None:
    """Give the case to another adviser (or back to the unassigned queue), with an optional internal note.
    ``StaleEdit`` when the case's assignee is no longer ``assigned_was`` (the adviser id its form was opened
    with, ``None`` for unassigned): a colleague reassigned it meanwhile, and that is not overwritten."""
    check_unchanged(case, "assignee_id", assigned_was)
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
        running = CALENDAR.business_seconds_between(case.paused_at, now) if case.paused_at else 0
        case.first_response_paused_seconds = case.paused_seconds + max(0, running)
    target = then or S.IN_PROGRESS
    if target is not case.status:
        if target not in STAFF_TRANSITIONS[case.status] and not (
            case.status is S.WAITING_FOR_MEMBER and target is S.IN_PROGRESS
        ):
            raise DomainError(
                _("A case cannot go from “%(old)s” to “%(new)s”.", old=case.status.label, new=target.label)
            )
        _move(case, target, actor=actor, now=now)
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
        _move(case, S.IN_PROGRESS, actor=actor, now=now)
    elif case.status is S.RESOLVED:
        _move(case, S.REOPENED, actor=actor, now=now)
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
    _move(case, S.CLOSED, actor=actor, now=now or utcnow())


def reopen_by_member(case: Case, *, contact: Contact, actor: User, now: datetime | None = None) -> None:
    """Reopen a resolved case, or a closed one within 30 days of closing."""
    now = now or utcnow()
    require_member_access(case, contact)
    if case.status is S.CLOSED:
        if case.closed_at is None or now - case.closed_at > REOPEN_WINDOW:
            raise DomainError(_("A case can be reopened within 30 days of closing. Please open a new request."))
    elif case.status is not S.RESOLVED:
        raise DomainError(_("The case is still open."))
    _move(case, S.REOPENED, actor=actor, now=now)


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
