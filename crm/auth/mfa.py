"""Staff two-factor login with TOTP (RFC 6238): enrolment by QR code, and each code accepted once."""

from __future__ import annotations

import hmac
import logging
import time
from datetime import UTC, datetime, timedelta

import pyotp
import segno
from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.auth.services import end_all_sessions
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import format_datetime_no
from crm.mail.services import queue_email
from crm.models import utcnow

logger = logging.getLogger(__name__)

ISSUER = "Etisk handel Norge CRM"
INTERVAL = 30
# Codes from the neighbouring time steps are accepted too, for phones whose clocks drift a little.
VALID_WINDOW = 1


class SecondFactorLocked(DomainError):
    """Too many wrong codes in a row: no code is checked, not even the right one, until the lock ends."""

    status_code = 429


def mfa_required(user: User) -> bool:
    """Staff (any staff role) must pass a second factor unless development turned it off."""
    return user.is_staff and bool(current_app.config["CRM_REQUIRE_STAFF_MFA"])


def is_enrolled(user: User) -> bool:
    return bool(user.totp_secret and user.totp_confirmed_at)


def begin_enrolment(user: User) -> str:
    """Give the user a secret to confirm (kept while unconfirmed, so reloading the page does not
    invalidate a QR code already scanned) and return it."""
    if is_enrolled(user):
        raise DomainError(_("Two-factor login is already set up."))
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        user.totp_last_counter = None
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    if not user.totp_secret:
        raise DomainError(_("Two-factor login is not being set up."))
    return pyotp.TOTP(user.totp_secret, interval=INTERVAL).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_code_svg(user: User) -> Markup:
    """The provisioning URI as inline SVG: no scripts and no style attributes, so the CSP allows it."""
    svg = segno.make(provisioning_uri(user), error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", title=_("QR code for your authenticator app")
    )
    return Markup(svg)  # noqa: S704 - segno's own markup; the only text in it is escaped by segno


def _current_counter(now: float | None) -> int:
    return int(time.time() if now is None else now) // INTERVAL


def _matching_counter(secret: str, code: str, now: float | None) -> int | None:
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=INTERVAL)
    current = _current_counter(now)
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


def locked_until(user: User, *, now: datetime | None = None) -> datetime | None:
    """When the user's second factor opens again, or None when it is not locked."""
    until = user.mfa_locked_until
    return until if until is not None and until > (now or utcnow()) else None


def locked_message(until: datetime) -> str:
    return _(
        "Two-factor login is locked after too many wrong codes. Try again after %(time)s,"
        " or ask an administrator to lift the lock.",
        time=format_datetime_no(until),
    )


def verify_code(user: User, code: str, *, ip_address: str | None = None, now: float | None = None) -> bool:
    """True when ``code`` is valid for the user's secret and newer than the last accepted code;
    its time step is then spent, so the same code (or an older one) is never accepted again.
    Failures are audit logged, and the ``MFA_LOCKOUT_AFTER``-th in a row locks the second factor
    (``lock_second_factor``). Raises ``SecondFactorLocked`` while it is locked, checking nothing."""
    moment = utcnow() if now is None else datetime.fromtimestamp(now, UTC)
    # One check at a time per user: parallel guesses cannot slip past the count, nor a code be spent twice.
    db.session.flush()
    db.session.refresh(user, with_for_update=True)
    until = locked_until(user, now=moment)
    if until is not None:
        raise SecondFactorLocked(locked_message(until))
    counter = _matching_counter(user.totp_secret, code, now) if user.totp_secret else None
    last = user.totp_last_counter
    if counter is None or (last is not None and counter <= last):
        reason = "wrong_code" if counter is None else "reused"
        record_audit("auth.mfa.failed", actor=None, target=user, ip_address=ip_address, details={"reason": reason})
        logger.info("MFA code refused for user %s (%s)", user.id, reason)
        user.mfa_failed_attempts += 1
        if user.mfa_failed_attempts >= current_app.config["MFA_LOCKOUT_AFTER"]:
            lock_second_factor(user, now=moment, ip_address=ip_address)
        return False
    user.totp_last_counter = counter
    user.mfa_failed_attempts = 0
    user.mfa_lockouts = 0
    user.mfa_locked_until = None
    return True


def lock_second_factor(user: User, *, now: datetime | None = None, ip_address: str | None = None) -> datetime:
    """Lock the user's second factor for the next wait of ``MFA_LOCKOUT_MINUTES`` (each lockout in a row waits
    longer, the last wait repeating), audit it and email the user. Returns when the lock ends."""
    waits = current_app.config["MFA_LOCKOUT_MINUTES"]
    minutes = waits[min(user.mfa_lockouts, len(waits) - 1)]
    until = (now or utcnow()) + timedelta(minutes=minutes)
    user.mfa_lockouts += 1
    user.mfa_failed_attempts = 0
    user.mfa_locked_until = until
    record_audit(
        "auth.mfa.locked",
        actor=None,
        target=user,
        ip_address=ip_address,
        details={"locked_minutes": minutes, "lockouts_in_a_row": user.mfa_lockouts},
    )
    queue_email(
        to=user.email,
        to_name=user.full_name,
        template="auth_mfa_locked",
        context={"user": user, "until": until, "minutes": minutes},
        recipient_user_id=user.id,
        locale=user.locale,
    )
    logger.warning(
        "security: second factor of user %s locked for %s minutes (lockout %s) from %s",
        user.id,
        minutes,
        user.mfa_lockouts,
        ip_address,
    )
    return until


def unlock_second_factor(user: User, *, actor: User) -> None:
    """Lift a second-factor lock (an administrator, after checking with the user). The count of lockouts in a row
    stays until the user's next right code, so an attacker who goes on meets the longer waits."""
    if locked_until(user) is None:
        raise DomainError(_("Two-factor login is not locked."))
    user.mfa_locked_until = None
    user.mfa_failed_attempts = 0
    record_audit("auth.user.mfa_unlocked", actor=actor, target=user)
    logger.info("second factor of user %s unlocked by %s", user.id, actor.email)


def confirm_enrolment(user: User, code: str, *, ip_address: str | None = None, now: float | None = None) -> bool:
    """Finish enrolment when ``code`` comes from the new secret; False (and audit logged) otherwise."""
    if is_enrolled(user) or not user.totp_secret:
        raise DomainError(_("Two-factor login is not being set up."))
    if not verify_code(user, code, ip_address=ip_address, now=now):
        return False
    user.totp_confirmed_at = utcnow()
    record_audit("auth.mfa.enrolled", actor=user, target=user, ip_address=ip_address)
    return True


def reset_mfa(user: User, *, actor: User) -> None:
    """Forget the user's authenticator (lost phone): they enrol again at their next login.
    Their sessions end, in case the device was stolen."""
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_counter = None
    end_all_sessions(user)
    record_audit("auth.user.mfa_reset", actor=actor, target=user)
