"""Login and logout."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from crm.auth import services
from crm.auth.access import authenticated, public, safe_next_url
from crm.auth.forms import LoginForm
from crm.auth.models import User
from crm.extensions import db, limiter, login_manager

bp = Blueprint("auth", __name__, url_prefix="/auth")


def home_for(user: User) -> str:
    if user.is_staff:
        return url_for("home.staff_dashboard")
    if user.is_member:
        return url_for("home.portal_home")
    return url_for("home.index")


def start_session(user: User) -> None:
    session.clear()
    session.permanent = True
    login_user(user)
    now = int(time.time())
    session["login_at"] = now
    session["seen_at"] = now


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data, ip_address=request.remote_addr)
        if user is None:
            db.session.commit()  # keep the audit entry of the failure
            flash(_("Wrong email or password."), "danger")
            return render_template("auth/login.html", form=form), 200
        services.complete_login(user, ip_address=request.remote_addr)
        db.session.commit()
        start_session(user)
        return redirect(safe_next_url(home_for(user)))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@authenticated
def logout():
    services.end_all_sessions(current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are logged out."), "success")
    return redirect(url_for("auth.login"))


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    return services.load_user_from_session_id(session_id)


def init_app(app: Flask) -> None:
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
