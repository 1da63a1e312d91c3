"""Staff pages: the queue, the case page, the dashboard, the portfolio, reply templates and absences.

Only the adviser team (advisers and administrators) see cases. Every view and export of a case writes
a ``CaseAccessLog`` row.
"""

from __future__ import annotations

from functools import partial

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm.advisory import services
from crm.advisory.forms import (
    AbsenceForm,
    ConfirmForm,
    NoteForm,
    ReassignForm,
    ReplyTemplateForm,
    StaffReplyForm,
    StatusForm,
    TargetForm,
    TimeEntryForm,
    UploadForm,
)
from crm.advisory.models import (
    OECD_STEPS,
    AdviserAbsence,
    Case,
    CaseMessage,
    CaseStatus,
    CaseTimeEntry,
    ReplyTemplate,
    ServiceTarget,
    Theme,
    Urgency,
)
from crm.advisory.queue import QueueFilter, dashboard_stats, portfolio, queue_counts, queue_stmt
from crm.advisory.views.common import (
    add_files,
    bp,
    case_attachment,
    check_all,
    download,
    export_text,
    store_all,
    uploads,
)
from crm.audit.details import names_from, register_audit_details
from crm.auth.access import staff_required
from crm.auth.models import Role
from crm.errors import UNCHECKED, DomainError, StaleEdit, attempt, commit_action, field_error
from crm.extensions import db
from crm.mail.services import register_body_readers
from crm.members.panels import register_panel
from crm.members.services import today
from crm.models import utcnow
from crm.pagination import paginate
from crm.request_args import FIRST_YEAR, id_arg, int_arg
from crm.submissions import create_once
from crm.ui import register_nav

TEAM = (Role.ADVISER,)  # administrators always pass staff_required
ACCESS_LABELS = {
    "view": _l("viewed"),
    "export": _l("exported"),
    "download": _l("downloaded a file"),
    "email": _l("read an email about the case"),
}


def _case(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    if case is None:
        abort(404)
    return case


@bp.route("/")
@staff_required(*TEAM)
def queue():
    filters = QueueFilter.from_args(request.args)
    page = paginate(queue_stmt(filters, user=current_user))
    return render_template(
        "advisory/queue.html",
        page=page,
        filters=filters,
        counts=queue_counts(current_user),
        now=utcnow(),
        statuses=list(CaseStatus),
        themes=list(Theme),
        is_admin=Role.ADMIN in current_user.roles,
    )


def _reassign_form(case: Case, *, current: bool = False) -> ReassignForm:
    """The assignee form: the posted values, or (``current``: to show, or after a refused save) the saved ones.
    A post without ``assigned_was`` (a page from before it) is checked against the case's own assignee."""
    saved = {"assignee_id": case.assignee_id or 0, "assigned_was": case.assignee_id or 0}
    form = (
        ReassignForm(prefix="reassign", formdata=None, data=saved)
        if current
        else ReassignForm(prefix="reassign", data=saved)
    )
    form.assignee_id.choices = [(0, _("Unassigned")), *((u.id, u.full_name) for u in services.advisers())]
    return form


def _status_form(case: Case, *, current: bool = False) -> StatusForm:
    """The status form, ``current`` as for ``_reassign_form``; ``status_was`` the status it was opened at."""
    saved = {"status_was": case.status.value}
    form = (
        StatusForm(prefix="status", formdata=None, data=saved) if current else StatusForm(prefix="status", data=saved)
    )
    # The next steps from the status the form was opened at: a post from an outdated form reaches the service's
    # check and its clear refusal, not "not a valid choice".
    opened = next((s for s in CaseStatus if s.value == form.status_was.data), case.status)
    order = list(CaseStatus)
    form.status.choices = [(s.value, s.label) for s in sorted(services.STAFF_TRANSITIONS[opened], key=order.index)]
    return form


def _render_case(case: Case, **forms):
    services.log_access(case, user=current_user, action="view")
    db.session.commit()
    reply = forms.pop("reply", None) or StaffReplyForm(prefix="reply")
    templates = db.session.scalars(select(ReplyTemplate).order_by(ReplyTemplate.name)).all()
    template_id = id_arg("template")
    if template_id and request.method == "GET":
        template = db.session.get(ReplyTemplate, template_id)
        if template is not None:
            reply.body.data = services.render_reply_template(template, case, actor=current_user)
    messages = db.session.scalars(
        select(CaseMessage)
        .where(CaseMessage.case_id == case.id)
        .options(selectinload(CaseMessage.author), selectinload(CaseMessage.attachments))
        .order_by(CaseMessage.created_at, CaseMessage.id)
    ).all()
    reassign = forms.pop("reassign", None) or _reassign_form(case, current=True)
    return render_template(
        "advisory/staff_case.html",
        case=case,
        messages=messages,
        reply=reply,
        note=forms.pop("note", None) or NoteForm(prefix="note"),
        reassign=reassign,
        status=forms.pop("status", None) or _status_form(case, current=True),
        time=forms.pop("time", None) or TimeEntryForm(prefix="time"),
        upload=forms.pop("upload", None) or UploadForm(prefix="upload"),
        # Filled in here (placeholders are the server's business); app.js inserts the text at the cursor.
        templates=[(t, services.render_reply_template(t, case, actor=current_user)) for t in templates],
        yearly_minutes=services.yearly_minutes(case.organisation_id, today().year),
        access_log=services.access_log(case, limit=10),
        now=utcnow(),
        oecd_steps=OECD_STEPS,
        access_labels=ACCESS_LABELS,
    )


@bp.route("/<int:case_id>")
@staff_required(*TEAM)
def show(case_id: int):
    return _render_case(_case(case_id))


def _done(case: Case, message: str):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("advisory.show", case_id=case.id))


