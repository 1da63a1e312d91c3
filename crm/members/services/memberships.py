"""The membership lifecycle, advisers and fee overrides."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, select

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.errors import UNCHECKED, DomainError, Unchecked, check_unchanged, check_version
from crm.extensions import db
from crm.members.models import (
    Membership,
    MembershipCategory,
    MembershipEvent,
    MembershipStatus,
)
from crm.members.services.common import (
    add_years,
    today,
)
from crm.models import utcnow

logger = logging.getLogger(__name__)


S = MembershipStatus
# The membership lifecycle (DOMAIN.md) plus the documented extra paths:
# - notice_given -> active: the member withdraws its notice before the end date;
# - active -> ended: the organisation is dissolved or merged (no notice period to wait for);
# - ended / rejected -> applied: a former member or a rejected applicant applies again;
# - prospect -> ended: staff close a prospect that never applied.
# Excluded is final: taking an excluded member back is a board matter outside this flow.
ALLOWED_TRANSITIONS: dict[MembershipStatus, frozenset[MembershipStatus]] = {
    S.PROSPECT: frozenset({S.APPLIED, S.ENDED}),
    S.APPLIED: frozenset({S.BOARD_REVIEW, S.REJECTED}),
    S.BOARD_REVIEW: frozenset({S.ACTIVE, S.REJECTED}),
    S.ACTIVE: frozenset({S.NOTICE_GIVEN, S.EXCLUDED, S.ENDED}),
    S.NOTICE_GIVEN: frozenset({S.ENDED, S.ACTIVE, S.EXCLUDED}),
    S.ENDED: frozenset({S.APPLIED}),
    S.REJECTED: frozenset({S.APPLIED}),
    S.EXCLUDED: frozenset(),
}

# --- status-change listeners ------------------------------------------------------------------------------
# Higher features (billing's pro-rata invoice on activation) react to status changes without members
# importing them: a listener runs inside the same transaction, after the change is flushed.
StatusListener = Callable[[Membership, MembershipStatus, MembershipStatus, "User | None"], None]
_STATUS_LISTENERS: list[StatusListener] = []


def on_membership_status_change(listener: StatusListener) -> StatusListener:
    """Register ``listener(membership, from_status, to_status, actor)``; usable as a decorator."""
    if listener not in _STATUS_LISTENERS:
        _STATUS_LISTENERS.append(listener)
    return listener


# --- memberships -----------------------------------------------------------------------------------------


def allowed_transitions(status: MembershipStatus) -> list[MembershipStatus]:
    order = list(MembershipStatus)
    return sorted(ALLOWED_TRANSITIONS[status], key=order.index)


def change_membership_status(
    membership: Membership,
    to_status: MembershipStatus,
    *,
    actor: User | None,
    reason: str | None = None,
    on_date: date | None = None,
    end_on: date | None = None,
    side_effects: bool = True,
    status_was: MembershipStatus | Unchecked = UNCHECKED,
) -> MembershipEvent:
    """Move the membership along its lifecycle, recording the event and an audit entry.

    Sets the dates that belong to the step: ``applied_on`` (applied), ``decision_on`` (active, rejected),
    ``start_on`` and ``basic_level_deadline`` = start + 2 years (first activation), ``end_on`` (notice
    given: ``end_on`` or 31 December of the year; ended/excluded: ``on_date``). On activation after board
    review the organisation's main contacts get a portal login and an invitation by email, and the
    registered listeners run (billing's pro-rata invoice); ``side_effects=False`` skips both, for history
    recorded after the fact such as demo data. The event's ``invited`` lists who was invited. Ending the
    membership ends their portal access by itself (the portal checks the status on every request).
    Raises ``DomainError`` for a transition the lifecycle does not allow, and ``StaleEdit`` when the membership
    has left ``status_was`` (the status its form was opened at) since.
    """
    check_unchanged(membership, "status", status_was)
    from_status = membership.status
    on_date = on_date or today()
    if to_status not in ALLOWED_TRANSITIONS[from_status]:
        allowed = ", ".join(str(s.label) for s in allowed_transitions(from_status)) or _("none")
        raise DomainError(
            _(
                "A membership cannot go from %(from)s to %(to)s. Possible next steps: %(allowed)s.",
                **{"from": from_status.label, "to": to_status.label, "allowed": allowed},
            ),
            field="to_status",
        )
    if to_status in (S.REJECTED, S.EXCLUDED, S.NOTICE_GIVEN) and not (reason and reason.strip()):
        raise DomainError(_("Give a reason for this change."), field="reason")
    if to_status is S.APPLIED:
        if from_status in (S.ENDED, S.REJECTED):  # a new application starts a new cycle
            membership.decision_on = membership.start_on = membership.end_on = None
            membership.basic_level_deadline = None
        membership.applied_on = on_date
    elif to_status is S.ACTIVE:
        if from_status is S.NOTICE_GIVEN:
            membership.end_on = None  # notice withdrawn
        else:
            membership.decision_on = on_date
            membership.start_on = on_date
            membership.basic_level_deadline = add_years(on_date, 2)
    elif to_status is S.REJECTED:
        membership.decision_on = on_date
    elif to_status is S.NOTICE_GIVEN:
        membership.end_on = end_on or date(on_date.year, 12, 31)
        if membership.end_on < on_date:
            raise DomainError(_("The end date cannot be before the notice date."), field="end_on")
    elif to_status in (S.ENDED, S.EXCLUDED):
        membership.end_on = on_date
    membership.status = to_status
    event = MembershipEvent(
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        reason=(reason or "").strip() or None,
        on_date=on_date,
    )
    membership.events.append(event)
    db.session.flush()
    record_audit(
        "members.membership.status_changed",
        actor=actor,
        target=membership.organisation,
        details={
            "membership_id": membership.id,
            "from": from_status.value,
            "to": to_status.value,
            "on_date": on_date.isoformat(),
            "reason": event.reason,
        },
    )
    logger.info(
        "Membership %s %s -> %s by %s", membership.id, from_status.value, to_status.value, getattr(actor, "email", None)
    )
    if not side_effects:
        return event
    if to_status is S.ACTIVE and from_status is S.BOARD_REVIEW:
        from crm.members.services.invitations import invite_main_contacts

        event.invited = invite_main_contacts(membership, actor=actor)
    for listener in _STATUS_LISTENERS:
        listener(membership, from_status, to_status, actor)
    return event


def assign_adviser(membership: Membership, adviser: User | None, *, actor: User | None) -> None:
    """Make ``adviser`` (a staff user holding the adviser or admin role) the member's dedicated adviser."""
    from crm.auth.models import Role

    if adviser is not None and not (adviser.is_enabled and adviser.has_role(Role.ADVISER, Role.ADMIN)):
        raise DomainError(_("The adviser must be an enabled staff user with the adviser role."), field="adviser_id")
    previous = membership.adviser_id
    membership.adviser = adviser
    db.session.flush()
    if previous != membership.adviser_id:
        record_audit(
            "members.membership.adviser_assigned",
            actor=actor,
            target=membership.organisation,
            details={"membership_id": membership.id, "from": previous, "to": membership.adviser_id},
        )


def update_membership_details(
    membership: Membership,
    *,
    actor: User | None,
    category: MembershipCategory | None = None,
    principles_version: str | None = None,
    principles_accepted_on: date | None = None,
    change_adviser: bool = False,
    adviser: User | None = None,
    version: int | None = None,
) -> list[str]:
    """Change the category, the accepted principles (version and date) and, with ``change_adviser``,
    the dedicated adviser (``None`` clears it); return what changed. ``StaleEdit`` if the membership was saved
    since its form was opened at ``version``."""
    check_version(membership, version)
    changed = []
    if change_adviser:
        previous = membership.adviser_id
        assign_adviser(membership, adviser, actor=actor)
        if membership.adviser_id != previous:
            changed.append("adviser")
    if category is not None and category.id != membership.category_id:
        membership.category = category
        changed.append("category")
    if principles_version is not None and principles_version.strip() != membership.principles_version:
        membership.principles_version = principles_version.strip() or None
        changed.append("principles_version")
    if principles_accepted_on is not None and principles_accepted_on != membership.principles_accepted_on:
        membership.principles_accepted_on = principles_accepted_on
        changed.append("principles_accepted_on")
    db.session.flush()
    if changed:
        record_audit(
            "members.membership.updated",
            actor=actor,
            target=membership.organisation,
            details={"membership_id": membership.id, "fields": changed},
        )
    return changed


def set_fee_override(
    membership: Membership, amount_ore: int | None, *, reason: str | None, actor: User, version: int | None = None
) -> None:
    """Override the calculated fee (``None`` removes the override). An override needs a reason. ``StaleEdit`` if
    the membership was saved since its form was opened at ``version``."""
    check_version(membership, version)
    if amount_ore is not None:
        if amount_ore < 0:
            raise DomainError(_("The fee cannot be negative."), field="amount")
        if not (reason and reason.strip()):
            raise DomainError(_("Give a reason for overriding the fee."), field="reason")
    previous = membership.fee_override_ore
    membership.fee_override_ore = amount_ore
    membership.fee_override_reason = reason.strip() if amount_ore is not None and reason else None
    membership.fee_override_by = actor if amount_ore is not None else None
    membership.fee_override_at = utcnow() if amount_ore is not None else None
    db.session.flush()
    record_audit(
        "members.membership.fee_overridden" if amount_ore is not None else "members.membership.fee_override_removed",
        actor=actor,
        target=membership.organisation,
        details={"membership_id": membership.id, "from": previous, "to": amount_ore, "reason": reason},
    )


def status_counts() -> dict[MembershipStatus, int]:
    rows = db.session.execute(select(Membership.status, func.count()).group_by(Membership.status))
    counts = dict.fromkeys(MembershipStatus, 0)
    counts.update({status: count for status, count in rows})
    return counts
