"""Password reset and invitation links.

A link carries a token signed with the app's secret (itsdangerous), with a salt per purpose and
a timestamp, so a reset link is no invitation and expires on its own (1 hour; invitations 7 days).
The token also carries a fingerprint of the user's current password hash: setting a password
changes the hash (argon2 salts every hash), so the link dies once used, and so does every other
link issued before. Nothing is stored; the secret key signs and the password hash revokes.

The emails are stored in the outbox without their link (``secret_link``): the send job mints it
for the recipient at each attempt, so no staff page, retry or stored row ever holds a live token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadData, URLSafeTimedSerializer

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.auth.services import find_user_by_email, normalise_email, set_password
from crm.errors import DomainError
from crm.extensions import db
from crm.mail.services import LINK_PLACEHOLDER, queue_email, register_secret_link

logger = logging.getLogger(__name__)

RESET = "reset"
INVITATION = "invitation"
_MAX_AGE_SETTING = {RESET: "PASSWORD_RESET_MAX_AGE_SECONDS", INVITATION: "INVITATION_MAX_AGE_SECONDS"}
_ENDPOINT = {RESET: "auth.reset_password", INVITATION: "auth.accept_invitation"}


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    if purpose not in _MAX_AGE_SETTING:
        raise ValueError(f"Unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(current_app.secret_key, salt=f"crm.auth.password-link.{purpose}")


def _fingerprint(user: User) -> str:
    return hashlib.sha256(f"{user.id}:{user.password_hash or ''}".encode()).hexdigest()[:24]


def make_password_token(user: User, purpose: str) -> str:
    return _serializer(purpose).dumps({"u": user.id, "f": _fingerprint(user)})


def user_for_password_token(token: str, purpose: str) -> User | None:
    """The enabled user the token was made for, or None when it is forged, expired or spent."""
    max_age = current_app.config[_MAX_AGE_SETTING[purpose]]
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("f"), str):
        return None
    user = db.session.get(User, data["u"])
    if user is None or not user.is_enabled or not hmac.compare_digest(_fingerprint(user), data["f"]):
        return None
    return user


def external_url(endpoint: str, **values: object) -> str:
    """An absolute link under ``BASE_URL``; works outside requests (jobs, CLI) too."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, url_scheme=base.scheme or "https", script_name=base.path or "/")
    return adapter.build(endpoint, values, force_external=True)


def password_link(user: User, purpose: str) -> str:
    return external_url(_ENDPOINT[purpose], token=make_password_token(user, purpose))


def _reset_link(user: User) -> str | None:
    return password_link(user, RESET) if user.is_enabled else None


def _invitation_link(user: User) -> str | None:
    # Once a password is chosen the invitation is spent; a link minted now would be a live one.
    return password_link(user, INVITATION) if user.is_enabled and not user.password_hash else None


register_secret_link(RESET, _reset_link)
register_secret_link(INVITATION, _invitation_link)


def request_password_reset(email: str, *, ip_address: str | None = None) -> None:
    """Queue a reset link when an enabled user has this address. The caller shows the same
    answer either way, so the form does not reveal who has an account."""
    user = find_user_by_email(email)
    known = user is not None and user.is_enabled
    record_audit(
        "auth.password.reset_requested",
        actor=None,
        target=user,
        target_type=None if user else "users",
        ip_address=ip_address,
        details={"email": normalise_email(email)[:254], "sent": known},
    )
    if not known:
        return
    hours = current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] // 3600
    queue_email(
        to=user.email,
        to_name=user.full_name,
        template="password_reset",
        context={"user": user, "url": LINK_PLACEHOLDER, "hours": hours},
        recipient_user_id=user.id,
        secret_link=RESET,
    )


def send_invitation(
    user: User, *, actor: User | None, template: str = "invitation", context: dict[str, Any] | None = None
) -> None:
    """Queue an invitation with a link to choose a password (valid for 7 days, single use).
    ``template`` (a mail template) and ``context`` let a feature word its own invitation (the member portal's).
    ``DomainError`` when the user already has a password (they use "forgot password") or is disabled."""
    if user.password_hash or not user.is_enabled:
        raise DomainError(_("Only enabled users who have not chosen a password yet can be invited."))
    days = current_app.config["INVITATION_MAX_AGE_SECONDS"] // 86400
    queue_email(
        to=user.email,
        to_name=user.full_name,
        template=template,
        context={
            **(context or {}),
            "user": user,
            "url": LINK_PLACEHOLDER,
            "days": days,
            "inviter": actor,
        },
        recipient_user_id=user.id,
        locale=user.locale,
        secret_link=INVITATION,
    )
    record_audit("auth.user.invited", actor=actor, target=user, details={"template": template})


def set_password_with_token(token: str, new_password: str, *, purpose: str, ip_address: str | None = None) -> User:
    """Set the password of the token's user, which spends the token and ends the user's sessions.
    ``DomainError`` when the link is invalid, expired or used, or the policy refuses the password."""
    user = user_for_password_token(token, purpose)
    if user is None:
        raise DomainError(_("This link is invalid, expired or already used."))
    set_password(user, new_password, actor=user, reason=purpose, ip_address=ip_address)
    return user