@bp.route("/<int:case_id>/reply", methods=["POST"])
@staff_required(*TEAM)
def reply(case_id: int):
    case = _case(case_id)
    form = StaffReplyForm(prefix="reply")
    if form.validate_on_submit():
        files = uploads(form)
        try:
            check_all(files)
            then = CaseStatus(form.then.data) if form.then.data else None

            def send() -> CaseMessage:
                message = services.add_staff_reply(case, form.body.data, actor=current_user, then=then)
                store_all(case, files, actor=current_user, message=message)
                return message

            create_once(form.submission.data, CaseMessage, send)
        except DomainError as exc:
            field_error(form, exc)
        else:
            return _done(case, _("The reply is sent to the member."))
    return _render_case(case, reply=form), 400


@bp.route("/<int:case_id>/reply/template", methods=["POST"])
@staff_required(*TEAM)
def insert_template(case_id: int):
    """Without JavaScript a template button posts the draft here: the page comes back with the draft and the
    template's text after it, and nothing is sent."""
    case = _case(case_id)
    form = StaffReplyForm(prefix="reply")  # CSRFProtect has checked the token; an empty draft is fine here
    template_id = id_arg("template", args=request.form)
    template = db.session.get(ReplyTemplate, template_id) if template_id else None
    if template is None:
        abort(404)
    draft = (form.body.data or "").rstrip()
    text = services.render_reply_template(template, case, actor=current_user)
    form.body.data = f"{draft}\n\n{text}" if draft else text
    return _render_case(case, reply=form)


@bp.route("/<int:case_id>/note", methods=["POST"])
@staff_required(*TEAM)
def note(case_id: int):
    case = _case(case_id)
    form = NoteForm(prefix="note")
    if form.validate_on_submit():
        files = uploads(form)
        try:
            check_all(files)

            def save() -> CaseMessage:
                note = services.add_internal_note(case, form.body.data, actor=current_user)
                # Files on an internal note stay with the adviser team (the portal leaves them out).
                store_all(case, files, actor=current_user, message=note)
                return note

            create_once(form.submission.data, CaseMessage, save)
        except DomainError as exc:
            field_error(form, exc)
        else:
            return _done(case, _("The internal note is saved."))
    return _render_case(case, note=form), 400


