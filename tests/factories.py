"""Factory functions: ``make_x(**overrides)`` builds and flushes one valid object."""

from __future__ import annotations

import itertools
from functools import cache

from crm.auth.models import Role, User, UserRole
from crm.auth.passwords import hash_password
from crm.extensions import db

DEFAULT_PASSWORD = "grønn-lastebil-fjord-2026"
_sequence = itertools.count(1)


@cache
def _default_password_hash() -> str:
    # argon2 is slow on purpose; hash the shared test password once per run.
    return hash_password(DEFAULT_PASSWORD)


def make_user(*, roles: set[Role] | None = None, password: str | None = DEFAULT_PASSWORD, **overrides) -> User:
    n = next(_sequence)
    values = {"email": f"user{n}@example.no", "full_name": f"Test Person {n}"}
    values.update(overrides)
    user = User(**values)
    if password == DEFAULT_PASSWORD:
        user.password_hash = _default_password_hash()
    elif password is not None:
        user.password_hash = hash_password(password)
    user.role_links = [UserRole(role=role) for role in (roles or {Role.MEMBER})]
    db.session.add(user)
    db.session.flush()
    return user


def make_staff(*roles: Role, **overrides) -> User:
    return make_user(roles=set(roles) or {Role.ADVISER}, **overrides)


# --- members -------------------------------------------------------------------------------------------
def make_organisation(*, status=None, category=None, **overrides):
    """An organisation with a membership (``status``, default prospect) in the category of its kind."""
    from crm.members.models import Membership, MembershipStatus, Organisation, OrganisationKind
    from crm.members.orgnr import generate_orgnr
    from crm.members.services import category_for_kind

    n = next(_sequence)
    values = {
        "name": f"Testbedrift {n} AS",
        "orgnr": generate_orgnr(n, base=80_000_000),
        "kind": OrganisationKind.COMPANY,
    }
    values.update(overrides)
    organisation = Organisation(**values)
    db.session.add(organisation)
    organisation.membership = Membership(
        status=status or MembershipStatus.PROSPECT, category=category or category_for_kind(organisation.kind)
    )
    db.session.flush()
    return organisation


def make_contact(organisation, *, roles=(), **overrides):
    from crm.members.models import Contact, ContactRoleAssignment

    n = next(_sequence)
    values = {"name": f"Kontakt Person {n}", "email": f"kontakt{n}@example.no", "is_active": True}
    values.update(overrides)
    contact = Contact(organisation=organisation, **values)
    contact.role_links = [ContactRoleAssignment(role=role) for role in roles]
    db.session.add(contact)
    db.session.flush()
    return contact


def make_member_user(*, organisation=None, contact_roles=None, **overrides):
    """A member login linked to a contact at an active member organisation (the portal is open to it).
    ``overrides`` go to ``make_user`` (e.g. ``full_name``, ``roles`` for a staff member who is also a member)."""
    from crm.auth.models import Role
    from crm.members.models import ContactRole, MembershipStatus

    overrides.setdefault("roles", {Role.MEMBER})
    user = make_user(**overrides)
    organisation = organisation or make_organisation(status=MembershipStatus.ACTIVE)
    roles = [ContactRole.MAIN_CONTACT] if contact_roles is None else contact_roles
    make_contact(organisation, roles=roles, name=user.full_name, email=user.email, user_id=user.id)
    return user


# --- advisory ------------------------------------------------------------------------------------------
def make_case(organisation, *, requester=None, actor=None, **overrides):
    """A case opened through the service (assignment, deadlines, receipt)."""
    from crm.advisory.services import open_case

    n = next(_sequence)
    values = {"subject": f"Spørsmål {n}", "description": "Hvordan kartlegger vi risiko i leverandørkjeden?"}
    values.update(overrides)
    return open_case(organisation=organisation, requester=requester, actor=actor, **values)
