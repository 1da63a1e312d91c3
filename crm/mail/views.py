"""Staff pages: failed and retrying emails with a retry button, a person's email history, one message."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.audit.details import names_from, register_audit_details
from crm.auth.access import safe_next_url, staff_required
from crm.auth.models import User
from crm.errors import DomainError
from crm.extensions import db
from crm.mail import services
from crm.mail.forms import RetryForm
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.pagination import paginate, requested_page
from crm.ui import register_nav, register_user_link

bp = Blueprint("mail", __name__, url_prefix="/staff/mail")


@bp.app_template_global("can_read_mail_body")
def can_read_mail_body(message: OutboxMessage) -> bool:
    """For every template that lists outbox messages: whether to show the subject (see ``services.can_read_body``)."""
    return current_user.is_authenticated and services.can_read_body(current_user, message)


register_nav(_l("Email"), "mail.messages", audience="staff", order=80)
register_user_link(_l("Email history"), "mail.person")
register_audit_details(
    actions={
        "mail.history.viewed": _l("Email history viewed"),
        "mail.message.viewed": _l("Email viewed"),
        "mail.message.retried": _l("Email sent again"),
    },
    targets={"outbox_messages": _l("Email")},
    namers={"outbox_messages": names_from(OutboxMessage.id, OutboxMessage.subject)},
    labels={
        "content_shown": _l("Subject and content shown"),
        "previous_status": _l("Status before"),
        "attempts": _l("Attempts"),
        "last_error": _l("Last error"),
    },
    values={"previous_status": {status.value: status.label for status in OutboxStatus}},
)


@bp.route("/")
@staff_required()
def messages():
    page = paginate(services.problem_messages_query())
    return render_template("mail/staff/messages.html", page=page)


@bp.route("/people/<int:user_id>")
@staff_required()
def person(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    services.record_history_viewed(user, actor=current_user, page=requested_page(), ip_address=request.remote_addr)
    # Commit before loading the page: a commit afterwards would expire every row and reload each one.
    db.session.commit()
    page = paginate(services.email_history_query(user))
    return render_template("mail/staff/person.html", person=user, page=page)


@bp.route("/messages/<int:message_id>")
@staff_required()
def message(message_id: int):
    row = db.session.get(OutboxMessage, message_id) or abort(404)
    readable = services.view_message(row, actor=current_user, ip_address=request.remote_addr)
    db.session.commit()
    return render_template("mail/staff/message.html", message=row, readable=readable)


@bp.route("/messages/<int:message_id>/retry", methods=["POST"])
@staff_required()
def retry(message_id: int):
    row = db.session.get(OutboxMessage, message_id) or abort(404)
    form = RetryForm()
    target = safe_next_url(url_for("mail.messages"))
    if not form.validate_on_submit():
        abort(400)
    try:
        services.retry_message(row, actor=current_user, ip_address=request.remote_addr)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
        return redirect(target)
    db.session.commit()
    flash(_("The email to %(address)s will be sent again.", address=row.to_address), "success")
    return redirect(target)