@bp.route("/<int:case_id>/reassign", methods=["POST"])
@staff_required(*TEAM)
def reassign(case_id: int):
    case = _case(case_id)
    form = _reassign_form(case)
    status = 400
    if form.validate_on_submit():
        from crm.auth.models import User

        assignee = db.session.get(User, form.assignee_id.data) if form.assignee_id.data else None
        reassign = partial(
            services.reassign_case,
            case,
            assignee=assignee,
            note=form.note.data,
            actor=current_user,
            # 0 is "opened unassigned"; an empty field is no check (as a page from before the field).
            assigned_was=UNCHECKED if form.assigned_was.data is None else form.assigned_was.data or None,
        )
        try:
            commit_action(reassign)
        except StaleEdit as exc:
            field_error(form, exc)
            form, status = _reassign_form(case, current=True), exc.status_code
        except DomainError as exc:
            field_error(form, exc)
        else:
            return _done(case, _("The case is reassigned."))
    return _render_case(case, reassign=form), status


@bp.route("/<int:case_id>/status", methods=["POST"])
@staff_required(*TEAM)
def change_status(case_id: int):
    case = _case(case_id)
    form = _status_form(case)
    status = 400
    if form.validate_on_submit():
        change = partial(
            services.change_status,
            case,
            CaseStatus(form.status.data),
            actor=current_user,
            status_was=CaseStatus(form.status_was.data) if form.status_was.data else UNCHECKED,
        )
        try:
            commit_action(change)
        except StaleEdit as exc:
            field_error(form, exc)
            form, status = _status_form(case, current=True), exc.status_code
        except DomainError as exc:
            field_error(form, exc)
        else:
            return _done(case, _("The status is changed."))
    return _render_case(case, status=form), status


@bp.route("/<int:case_id>/time", methods=["POST"])
@staff_required(*TEAM)
def log_time(case_id: int):
    case = _case(case_id)
    form = TimeEntryForm(prefix="time")
    if form.validate_on_submit():
        log = partial(
            services.add_time_entry,
            case,
            minutes=form.minutes.data,
            spent_on=form.spent_on.data,
            note=form.note.data,
            actor=current_user,
        )
        try:
            create_once(form.submission.data, CaseTimeEntry, log)
        except DomainError as exc:
            field_error(form, exc)
        else:
            return _done(case, _("The time is logged."))
    return _render_case(case, time=form), 400


@bp.route("/<int:case_id>/files", methods=["POST"])
@staff_required(*TEAM)
def upload(case_id: int):
    case = _case(case_id)
    form = UploadForm(prefix="upload")
    if add_files(case, form, actor=current_user):
        return _done(case, _("The files are added."))
    return _render_case(case, upload=form), 400


@bp.route("/<int:case_id>/files/<int:attachment_id>")
@staff_required(*TEAM)
def attachment(case_id: int, attachment_id: int):
    case = _case(case_id)
    found = case_attachment(case, attachment_id)
    if found is None:
        abort(404)
    services.log_access(case, user=current_user, action="download")
    db.session.commit()
    return download(found)


@bp.route("/<int:case_id>/export")
@staff_required(*TEAM)
def export(case_id: int):
    case = _case(case_id)
    services.log_access(case, user=current_user, action="export")
    db.session.commit()
    text = export_text(case, list(case.messages), include_internal=True)
    return Response(
        text,
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="sak-{case.id}.txt"'},
    )


@bp.route("/dashboard")
@staff_required(*TEAM)
def dashboard():
    this_year = today().year
    # A typed-in year out of range shows this year, not an error.
    year = int_arg("year", low=FIRST_YEAR, high=this_year, default=this_year)
    return render_template(
        "advisory/dashboard.html",
        stats=dashboard_stats(year),
        counts=queue_counts(current_user),
        year=year,
        this_year=this_year,
        oecd_steps=OECD_STEPS,
    )


@bp.route("/portfolio")
@staff_required(*TEAM)
def my_portfolio():
    return render_template("advisory/portfolio.html", rows=portfolio(current_user))


# --- reply templates --------------------------------------------------------------------------------------


@bp.route("/templates")
@staff_required(*TEAM)
def templates():
    items = db.session.scalars(select(ReplyTemplate).order_by(ReplyTemplate.name)).all()
    return render_template("advisory/templates.html", items=items, confirm=ConfirmForm())


