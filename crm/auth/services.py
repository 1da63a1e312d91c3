"""Accounts: creating users, checking passwords, ending sessions."""

from __future__ import annotations

import logging

from flask_babel import gettext as _
from sqlalchemy import func, select

from crm.audit.services import record_audit
from crm.auth.models import Role, User, UserRole
from crm.auth.passwords import hash_password, needs_rehash, password_problem, verify_password
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.models import utcnow

logger = logging.getLogger(__name__)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def create_user(
    *, email: str, full_name: str, password: str | None, roles: set[Role], actor: User | None = None
) -> User:
    """Create a user with the given roles. Raises ``Conflict`` for a taken email and
    ``DomainError`` (field ``password``) for a password the policy refuses."""
    email = normalise_email(email)
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
    if not verify_password(user.password_hash, current_password):
        raise DomainError(_("The current password is wrong."), field="current_password")
    _apply_password(user, new_password)
    end_all_sessions(user)
    record_audit("auth.password.changed", actor=user, target=user)


def set_password(user: User, new_password: str, *, actor: User | None) -> None:
    """Set a password without knowing the old one (reset link, invitation, admin CLI)."""
    _apply_password(user, new_password)
    end_all_sessions(user)
    record_audit("auth.password.set", actor=actor, target=user)


def set_user_enabled(user: User, enabled: bool, *, actor: User) -> None:
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
