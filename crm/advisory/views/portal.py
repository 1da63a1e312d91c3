"""The member portal's advisory pages: open a request, follow the organisation's visible cases,
reply, add files, close and reopen. Internal notes never reach these pages."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.advisory import services
from crm.advisory.forms import CaseForm, ConfirmForm, MessageForm, UploadForm
from crm.advisory.models import Case, CaseMessage, CaseStatus
from crm.advisory.views.common import (
    add_files,
    case_attachment,
    check_all,
    download,
    export_text,
    portal_bp,
    store_all,
    uploads,
)
from crm.auth.access import member_required
from crm.errors import DomainError, field_error
from crm.extensions import db
from crm.members.models import Contact
from crm.members.services import portal_contact_for
from crm.models import utcnow
from crm.pagination import paginate
from crm.submissions import create_once
from crm.ui import register_nav


def _me() -> Contact:
    contact = portal_contact_for(current_user)
    if contact is None:
        abort(403)
    return contact


def _case(me: Contact, case_id: int) -> Case:
    case = services.member_case(me, case_id)
    if case is None:
        abort(404)  # another organisation's case, or a private one: as if it did not exist
    return case


@portal_bp.route("/")
@member_required
def index():
    me = _me()
    page = paginate(services.visible_cases_stmt(me))
    return render_template("advisory/portal_list.html", page=page, me=me)


@portal_bp.route("/new", methods=["GET", "POST"])
@member_required
def new():
    me = _me()
    form = CaseForm()
    if form.validate_on_submit():
        files = uploads(form)
        try:
            check_all(files)

            def submit() -> Case:
                case = services.open_case(
                    organisation=me.organisation, requester=me, actor=current_user, **form.values()
                )
                store_all(case, files, actor=current_user)
                return case

            case = create_once(form.submission.data, Case, submit)
        except DomainError as exc:
            field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Thank you. We have received your request as case %(ref)s.", ref=case.reference), "success")
            return redirect(url_for("advisory_portal.show", case_id=case.id))
    return render_template("advisory/portal_new.html", form=form), 400 if form.is_submitted() else 200


def _render(me: Contact, case: Case, **forms):
    return render_template(
        "advisory/portal_case.html",
        case=case,
        me=me,
        messages=services.member_messages(case),
        attachments=[a for a in case.attachments if a.message is None or not a.message.is_internal],
        reply=forms.get("reply") or MessageForm(prefix="reply"),
        upload=forms.get("upload") or UploadForm(prefix="upload"),
        confirm=ConfirmForm(),
        can_reopen=case.status is CaseStatus.RESOLVED
        or (
            case.status is CaseStatus.CLOSED
            and case.closed_at is not None
            and utcnow() - case.closed_at <= services.REOPEN_WINDOW
        ),
    )


@portal_bp.route("/<int:case_id>")
@member_required
def show(case_id: int):
    me = _me()
    return _render(me, _case(me, case_id))


@portal_bp.route("/<int:case_id>/reply", methods=["POST"])
@member_required
def reply(case_id: int):
    me = _me()
    case = _case(me, case_id)
    form = MessageForm(prefix="reply")
    if form.validate_on_submit():
        files = uploads(form)
        try:
            check_all(files)

            def send() -> CaseMessage:
                message = services.add_member_reply(case, form.body.data, contact=me, actor=current_user)
                store_all(case, files, actor=current_user, message=message)
                return message

            create_once(form.submission.data, CaseMessage, send)
        except DomainError as exc:
            field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Your message is sent."), "success")
            return redirect(url_for("advisory_portal.show", case_id=case.id))
    return _render(me, case, reply=form), 400


@portal_bp.route("/<int:case_id>/files", methods=["POST"])
@member_required
def upload(case_id: int):
    me = _me()
    case = _case(me, case_id)
    form = UploadForm(prefix="upload")
    if add_files(case, form, actor=current_user):
        db.session.commit()
        flash(_("The files are added."), "success")
        return redirect(url_for("advisory_portal.show", case_id=case.id))
    return _render(me, case, upload=form), 400


@portal_bp.route("/<int:case_id>/close", methods=["POST"])
@member_required
def close(case_id: int):
    me = _me()
    case = _case(me, case_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.close_by_member(case, contact=me, actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            db.session.commit()
            flash(_("The case is closed."), "success")
    return redirect(url_for("advisory_portal.show", case_id=case_id))


@portal_bp.route("/<int:case_id>/reopen", methods=["POST"])
@member_required
def reopen(case_id: int):
    me = _me()
    case = _case(me, case_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.reopen_by_member(case, contact=me, actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            db.session.commit()
            flash(_("The case is reopened."), "success")
    return redirect(url_for("advisory_portal.show", case_id=case_id))


@portal_bp.route("/<int:case_id>/files/<int:attachment_id>")
@member_required
def attachment(case_id: int, attachment_id: int):
    me = _me()
    case = _case(me, case_id)
    found = case_attachment(case, attachment_id)
    if found is None or (found.message is not None and found.message.is_internal):
        abort(404)
    return download(found)


@portal_bp.route("/<int:case_id>/export")
@member_required
def export(case_id: int):
    me = _me()
    case = _case(me, case_id)
    text = export_text(case, services.member_messages(case), include_internal=False)
    return Response(
        text, mimetype="text/plain", headers={"Content-Disposition": f'attachment; filename="sak-{case.id}.txt"'}
    )


register_nav(
    _l("Advice"),
    "advisory_portal.index",
    audience="member",
    order=20,
    description=_l("Ask your adviser for help, and follow your organisation's questions and answers."),
)
