"""Login with a second factor for staff, logout, password reset and invitations, the account page."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_user, logout_user
from limits import parse as parse_limit
from redis.exceptions import RedisError

from crm.auth import mfa, reset, services
from crm.auth.access import authenticated, public, safe_next_url
from crm.auth.forms import ChangePasswordForm, CodeForm, ForgotPasswordForm, LoginForm, NewPasswordForm, PreferencesForm
from crm.auth.models import User
from crm.errors import DomainError, field_error
from crm.extensions import db, limiter, login_manager, minutes_until_retry

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

PENDING_KEY = "mfa_pending"


def home_for(user: User) -> str:
    if user.is_staff:
        return url_for("home.staff_dashboard")
    if user.is_member:
        return url_for("home.portal_home")
    return url_for("home.index")


def start_session(user: User, *, login_at: int | None = None) -> None:
    session.clear()
    session.permanent = True
    login_user(user)
    now = int(time.time())
    session["login_at"] = login_at or now
    session["seen_at"] = now


# Throttling. Both login limits count failed attempts only (``deduct_when``) and are tested before
# the view runs, so once one is exceeded the password is not even checked.
# - Per IP (LOGIN_LIMIT_PER_IP): one machine cannot guess at many accounts.
# - Per account (LOGIN_LIMIT_PER_ACCOUNT), keyed by the normalised address whatever the IP: guesses
#   at one account spread over many machines are counted together.
# The price of the second is that anyone, even from one IP, can hold one account's login closed
# for the window by failing on purpose. We accept that rather than key the account limit by IP as
# well (which would give a botnet a fresh allowance per machine): the window is short, only that
# account is affected, every failure is in the audit log, and the real user has a way out that the
# attacker lacks: setting a new password through the emailed link clears the account's counter.
def _clear_login_throttle(email: str) -> None:
    """Forget the account's failed logins (after the owner proved control of the mailbox)."""
    item = parse_limit(current_app.config["LOGIN_LIMIT_PER_ACCOUNT"])
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    key = "login-account:" + services.normalise_email(email)[:254]
    try:
        limiter.limiter.clear(item, *([prefix] if prefix else []), key, "auth.login")
    except RedisError as exc:  # Redis down: the new password is saved; the count runs out with its window
        logger.warning("Could not clear the login throttle of %s: %s", key, exc)


def _failed_attempt(response) -> bool:
    return bool(g.get("auth_attempt_failed"))


def _account_key() -> str:
    return "login-account:" + services.normalise_email(request.form.get("email", ""))[:254]


def _pending_key() -> str:
    user_id = str(session.get(PENDING_KEY, {}).get("user", "none")).split(":", 1)[0]
    return "mfa-account:" + user_id


def _reset_address_key() -> str:
    return "reset-address:" + services.normalise_email(request.form.get("email", ""))[:254]


# Wrong codes on the enrolment and the code page count together, per pending account.
mfa_limit = limiter.shared_limit(
    lambda: current_app.config["MFA_LIMIT_PER_ACCOUNT"],
    scope="mfa",
    methods=["POST"],
    key_func=_pending_key,
    deduct_when=_failed_attempt,
)

THROTTLED = {
    "auth.login": ("auth/login.html", LoginForm),
    "auth.mfa_code": ("auth/mfa_code.html", CodeForm),
    "auth.mfa_enrol": ("auth/mfa_enrol.html", CodeForm),
    "auth.forgot_password": ("auth/forgot_password.html", ForgotPasswordForm),
}


@bp.errorhandler(429)
def too_many_attempts(exc):
    db.session.rollback()
    template, form_class = THROTTLED.get(request.endpoint or "", ("auth/login.html", LoginForm))
    context = {"form": form_class(formdata=None)}
    if request.endpoint == "auth.mfa_enrol":
        user = _pending_user()
        if user is None or not user.totp_secret:
            return redirect(url_for("auth.login"))
        context.update(qr_svg=mfa.qr_code_svg(user), secret=user.totp_secret)
    minutes = minutes_until_retry()
    if request.endpoint == "auth.login":
        message = ngettext(
            "Too many login attempts. Try again in %(num)d minute.",
            "Too many login attempts. Try again in %(num)d minutes.",
            minutes,
        )
    else:
        message = ngettext(
            "Too many attempts. Try again in %(num)d minute.",
            "Too many attempts. Try again in %(num)d minutes.",
            minutes,
        )
    flash(message, "danger")
    return render_template(template, **context), 429