@bp.route("/templates/new", methods=["GET", "POST"])
@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@staff_required(*TEAM)
def edit_template(template_id: int | None = None):
    template = db.session.get(ReplyTemplate, template_id) if template_id else None
    if template_id and template is None:
        abort(404)
    form = ReplyTemplateForm(obj=template)
    status = 200
    if form.validate_on_submit():
        save = partial(
            services.save_reply_template,
            template,
            name=form.name.data,
            body=form.body.data,
            actor=current_user,
            version=form.opened_version if template else None,
        )
        try:
            commit_action(lambda: save() if template else create_once(form.submission.data, ReplyTemplate, save))
        except StaleEdit as exc:
            field_error(form, exc)
            form, status = ReplyTemplateForm(formdata=None, obj=template), exc.status_code
        except DomainError as exc:
            field_error(form, exc)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("advisory.templates"))
    return render_template("advisory/template_form.html", form=form, template=template), status


@bp.route("/templates/<int:template_id>/delete", methods=["POST"])
@staff_required(*TEAM)
def delete_template(template_id: int):
    template = db.session.get(ReplyTemplate, template_id)
    if template is None:
        abort(404)
    if ConfirmForm().validate_on_submit():
        services.delete_reply_template(template, actor=current_user)
        db.session.commit()
        flash(_("The template is deleted."), "success")
    return redirect(url_for("advisory.templates"))


# --- absences ---------------------------------------------------------------------------------------------


@bp.route("/absences", methods=["GET", "POST"])
@bp.route("/absences/<int:absence_id>/edit", methods=["GET", "POST"])
@staff_required(*TEAM)
def absences(absence_id: int | None = None):
    from crm.auth.models import User

    absence = db.session.get(AdviserAbsence, absence_id) if absence_id else None
    if absence_id and absence is None:
        abort(404)
    people = services.advisers()
    form = _absence_form(absence, people)
    status = 200
    if form.validate_on_submit():
        values = {
            "adviser": db.session.get(User, form.adviser_id.data),
            "starts_on": form.starts_on.data,
            "ends_on": form.ends_on.data,
            "backup": db.session.get(User, form.backup_id.data) if form.backup_id.data else None,
            "note": form.note.data,
        }
        try:
            if absence is None:
                add = partial(services.add_absence, **values, actor=current_user)
                commit_action(lambda: create_once(form.submission.data, AdviserAbsence, add))
            else:
                commit_action(
                    lambda: services.update_absence(absence, **values, actor=current_user, version=form.opened_version)
                )
        except StaleEdit as exc:
            field_error(form, exc)
            form, status = _absence_form(absence, people, current=True), exc.status_code
        except DomainError as exc:
            field_error(form, exc)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("advisory.absences"))
    items = db.session.scalars(
        select(AdviserAbsence)
        .where(AdviserAbsence.ends_on >= today())
        .options(selectinload(AdviserAbsence.adviser), selectinload(AdviserAbsence.backup))
        .order_by(AdviserAbsence.starts_on)
    ).all()
    return render_template(
        "advisory/absences.html", form=form, items=items, absence=absence, confirm=ConfirmForm()
    ), status


def _absence_form(absence: AdviserAbsence | None, people, *, current: bool = False) -> AbsenceForm:
    """The absence form: the posted values, or (on GET, or ``current`` after a refused save) the saved ones."""
    form = AbsenceForm(formdata=None, obj=absence) if current else AbsenceForm(obj=absence)
    form.adviser_id.choices = [(u.id, u.full_name) for u in people]
    form.backup_id.choices = [(0, _("No backup (unassigned queue)")), *((u.id, u.full_name) for u in people)]
    if absence is not None and (current or request.method == "GET"):
        form.backup_id.data = absence.backup_id or 0
    return form


@bp.route("/absences/<int:absence_id>/delete", methods=["POST"])
@staff_required(*TEAM)
def delete_absence(absence_id: int):
    absence = db.session.get(AdviserAbsence, absence_id)
    if absence is None:
        abort(404)
    if ConfirmForm().validate_on_submit():
        services.delete_absence(absence, actor=current_user)
        db.session.commit()
        flash(_("The absence is deleted."), "success")
    return redirect(url_for("advisory.absences"))


# --- service targets -------------------------------------------------------------------------------------


