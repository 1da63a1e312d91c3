"""Blueprints and helpers shared by the staff and portal pages."""

from __future__ import annotations

from flask import Blueprint, abort, send_file
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from crm.advisory.attachments import check_uploads, open_attachment, store_attachment
from crm.advisory.models import Case, CaseAttachment, CaseMessage
from crm.auth.models import User
from crm.errors import DomainError, field_error
from crm.extensions import db
from crm.storage import StoredFileMissing
from crm.submissions import create_once

bp = Blueprint("advisory", __name__, url_prefix="/staff/advisory")
portal_bp = Blueprint("advisory_portal", __name__, url_prefix="/portal/advisory")

# Served files must never run in our origin: a download, no sniffing, and a sandbox if opened anyway.
DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def uploads(form) -> list[FileStorage]:
    return [f for f in (form.files.data or []) if isinstance(f, FileStorage) and f.filename]


def check_all(files: list[FileStorage]) -> None:
    check_uploads(files)


def store_all(
    case: Case, files: list[FileStorage], *, actor: User, message: CaseMessage | None = None
) -> list[CaseAttachment]:
    return [
        store_attachment(case, filename=upload.filename, stream=upload.stream, actor=actor, message=message)
        for upload in files
    ]


def add_files(case: Case, form, *, actor: User) -> bool:
    """The upload form's files checked and stored on the case (not committed); False with the form's errors set
    when the form is invalid, no file was chosen, or a file is refused. The same form sent again (a double click,
    a browser retry) stores nothing more: its one-time token finds the first sending's files."""
    files = uploads(form)
    if not files:
        form.validate_on_submit()
        form.files.errors = [*form.files.errors, _("Choose one or more files.")]
        return False
    if not form.validate_on_submit():
        return False
    try:
        check_all(files)
        create_once(form.submission.data, CaseAttachment, lambda: store_all(case, files, actor=actor)[0])
    except DomainError as exc:
        field_error(form, exc)
        return False
    return True


def download(attachment: CaseAttachment):
    """The file streamed from storage in chunks (never read whole into memory), always as a download."""
    try:
        stored = open_attachment(attachment)
    except StoredFileMissing:
        abort(404)
    response = send_file(
        stored,
        mimetype=attachment.content_type,
        as_attachment=True,
        download_name=attachment.original_name,
        max_age=0,
        etag=False,
        conditional=False,
    )
    response.content_length = attachment.size
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def case_attachment(case: Case, attachment_id: int) -> CaseAttachment | None:
    attachment = db.session.get(CaseAttachment, attachment_id)
    if attachment is None or attachment.case_id != case.id:
        return None
    return attachment


def export_text(case: Case, messages: list[CaseMessage], *, include_internal: bool) -> str:
    """A plain-text copy of the case; member exports get ``include_internal=False``."""
    from flask_babel import gettext as _

    from crm.i18n import format_datetime_no

    lines = [
        f"[Sak #{case.id}] {case.subject}",
        f"{_('Organisation')}: {case.organisation.name}",
        f"{_('Status')}: {case.status.label}",
        f"{_('Opened')}: {format_datetime_no(case.opened_at)}",
        "",
        case.description,
        "",
    ]
    for message in messages:
        if message.is_internal and not include_internal:
            continue
        who = message.author.full_name if message.author else ""
        label = _("Internal note") if message.is_internal else ""
        lines += [f"--- {format_datetime_no(message.created_at)} {who} {label}".rstrip(), message.body, ""]
    return "\n".join(lines)
