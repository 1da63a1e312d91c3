"""Staff import of organisations and contacts: upload, dry run report, confirmation."""

from __future__ import annotations

from functools import partial

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm.auth.access import staff_required
from crm.errors import attempt
from crm.extensions import db
from crm.members.forms import ConfirmImportForm, ImportForm
from crm.members.imports import COLUMNS, KIND_WORDS, ROLE_WORDS, confirm_import, get_progress, start_import
from crm.members.models import ImportBatch
from crm.members.views.blueprints import bp
from crm.members.views.common import save_form
from crm.members.views.staff import EDITORS
from crm.submissions import create_once


@bp.route("/import", methods=["GET", "POST"])
@staff_required(*EDITORS)
def import_upload():
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        start = partial(start_import, upload.filename or "import.csv", upload.read(), actor=current_user)
        saved = save_form(form, lambda: create_once(form.submission.data, ImportBatch, start))
        if saved.ok:
            return redirect(url_for("members.import_status", batch_id=saved.result.id))
    return render_template(
        "members/import_upload.html",
        form=form,
        columns=COLUMNS,
        # The words the kind and roles cells accept, so the file can be written right the first time.
        accepted={"kind": list(KIND_WORDS), "contact_roles": list(ROLE_WORDS)},
    )


@bp.route("/import/<int:batch_id>")
@staff_required(*EDITORS)
def import_status(batch_id: int):
    batch = db.get_or_404(ImportBatch, batch_id)
    done, total = get_progress(batch)
    return render_template(
        "members/import_status.html", batch=batch, done=done, total=total, confirm_form=ConfirmImportForm()
    )


@bp.route("/import/<int:batch_id>/progress")
@staff_required(*EDITORS)
def import_progress(batch_id: int):
    batch = db.get_or_404(ImportBatch, batch_id)
    done, total = get_progress(batch)
    response = make_response(render_template("members/_import_progress.html", batch=batch, done=done, total=total))
    if not batch.in_progress and request.headers.get("HX-Request"):
        response.headers["HX-Refresh"] = "true"  # finished: htmx reloads the page to show the result
    return response


@bp.route("/import/<int:batch_id>/confirm", methods=["POST"])
@staff_required(*EDITORS)
def import_confirm(batch_id: int):
    batch = db.get_or_404(ImportBatch, batch_id)
    form = ConfirmImportForm()
    if form.validate_on_submit() and attempt(lambda: confirm_import(batch, actor=current_user)).ok:
        flash(_("The import has started."), "success")
    return redirect(url_for("members.import_status", batch_id=batch.id))
