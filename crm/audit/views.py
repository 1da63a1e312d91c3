"""The audit log viewer for administrators."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.audit.details import (
    audit_action_label,
    audit_details,
    audit_target_choices,
    audit_target_label,
    register_audit_details,
)
from crm.audit.forms import AuditFilterForm
from crm.audit.services import AuditFilter, audit_entries_query
from crm.auth.access import staff_required
from crm.auth.models import Role
from crm.pagination import paginate
from crm.ui import ROLE_LABELS, register_nav

bp = Blueprint("audit", __name__, url_prefix="/staff/audit")

register_nav(_l("Audit log"), "audit.index", audience="staff", roles={Role.ADMIN}, order=900)
bp.add_app_template_filter(audit_details, "audit_details")
bp.add_app_template_filter(audit_action_label, "audit_action")
bp.add_app_template_filter(audit_target_label, "audit_target")

_ROLE_LABELS = {role.value: label for role, label in ROLE_LABELS.items()}
register_audit_details(
    actions={
        "auth.login.succeeded": _l("Logged in"),
        "auth.login.failed": _l("Login failed"),
        "auth.mfa.enrolled": _l("Two-factor login set up"),
        "auth.mfa.failed": _l("Wrong two-factor code"),
        "auth.mfa.locked": _l("Two-factor login locked"),
        "auth.password.changed": _l("Password changed"),
        "auth.password.reset_requested": _l("Password reset requested"),
        "auth.password.set": _l("Password set"),
        "auth.user.created": _l("User created"),
        "auth.user.invited": _l("User invited"),
        "auth.user.disabled": _l("User disabled"),
        "auth.user.enabled": _l("User enabled"),
        "auth.user.mfa_reset": _l("Two-factor login reset"),
        "auth.user.mfa_unlocked": _l("Two-factor lock lifted"),
        "auth.user.roles_changed": _l("Roles changed"),
    },
    targets={"users": _l("User")},
    labels={
        "email": _l("Email"),
        "reason": _l("Reason"),
        "method": _l("Method"),
        "roles": _l("Roles"),
        "before": _l("Before"),
        "after": _l("After"),
        "sent": _l("Known address (email sent)"),
        "template": _l("Email"),
        "page": _l("Page"),
        "locked_minutes": _l("Locked for (minutes)"),
        "lockouts_in_a_row": _l("Lockouts in a row"),
    },
    values={
        "roles": _ROLE_LABELS,
        "before": _ROLE_LABELS,
        "after": _ROLE_LABELS,
        "reason": {
            "bad_credentials": _l("wrong email or password"),
            "disabled": _l("account disabled"),
            "wrong_code": _l("wrong code"),
            "reused": _l("code already used"),
            "reset": _l("password reset"),
            "invitation": _l("invitation"),
            "cli": _l("command line"),
            "admin": _l("administrator"),
        },
        "method": {
            "password": _l("password"),
            "password+totp": _l("password and code"),
            "password+totp-enrolment": _l("password and new authenticator"),
        },
    },
)


def _filters_from(form: AuditFilterForm) -> AuditFilter:
    """Only the fields that passed validation filter; a bad field shows its error and is ignored."""

    def value(name: str):
        field = form[name]
        if field.errors:
            return None
        data = field.data
        return data.strip() or None if isinstance(data, str) else data

    return AuditFilter(
        action_prefix=value("action"),
        actor=value("actor"),
        target_type=value("target_type"),
        target_id=value("target_id"),
        date_from=value("date_from"),
        date_to=value("date_to"),
    )


@bp.route("/")
@staff_required(Role.ADMIN)
def index():
    form = AuditFilterForm(formdata=request.args)
    choices = [("", _("All")), *audit_target_choices()]
    requested = (form.target_type.data or "").strip()
    if requested and requested not in dict(choices):
        choices.append((requested, requested))
    form.target_type.choices = choices
    form.validate()
    filters = _filters_from(form)
    page = paginate(audit_entries_query(filters))
    return render_template("audit/index.html", form=form, page=page, filtered=filters != AuditFilter())
