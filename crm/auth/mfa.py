"""Staff two-factor login with TOTP (RFC 6238): enrolment by QR code, and each code accepted once."""

from __future__ import annotations

import hmac
import logging
import time

import pyotp
import segno
from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.auth.services import end_all_sessions
from crm.errors import DomainError
from crm.models import utcnow

logger = logging.getLogger(__name__)

ISSUER = "Etisk handel Norge CRM"
INTERVAL = 30
# Codes from the neighbouring time steps are accepted too, for phones whose clocks drift a little.
VALID_WINDOW = 1


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


def verify_code(user: User, code: str, *, ip_address: str | None = None, now: float | None = None) -> bool:
    """True when ``code`` is valid for the user's secret and newer than the last accepted code;
    its time step is then spent, so the same code (or an older one) is never accepted again.
    Failures are audit logged."""
    counter = _matching_counter(user.totp_secret, code, now) if user.totp_secret else None
    last = user.totp_last_counter
    if counter is None or (last is not None and counter <= last):
        reason = "wrong_code" if counter is None else "reused"
        record_audit("auth.mfa.failed", actor=None, target=user, ip_address=ip_address, details={"reason": reason})
        logger.info("MFA code refused for user %s (%s)", user.id, reason)
        return False
    user.totp_last_counter = counter
    return True


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
