"""Users and their roles."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models import TimestampMixin, UTCDateTime, str_enum


class Role(enum.Enum):
    ADMIN = "admin"
    ADVISER = "adviser"
    COORDINATOR = "coordinator"
    FINANCE = "finance"
    MEMBER = "member"


STAFF_ROLES = frozenset({Role.ADMIN, Role.ADVISER, Role.COORDINATOR, Role.FINANCE})


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    # Bumped by logout, password change and disabling: every older session cookie stops working.
    session_version: Mapped[int] = mapped_column(default=1)
    # Bumped only when an administrator changes the roles: the roles form carries it, so that a save from a form
    # opened before a colleague's change is refused. (No VersionedMixin: every login updates this row.)
    roles_version: Mapped[int] = mapped_column(default=1, server_default="1")
    locale: Mapped[str | None] = mapped_column(String(5))
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last accepted TOTP time step: a code is accepted once.
    totp_last_counter: Mapped[int | None] = mapped_column()
    # Second-factor lockout: wrong codes since the last right one; at MFA_LOCKOUT_AFTER of them the second factor is
    # locked until ``mfa_locked_until``, each lockout in a row (``mfa_lockouts``) longer than the one before.
    mfa_failed_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    mfa_lockouts: Mapped[int] = mapped_column(default=0, server_default="0")
    mfa_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    role_links: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(link.role for link in self.role_links)

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    @property
    def is_member(self) -> bool:
        return Role.MEMBER in self.roles

    @property
    def is_active(self) -> bool:  # Flask-Login: disabled users cannot log in
        return self.is_enabled

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class UserRole(db.Model):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))

    user: Mapped[User] = relationship(back_populates="role_links")
