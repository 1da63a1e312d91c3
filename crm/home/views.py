"""Front page, dashboards' landing pages, language switch and the health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, session, url_for
from flask_login import current_user
from sqlalchemy import text

from crm.auth.access import member_required, public, safe_next_url, staff_required
from crm.extensions import db, redis

bp = Blueprint("home", __name__)


@bp.route("/")
@public
def index():
    if current_user.is_authenticated:
        if current_user.is_staff:
            return redirect(url_for("home.staff_dashboard"))
        if current_user.is_member:
            return redirect(url_for("home.portal_home"))
    return render_template("home/index.html")


@bp.route("/staff/")
@staff_required()
def staff_dashboard():
    return render_template("home/staff_dashboard.html")


@bp.route("/portal/")
@member_required
def portal_home():
    return render_template("home/portal_home.html")


@bp.route("/language/<code>", methods=["POST"])
@public
def set_language(code: str):
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code
        if current_user.is_authenticated:
            current_user.locale = code
            db.session.commit()
    # Unknown codes change nothing; the next URL must stay on this site.
    return redirect(safe_next_url(url_for("home.index")))


@bp.route("/healthz")
@public
def healthz():
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503