@bp.route("/auth/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"], deduct_when=_failed_attempt)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
    methods=["POST"],
    key_func=_account_key,
    deduct_when=_failed_attempt,
)
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if not form.is_submitted():
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data, ip_address=request.remote_addr)
        if user is None:
            g.auth_attempt_failed = True
            db.session.commit()  # keep the audit entry of the failure
            flash(_("Wrong email or password."), "danger")
            return render_template("auth/login.html", form=form), 200
        next_url = safe_next_url(home_for(user))
        if mfa.mfa_required(user):
            db.session.commit()  # a rehashed password
            session.clear()
            session[PENDING_KEY] = {"user": user.get_id(), "at": int(time.time()), "next": next_url}
            return redirect(url_for("auth.mfa_code" if mfa.is_enrolled(user) else "auth.mfa_enrol"))
        services.complete_login(user, ip_address=request.remote_addr)
        db.session.commit()
        start_session(user)
        return redirect(next_url)
    return render_template("auth/login.html", form=form)


def _pending_user() -> User | None:
    """The user who passed the password step in this browser a moment ago, if still valid."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if time.time() - pending.get("at", 0) > current_app.config["MFA_PENDING_SECONDS"]:
        session.pop(PENDING_KEY, None)
        return None
    return services.load_user_from_session_id(str(pending.get("user", "")))


def _finish_mfa_login(user: User, method: str):
    next_url = session.get(PENDING_KEY, {}).get("next") or home_for(user)
    services.complete_login(user, ip_address=request.remote_addr, method=method)
    db.session.commit()
    start_session(user)
    return redirect(next_url)


def _expired_pending():
    flash(_("Please log in again."), "warning")
    return redirect(url_for("auth.login"))


def _locked_page(message: str):
    return render_template("auth/mfa_locked.html", message=message), 429


def _refused_code(user: User):
    """After a wrong code: keep its count and audit entry; the lock notice when this code locked the second factor."""
    g.auth_attempt_failed = True
    db.session.commit()
    until = mfa.locked_until(user)
    return _locked_page(mfa.locked_message(until)) if until is not None else None


@bp.route("/auth/mfa", methods=["GET", "POST"])
@public
@mfa_limit
def mfa_code():
    user = _pending_user()
    if user is None:
        return _expired_pending()
    if not mfa.is_enrolled(user):
        return redirect(url_for("auth.mfa_enrol"))
    if (until := mfa.locked_until(user)) is not None:
        return _locked_page(mfa.locked_message(until))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            accepted = mfa.verify_code(user, form.code.data, ip_address=request.remote_addr)
        except mfa.SecondFactorLocked as exc:  # locked by a parallel request a moment ago
            return _locked_page(exc.message)
        if accepted:
            return _finish_mfa_login(user, "password+totp")
        if (locked := _refused_code(user)) is not None:
            return locked
        form.code.errors.append(_("The code is wrong or already used. Wait for the next code and try again."))
    return render_template("auth/mfa_code.html", form=form)


@bp.route("/auth/mfa/enrol", methods=["GET", "POST"])
@public
@mfa_limit
def mfa_enrol():
    user = _pending_user()
    if user is None:
        return _expired_pending()
    if mfa.is_enrolled(user):
        return redirect(url_for("auth.mfa_code"))
    if (until := mfa.locked_until(user)) is not None:
        return _locked_page(mfa.locked_message(until))
    secret = mfa.begin_enrolment(user)
    db.session.commit()
    form = CodeForm()
    if form.validate_on_submit():
        try:
            confirmed = mfa.confirm_enrolment(user, form.code.data, ip_address=request.remote_addr)
        except mfa.SecondFactorLocked as exc:
            return _locked_page(exc.message)
        if confirmed:
            flash(_("Two-factor login is set up."), "success")
            return _finish_mfa_login(user, "password+totp-enrolment")
        if (locked := _refused_code(user)) is not None:
            return locked
        form.code.errors.append(_("The code is wrong. Check the time on your phone and try the next code."))
    return render_template("auth/mfa_enrol.html", form=form, qr_svg=mfa.qr_code_svg(user), secret=secret)


@bp.route("/auth/logout", methods=["POST"])
@authenticated
def logout():
    services.end_all_sessions(current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are logged out."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/auth/forgot-password", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["PASSWORD_RESET_LIMIT_PER_ADDRESS"], methods=["POST"], key_func=_reset_address_key
)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        reset.request_password_reset(form.email.data, ip_address=request.remote_addr)
        db.session.commit()
        flash(
            _("If the address belongs to an account, we have sent a link to set a new password. It works for an hour."),
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot_password.html", form=form)


def _password_link_view(token: str, purpose: str, template: str):
    link_user = reset.user_for_password_token(token, purpose)
    if link_user is None:
        return render_template("auth/link_invalid.html", purpose=purpose), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = reset.set_password_with_token(
                token, form.new_password.data, purpose=purpose, ip_address=request.remote_addr
            )
        except DomainError as exc:
            field_error(form, exc, default="new_password")
        else:
            db.session.commit()
            _clear_login_throttle(user.email)
            flash(_("Your password is saved. You can log in now."), "success")
            return redirect(url_for("auth.login"))
    return render_template(template, form=form, needs_mfa=mfa.mfa_required(link_user)), 400 if form.errors else 200


@bp.route("/auth/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str):
    return _password_link_view(token, reset.RESET, "auth/reset_password.html")


@bp.route("/auth/invitation/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token: str):
    return _password_link_view(token, reset.INVITATION, "auth/accept_invitation.html")


def _account_page(password_form=None, preferences_form=None, status: int = 200):
    password_form = password_form or ChangePasswordForm(formdata=None)
    preferences_form = preferences_form or PreferencesForm(formdata=None, locale=current_user.locale or "")
    return render_template(
        "auth/account.html",
        password_form=password_form,
        preferences_form=preferences_form,
        mfa_enrolled=mfa.is_enrolled(current_user),
        mfa_required=mfa.mfa_required(current_user),
    ), status


@bp.route("/account")
@authenticated
def account():
    return _account_page()


@bp.route("/account/password", methods=["POST"])
@authenticated
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(
                current_user, current_password=form.current_password.data, new_password=form.new_password.data
            )
        except DomainError as exc:
            field_error(form, exc, default="new_password")
        else:
            db.session.commit()
            # Every other session has ended; this browser continues with a fresh session cookie.
            start_session(current_user._get_current_object(), login_at=session.get("login_at"))
            flash(_("Your password is changed. You have been logged out everywhere else."), "success")
            return redirect(url_for("auth.account"))
    return _account_page(password_form=form, status=400)


@bp.route("/account/preferences", methods=["POST"])
@authenticated
def preferences():
    form = PreferencesForm()
    if form.validate_on_submit():
        locale = form.locale.data or None
        services.set_user_locale(current_user, locale, allowed=set(current_app.config["LANGUAGES"]))
        db.session.commit()
        if locale:
            session["locale"] = locale
        else:
            session.pop("locale", None)
        flash(_("Your preferences are saved."), "success")
        return redirect(url_for("auth.account"))
    return _account_page(preferences_form=form, status=400)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    return services.load_user_from_session_id(session_id)


def init_app(app: Flask) -> None:
    from crm.auth import admin_views

    app.register_blueprint(admin_views.bp)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "strong"

    @app.before_request
    def enforce_session_timeouts():
        if "login_at" not in session:
            return None
        now = int(time.time())
        idle = app.config["SESSION_IDLE_TIMEOUT"].total_seconds()
        absolute = app.config["PERMANENT_SESSION_LIFETIME"].total_seconds()
        if now - session.get("seen_at", 0) > idle or now - session["login_at"] > absolute:
            logout_user()
            session.clear()
            flash(_("Your session has expired. Please log in again."), "warning")
            return redirect(url_for("auth.login", next=request.path if request.method == "GET" else None))
        session["seen_at"] = now
        return None
