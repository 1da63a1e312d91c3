"""The audit log viewer for administrators."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.audit.details import (
    audit_action_label,
    audit_details,
    audit_details_text,
    audit_target_choices,
    audit_target_label,
    audit_target_names,
    audit_target_text,
    names_from,
    register_audit_details,
)
from crm.audit.forms import AuditFilterForm
from crm.audit.services import AuditFilter, audit_entries_query, export_audit_entries
from crm.auth.access import staff_required
from crm.auth.models import Role, User
from crm.exports import to_csv
from crm.extensions import db
from crm.i18n import format_datetime_no
from crm.pagination import paginate
from crm.ui import ROLE_LABELS, register_nav

bp = Blueprint("audit", __name__, url_prefix="/staff/audit")

register_nav(_l("Audit log"), "audit.index", audience="staff", roles={Role.ADMIN}, order=900)
bp.add_app_template_filter(audit_details, "audit_details")
bp.add_app_template_filter(audit_action_label, "audit_action")
bp.add_app_template_filter(audit_target_label, "audit_target")
bp.add_app_template_global(audit_target_text, "audit_target_text")

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
        "audit.log.exported": _l("Audit log exported"),
    },
    targets={"users": _l("User")},
    namers={"users": names_from(User.id, User.full_name)},
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
        "format": _l("Format"),
        "rows": _l("Rows"),
        "action": _l("Action starts with"),
        "actor": _l("Actor (email)"),
        "target_type": _l("Target type"),
        "target_id": _l("Target id"),
        "date_from": _l("From date"),
        "date_to": _l("To date"),
    },
    values={
        "roles": _ROLE_LABELS,
        "audit.log.exported:target_type": audit_target_label,
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


def _bound_form() -> AuditFilterForm:
    form = AuditFilterForm(formdata=request.args)
    choices = [("", _("All")), *audit_target_choices()]
    requested = (form.target_type.data or "").strip()
    if requested and requested not in dict(choices):
        choices.append((requested, requested))
    form.target_type.choices = choices
    form.validate()
    return form


@bp.route("/")
@staff_required(Role.ADMIN)
def index():
    form = _bound_form()
    filters = _filters_from(form)
    page = paginate(audit_entries_query(filters))
    return render_template(
        "audit/index.html",
        form=form,
        page=page,
        filtered=filters != AuditFilter(),
        target_names=audit_target_names(page.items),
        export_args={key: value for key, value in request.args.items() if key != "page"},
    )


@bp.route("/export.csv")
@staff_required(Role.ADMIN)
def export():
    """The entries the same filter shows, as CSV (semicolons, Norwegian headings); the export is audited."""
    filters = _filters_from(_bound_form())
    entries = export_audit_entries(filters, actor=current_user)
    db.session.commit()
    names = audit_target_names(entries)
    headers = [_("Time"), _("Actor"), _("Action"), _("Target"), _("Details"), _("IP address")]
    rows = [
        [
            format_datetime_no(entry.at),
            entry.actor_label or _("No user"),
            audit_action_label(entry.action),
            audit_target_text(entry, names),
            audit_details_text(entry),
            entry.ip_address,
        ]
        for entry in entries
    ]
    return Response(
        to_csv(headers, rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="revisjonslogg.csv"'},
    )
