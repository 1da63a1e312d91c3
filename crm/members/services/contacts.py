"""Contact people: adding, changing and deactivating them (audit logged)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.errors import DomainError, check_version
from crm.extensions import db
from crm.members.models import (
    Contact,
    ContactRole,
    ContactRoleAssignment,
    Organisation,
)
from crm.members.services.common import (
    DuplicateContact,
    clean_text_values,
    normalise_email,
    normalise_phone,
    today,
)
from crm.models import utcnow

logger = logging.getLogger(__name__)


CONTACT_FIELDS = frozenset({"name", "title", "email", "phone", "newsletter_consent"})


# --- contacts --------------------------------------------------------------------------------------------


def find_active_contact_by_email(email: str) -> Contact | None:
    return db.session.scalar(select(Contact).where(Contact.email == normalise_email(email), Contact.is_active))


def _clean_contact_values(values: Mapping[str, Any]) -> dict[str, Any]:
    clean = clean_text_values(values, CONTACT_FIELDS, missing_name=_("The contact needs a name."))
    if "email" in clean:
        clean["email"] = normalise_email(clean["email"])
    if "phone" in clean:
        clean["phone"] = normalise_phone(clean["phone"])
    return clean


def _check_email_free(email: str | None, contact: Contact | None) -> None:
    if not email:
        return
    existing = find_active_contact_by_email(email)
    if existing is not None and (contact is None or existing.id != contact.id):
        raise DuplicateContact(
            _("%(email)s already belongs to %(name)s.", email=email, name=existing.name),
            existing_id=existing.id,
            organisation_id=existing.organisation_id,
        )


def _set_roles(contact: Contact, roles: Iterable[ContactRole | str]) -> bool:
    wanted = {ContactRole(role) for role in roles}
    if wanted == contact.roles:
        return False
    keep = [link for link in contact.role_links if link.role in wanted]
    have = {link.role for link in keep}
    contact.role_links = keep + [
        ContactRoleAssignment(role=role) for role in sorted(wanted - have, key=list(ContactRole).index)
    ]
    return True


def _apply_consent(contact: Contact, consent: bool | None) -> None:
    if consent is None:
        return
    if consent and not contact.newsletter_consent:
        contact.newsletter_consented_at = utcnow()
    elif not consent:
        contact.newsletter_consented_at = None
    contact.newsletter_consent = bool(consent)


def add_contact(
    organisation: Organisation,
    values: Mapping[str, Any],
    *,
    roles: Iterable[ContactRole | str] = (),
    actor: User | None,
) -> Contact:
    """Add an active contact person. Raises ``DuplicateContact`` when the email belongs to another active
    contact, ``DomainError`` for invalid input (unknown keys in ``values`` are ignored)."""
    clean = _clean_contact_values(values)
    if not clean.get("name"):
        raise DomainError(_("The contact needs a name."), field="name")
    _check_email_free(clean.get("email"), None)
    consent = clean.pop("newsletter_consent", None)
    contact = Contact(organisation=organisation, is_active=True, **clean)
    _apply_consent(contact, consent)
    _set_roles(contact, roles)
    db.session.add(contact)
    db.session.flush()
    record_audit(
        "members.contact.created",
        actor=actor,
        target=contact,
        details={"organisation_id": organisation.id, "roles": sorted(r.value for r in contact.roles)},
    )
    return contact


def update_contact(
    contact: Contact,
    values: Mapping[str, Any],
    *,
    roles: Iterable[ContactRole | str] | None = None,
    actor: User | None,
    version: int | None = None,
) -> list[str]:
    """Change a contact's details and (when given) roles; return the changed field names. ``version`` is the
    contact's version the edit form was opened with: ``StaleEdit`` if the contact was saved since."""
    check_version(contact, version)
    clean = _clean_contact_values(values)
    if contact.is_active:
        _check_email_free(clean.get("email"), contact)
    consent = clean.pop("newsletter_consent", None)
    changed = [key for key, value in clean.items() if getattr(contact, key) != value]
    for key in changed:
        setattr(contact, key, clean[key])
    if consent is not None and bool(consent) != contact.newsletter_consent:
        _apply_consent(contact, consent)
        changed.append("newsletter_consent")
    if roles is not None and _set_roles(contact, roles):
        changed.append("roles")
    db.session.flush()
    if changed:
        record_audit("members.contact.updated", actor=actor, target=contact, details={"fields": changed})
    return changed


def deactivate_contact(contact: Contact, *, actor: User | None, left_on: date | None = None) -> None:
    """Mark the contact as having left the organisation; their email becomes free for a new contact."""
    if not contact.is_active:
        raise DomainError(_("%(name)s has already left.", name=contact.name))
    contact.is_active = False
    contact.left_on = left_on or today()
    db.session.flush()
    record_audit(
        "members.contact.deactivated", actor=actor, target=contact, details={"left_on": contact.left_on.isoformat()}
    )


def reactivate_contact(contact: Contact, *, actor: User | None) -> None:
    """Bring back a contact who had left; refused if their email is now someone else's."""
    if contact.is_active:
        return
    _check_email_free(contact.email, contact)
    contact.is_active = True
    contact.left_on = None
    db.session.flush()
    record_audit("members.contact.reactivated", actor=actor, target=contact)
