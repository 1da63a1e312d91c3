"""What a member user may see and change in the portal: only their own organisation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from crm.auth.models import User
from crm.errors import DomainError, PermissionDenied
from crm.extensions import db
from crm.members.models import Contact, ContactRole, Membership, MembershipStatus, Organisation
from crm.members.services.contacts import add_contact, deactivate_contact, find_active_contact_by_email, update_contact
from crm.members.services.invitations import invite_to_portal
from crm.members.services.organisations import update_organisation

# Members keep their own address and invoicing details up to date; the rest is staff's.
PORTAL_ORGANISATION_FIELDS = frozenset(
    {
        "website",
        "employees",
        "visiting_street",
        "visiting_postcode",
        "visiting_city",
        "postal_street",
        "postal_postcode",
        "postal_city",
        "invoice_email",
        "default_buyer_reference",
    }
)
PORTAL_CONTACT_FIELDS = frozenset({"name", "title", "phone", "newsletter_consent"})
MEMBER_STATUSES = (MembershipStatus.ACTIVE, MembershipStatus.NOTICE_GIVEN)


def portal_contact_for(user: User) -> Contact | None:
    """The user's active contact at an organisation whose membership is current, else None: when the
    membership ends or the person leaves, portal access ends with it."""
    return db.session.scalar(
        select(Contact)
        .join(Contact.organisation)
        .join(Organisation.membership)
        .where(Contact.user_id == user.id, Contact.is_active, Membership.status.in_(MEMBER_STATUSES))
    )


def portal_access_problem(user: User, contact: Contact | None) -> str | None:
    """Why a member user (whose current contact is ``contact``, from ``portal_contact_for``) may not use the
    portal, or None when they may."""
    if contact is not None:
        return None
    linked = db.session.scalar(select(Contact).where(Contact.user_id == user.id))
    if linked is None:
        return _("Your login is not linked to a member organisation. Contact Etisk handel Norge if this is wrong.")
    if not linked.is_active:
        return _(
            "You are registered as having left %(organisation)s, so the member portal is closed to you.",
            organisation=linked.organisation.name,
        )
    return _(
        "The membership of %(organisation)s is not active, so the member portal is closed. "
        "Contact Etisk handel Norge if you have questions about the membership.",
        organisation=linked.organisation.name,
    )


def is_main_contact(contact: Contact) -> bool:
    return ContactRole.MAIN_CONTACT in contact.roles


def colleague_for(me: Contact, contact_id: int) -> Contact | None:
    """A contact of ``me``'s own organisation, or None (other organisations' people are invisible)."""
    contact = db.session.get(Contact, contact_id)
    if contact is None or contact.organisation_id != me.organisation_id:
        return None
    return contact


def update_profile_by_member(
    me: Contact, values: Mapping[str, Any], *, actor: User, version: int | None = None
) -> list[str]:
    """The main contact updates the organisation's address and invoicing details (other keys are ignored);
    ``StaleEdit`` if the organisation was saved since the form was opened at ``version``."""
    if not is_main_contact(me):
        raise PermissionDenied(_("Only the main contact can change the organisation's details."))
    allowed = {key: value for key, value in values.items() if key in PORTAL_ORGANISATION_FIELDS}
    return update_organisation(me.organisation, allowed, actor=actor, version=version)


def update_contact_by_member(
    me: Contact,
    contact: Contact,
    values: Mapping[str, Any],
    *,
    roles: Iterable[str] | None,
    actor: User,
    version: int | None = None,
) -> list[str]:
    """Anyone edits themselves; the main contact edits colleagues and their roles. Email and login stay
    with staff (the email is the login's identity)."""
    if contact.organisation_id != me.organisation_id:
        raise PermissionDenied(_("You can only change people at your own organisation."))
    main = is_main_contact(me)
    if contact.id != me.id and not main:
        raise PermissionDenied(_("Only the main contact can change colleagues' details."))
    allowed = {key: value for key, value in values.items() if key in PORTAL_CONTACT_FIELDS}
    new_roles = None
    if main and roles is not None:
        new_roles = set(roles)
        if contact.id == me.id and ContactRole.MAIN_CONTACT.value not in new_roles:
            raise DomainError(_("Staff change who the main contact is; ask your adviser."), field="roles")
    return update_contact(contact, allowed, roles=new_roles, actor=actor, version=version)


def deactivate_contact_by_member(me: Contact, contact: Contact, *, actor: User) -> None:
    """The main contact marks a colleague as having left (not themselves)."""
    if contact.organisation_id != me.organisation_id or not is_main_contact(me):
        raise PermissionDenied(_("Only the main contact can mark colleagues as having left."))
    if contact.id == me.id:
        raise DomainError(_("You cannot mark yourself as having left; ask your adviser."))
    deactivate_contact(contact, actor=actor)


PORTAL_INVITE_FIELDS = frozenset({"name", "title", "email", "phone"})


def invite_colleague_by_member(me: Contact, values: Mapping[str, Any], *, roles: Iterable[str], actor: User) -> Contact:
    """The main contact adds a colleague at their own organisation (other keys in ``values`` are ignored)
    and the colleague gets a portal login and an emailed invitation to choose a password.
    ``DomainError`` (field ``email``) when the address is taken; the message names no one, since the
    address may belong to someone at another organisation."""
    if not is_main_contact(me):
        raise PermissionDenied(_("Only the main contact can invite colleagues."))
    allowed = {key: value for key, value in values.items() if key in PORTAL_INVITE_FIELDS}
    if not (allowed.get("email") or "").strip():
        raise DomainError(_("Enter the colleague's work email address."), field="email")
    if find_active_contact_by_email(allowed["email"]) is not None:
        raise DomainError(
            _("This email address is already registered for a contact person. Contact your adviser."), field="email"
        )
    contact = add_contact(me.organisation, allowed, roles=roles, actor=actor)
    invite_to_portal(contact, actor=actor)
    return contact