@bp.route("/targets")
@staff_required(Role.ADMIN)
def targets():
    from crm.members.models import MembershipCategory

    categories = db.session.scalars(select(MembershipCategory).order_by(MembershipCategory.sort_order)).all()
    rows = {(t.category_id, t.urgency): t for t in db.session.scalars(select(ServiceTarget))}
    return render_template(
        "advisory/targets.html",
        categories=categories,
        urgencies=list(Urgency),
        rows=rows,
        defaults=services.DEFAULT_TARGETS,
    )


@bp.route("/targets/<int:category_id>/<urgency>", methods=["POST"])
@staff_required(Role.ADMIN)
def save_target(category_id: int, urgency: str):
    from crm.members.models import MembershipCategory

    if db.session.get(MembershipCategory, category_id) is None or urgency not in {u.value for u in Urgency}:
        abort(404)
    form = TargetForm()
    if not form.validate_on_submit():
        flash(_("Give whole hours: first response at least 1, resolution at least as long."), "danger")
        return redirect(url_for("advisory.targets"))
    # A refused save (an outdated row included) is flashed; the page shows the current targets.
    saved = attempt(
        lambda: services.set_service_target(
            category_id,
            Urgency(urgency),
            first_hours=form.first_hours.data,
            resolution_hours=form.resolution_hours.data,
            actor=current_user,
            version=form.opened_version,
        )
    )
    if saved.ok:
        flash(_("Saved."), "success")
    return redirect(url_for("advisory.targets"))


register_nav(_l("Advisory cases"), "advisory.queue", audience="staff", roles=TEAM, order=30)
# The adviser team reads the emails about cases in the outbox too, and each reading is in the case's access log.
register_body_readers(Case.__tablename__, roles=set(TEAM), on_read=services.log_case_email_read)
_CASE_STATUS_LABELS = {status.value: status.label for status in CaseStatus}
register_audit_details(
    actions={
        "advisory.case.opened": _l("Case opened"),
        "advisory.case.status_changed": _l("Case status changed"),
        "advisory.case.reassigned": _l("Case reassigned"),
        "advisory.case.replied": _l("Reply sent to the member"),
        "advisory.case.noted": _l("Internal note added"),
        "advisory.case.time_logged": _l("Time logged"),
        "advisory.template.saved": _l("Reply template saved"),
        "advisory.template.deleted": _l("Reply template deleted"),
        "advisory.target.changed": _l("Service target changed"),
        "advisory.absence.added": _l("Absence added"),
        "advisory.absence.changed": _l("Absence changed"),
        "advisory.absence.deleted": _l("Absence deleted"),
    },
    targets={
        "cases": _l("Case"),
        "reply_templates": _l("Reply template"),
        "service_targets": _l("Service target"),
        "adviser_absences": _l("Absence"),
    },
    namers={
        "cases": names_from(Case.id, Case.subject, fmt=lambda case_id, subject: f"#{case_id} {subject}"),
        "reply_templates": names_from(ReplyTemplate.id, ReplyTemplate.name),
    },
    labels={
        "urgency": _l("Urgency"),
        "first": _l("First response (business hours)"),
        "resolution": _l("Resolution (business hours)"),
        "starts_on": _l("From"),
        "minutes": _l("Minutes"),
    },
    values={
        "advisory.case.status_changed:from": _CASE_STATUS_LABELS,
        "advisory.case.status_changed:to": _CASE_STATUS_LABELS,
        "urgency": {urgency.value: urgency.label for urgency in Urgency},
    },
    hidden=(
        *("adviser", "organisation", "assignee", "message"),
        # user ids mean nothing to a reader; the entry's label says the case changed hands
        *("advisory.case.reassigned:from", "advisory.case.reassigned:to"),
    ),
)


def _organisation_cases_panel(organisation) -> str:
    from crm.advisory.queue import organisation_cases

    allowed = current_user.has_role(Role.ADVISER, Role.ADMIN)
    return render_template(
        "advisory/_organisation_cases.html",
        allowed=allowed,
        cases=organisation_cases(organisation.id) if allowed else [],
        yearly_minutes=services.yearly_minutes(organisation.id, today().year) if allowed else 0,
    )


register_panel("cases", _l("Cases"), _organisation_cases_panel, order=60)
