"""Portal logins for contact people: created or linked by email, and invited to choose a password.

The invitation is auth's signed, single-use set-password link (``crm.auth.reset.send_invitation``,
valid for ``INVITATION_MAX_AGE_SECONDS``), queued through the outbox in the caller's transaction.
"""

from __future__ import annotations

import logging

from flask_babel import gettext as _
from sqlalchemy import select

from crm.audit.services import record_audit
from crm.auth.models import Role, User, UserRole
from crm.auth.reset import send_invitation
from crm.auth.services import create_user, find_user_by_email
from crm.errors import DomainError
from crm.extensions import db
from crm.members.models import Contact, ContactRole, Membership

logger = logging.getLogger(__name__)

PORTAL_INVITATION_TEMPLATE = "members_portal_invitation"


def ensure_portal_user(contact: Contact, *, actor: User | None) -> User:
    """The contact's login (``Role.MEMBER``), linked through ``contact.user_id``. An existing login with the
    contact's email is linked (and taken from a former contact who has left); otherwise one is created without
    a password. ``DomainError`` when the contact has no email, or the email belongs to a staff login or to
    another active contact's login (staff sort that out; it is never linked silently)."""
    if contact.user is not None:
        user = contact.user
    else:
        if not contact.email:
            raise DomainError(_("%(name)s has no email address, so they cannot get a portal login.", name=contact.name))
        user = find_user_by_email(contact.email)
        if user is None:
            user = create_user(
                email=contact.email, full_name=contact.name, password=None, roles={Role.MEMBER}, actor=actor
            )
        else:
            _check_linkable(user, contact)
            for former in db.session.scalars(select(Contact).where(Contact.user_id == user.id)):
                former.user = None  # a former contact (who has left) gives up the login
            db.session.flush()
        contact.user = user
        db.session.flush()
        record_audit("members.contact.login_linked", actor=actor, target=contact, details={"user_id": user.id})
    if not user.is_member:
        user.role_links.append(UserRole(role=Role.MEMBER))
        db.session.flush()
    return user


def _check_linkable(user: User, contact: Contact) -> None:
    refusal = DomainError(
        _(
            "%(email)s already has a login that cannot be linked to this person; contact Etisk handel Norge.",
            email=contact.email,
        ),
        field="email",
    )
    if user.is_staff:
        raise refusal
    linked = db.session.scalar(
        select(Contact).where(Contact.user_id == user.id, Contact.is_active, Contact.id != contact.id)
    )
    if linked is not None:
        raise refusal


def invite_to_portal(contact: Contact, *, actor: User | None) -> bool:
    """Give the contact a portal login and queue an invitation to choose a password. Returns False (and
    queues nothing) when the login already has a password or is disabled: they log in (or reset it) as usual.
    ``DomainError`` as ``ensure_portal_user``."""
    user = ensure_portal_user(contact, actor=actor)
    if user.password_hash or not user.is_enabled:
        return False
    send_invitation(
        user,
        actor=actor,
        template=PORTAL_INVITATION_TEMPLATE,
        context={"contact": contact, "organisation": contact.organisation},
    )
    logger.info("Portal invitation for contact %s queued by %s", contact.id, getattr(actor, "email", None))
    return True


def invite_main_contacts(membership: Membership, *, actor: User | None) -> list[Contact]:
    """On activation: invite the organisation's active main contacts to the portal. A main contact who cannot
    be invited (no email, a clashing login) is logged and skipped, so the activation itself stands.
    Returns the contacts that were sent an invitation."""
    invited = []
    contacts = db.session.scalars(
        select(Contact).where(Contact.organisation_id == membership.organisation_id, Contact.is_active)
    )
    for contact in contacts:
        if ContactRole.MAIN_CONTACT not in contact.roles:
            continue
        try:
            with db.session.begin_nested():
                sent = invite_to_portal(contact, actor=actor)
        except DomainError as exc:
            logger.warning("No portal invitation for contact %s: %s", contact.id, exc.message)
            continue
        if sent:
            invited.append(contact)
    return invited


def invite_contact_by_staff(contact: Contact, *, actor: User) -> bool:
    """Staff (re)send a portal invitation to an active contact of a current member; returns False when the
    login already has a password. ``DomainError`` when the contact has left, the membership is not current,
    or as ``ensure_portal_user``."""
    if not contact.is_active:
        raise DomainError(_("%(name)s has left the organisation.", name=contact.name))
    membership = contact.organisation.membership
    if membership is None or not membership.status.is_member:
        raise DomainError(_("Only people at members with an active membership can use the portal."))
    return invite_to_portal(contact, actor=actor)
