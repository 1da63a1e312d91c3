"""Accounts: creating users, checking passwords, ending sessions, managing staff users."""

from __future__ import annotations

import logging

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update
from sqlalchemy.sql import Select

from crm.audit.services import record_audit
from crm.auth.models import STAFF_ROLES, Role, User, UserRole
from crm.auth.passwords import hash_password, needs_rehash, password_problem, verify_password
from crm.errors import Conflict, DomainError, StaleEdit
from crm.extensions import db
from crm.models import utcnow

logger = logging.getLogger(__name__)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email_address(email: str) -> str:
    """The normalised address, or ``DomainError`` (field ``email``) when it is not a valid email address."""
    email = normalise_email(email)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise DomainError(_("Enter a valid email address."), field="email") from None
    return email


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def create_user(
    *, email: str, full_name: str, password: str | None, roles: set[Role], actor: User | None = None
) -> User:
    """Create a user with the given roles. Raises ``Conflict`` for a taken email, and ``DomainError``
    for an invalid email address (field ``email``) or a password the policy refuses (field ``password``)."""
    email = check_email_address(email)
    if not full_name.strip():
        raise DomainError(_("Enter a name."), field="full_name")
    if find_user_by_email(email):
        raise Conflict(_("A user with this email address already exists."), field="email")
    user = User(email=email, full_name=full_name.strip())
    if password is not None:
        _apply_password(user, password)
    user.role_links = [UserRole(role=role) for role in sorted(roles, key=lambda r: r.value)]
    db.session.add(user)
    db.session.flush()
    record_audit("auth.user.created", actor=actor, target=user, details={"roles": sorted(r.value for r in roles)})
    return user


def _apply_password(user: User, password: str) -> None:
    problem = password_problem(password, email=user.email)
    if problem:
        raise DomainError(problem, field="password")
    user.password_hash = hash_password(password)


def authenticate(email: str, password: str, *, ip_address: str | None = None) -> User | None:
    """The enabled user with this email and password, or None. Both outcomes are audit logged."""
    user = find_user_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_enabled:
        record_audit(
            "auth.login.failed",
            actor=None,
            target=user,
            target_type=None if user else "users",
            ip_address=ip_address,
            details={"email": normalise_email(email)[:254], "reason": "disabled" if ok else "bad_credentials"},
        )
        return None
    if needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    return user


def complete_login(user: User, *, ip_address: str | None = None, method: str = "password") -> None:
    """Record a successful login (after every factor has passed)."""
    user.last_login_at = utcnow()
    record_audit("auth.login.succeeded", actor=user, target=user, ip_address=ip_address, details={"method": method})


def end_all_sessions(user: User) -> None:
    """Invalidate every existing session cookie of the user."""
    user.session_version += 1


def change_password(user: User, *, current_password: str, new_password: str) -> None:
    """Change one's own password; ends every session (the view starts a fresh one for the current browser)."""
    if not verify_password(user.password_hash, current_password):
        raise DomainError(_("The current password is wrong."), field="current_password")
    _apply_password(user, new_password)
    end_all_sessions(user)
    record_audit("auth.password.changed", actor=user, target=user)


def set_password(
    user: User, new_password: str, *, actor: User | None, reason: str = "admin", ip_address: str | None = None
) -> None:
    """Set a password without knowing the old one (``reason``: reset link, invitation, admin CLI).
    Ends every session of the user; ``DomainError`` (field ``password``) when the policy refuses it."""
    _apply_password(user, new_password)
    end_all_sessions(user)
    record_audit("auth.password.set", actor=actor, target=user, ip_address=ip_address, details={"reason": reason})


def set_user_enabled(user: User, enabled: bool, *, actor: User) -> None:
    """Enable or disable a login; disabling ends every session of the user at once."""
    if user.id == actor.id and not enabled:
        raise DomainError(_("You cannot disable your own account."))
    user.is_enabled = enabled
    if not enabled:
        end_all_sessions(user)
    record_audit("auth.user.enabled" if enabled else "auth.user.disabled", actor=actor, target=user)


def load_user_from_session_id(session_id: str) -> User | None:
    """Flask-Login loader: the id carries the session version, so bumped versions log out."""
    try:
        user_id, version = (int(part) for part in session_id.split(":", 1))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_enabled or user.session_version != version:
        return None
    return user


def set_user_locale(user: User, locale: str | None, *, allowed: set[str]) -> None:
    """The user's language preference; ``None`` uses the default language (bokmål)."""
    if locale is not None and locale not in allowed:
        raise DomainError(_("Unknown language."), field="locale")
    user.locale = locale


def users_query(search: str = "") -> Select[tuple[User]]:
    """All users by name, filtered by a case-insensitive search in name and email."""
    stmt = select(User).order_by(func.lower(User.full_name), User.id)
    search = search.strip().lower()
    if search:
        name, email = func.lower(User.full_name), func.lower(User.email)
        stmt = stmt.where(or_(name.contains(search, autoescape=True), email.contains(search, autoescape=True)))
    return stmt


def _check_staff_roles(roles: set[Role]) -> None:
    if not roles:
        raise DomainError(_("Choose at least one role."), field="roles")
    if not roles <= STAFF_ROLES:
        raise DomainError(_("Only staff roles can be given here."), field="roles")


def create_staff_user(*, email: str, full_name: str, roles: set[Role], actor: User) -> User:
    """Create a staff user without a password and queue an invitation email with a single-use
    link to set one. Raises ``Conflict`` for a taken email and ``DomainError`` for bad input."""
    from crm.auth.reset import send_invitation

    _check_staff_roles(roles)
    user = create_user(email=email, full_name=full_name, password=None, roles=roles, actor=actor)
    send_invitation(user, actor=actor)
    return user


def update_staff_roles(user: User, roles: set[Role], *, actor: User, version: int | None = None) -> None:
    """Replace a staff user's roles. An admin cannot take the admin role from themselves, so
    there is always someone left who can manage users.

    ``version`` is the user's ``roles_version`` when the roles form was opened: ``StaleEdit`` if the roles were
    changed since (also by a request running at the same moment: the bump is one guarded UPDATE)."""
    _check_staff_roles(roles)
    if user.id == actor.id and Role.ADMIN not in roles:
        raise DomainError(_("You cannot remove your own administrator role."), field="roles")
    if version is not None and version != user.roles_version:
        raise StaleEdit()
    before = user.roles
    if before & STAFF_ROLES == roles:
        return
    bumped = db.session.execute(
        update(User)
        .where(User.id == user.id, User.roles_version == user.roles_version)
        .values(roles_version=User.roles_version + 1)
    )
    if bumped.rowcount != 1:
        raise StaleEdit()
    keep = [link for link in user.role_links if link.role in roles or link.role is Role.MEMBER]
    kept_roles = {link.role for link in keep}
    user.role_links = keep + [UserRole(role=role) for role in sorted(roles - kept_roles, key=lambda r: r.value)]
    db.session.flush()
    record_audit(
        "auth.user.roles_changed",
        actor=actor,
        target=user,
        details={"before": sorted(r.value for r in before), "after": sorted(r.value for r in user.roles)},
    )
