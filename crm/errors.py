"""Domain errors and their HTTP mapping. Users never see a stack trace."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule of the domain refused the operation; the message is safe to show to the user."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403


class Conflict(DomainError):
    status_code = 409


class ServiceUnavailable(DomainError):
    """A part the operation needs (Redis, for background jobs) does not answer; nothing was changed."""

    status_code = 503


class StaleEdit(Conflict):
    """The record was saved by someone else after the form was opened; nothing of this save was kept."""

    def __init__(self) -> None:
        from flask_babel import gettext

        super().__init__(
            gettext(
                "Someone else saved this after you opened the form, so your changes were not saved. "
                "The form now shows the current values: make your changes again."
            )
        )


def check_version(record: Any, version: int | None) -> None:
    """Refuse (``StaleEdit``) a save from a form opened at ``version`` of ``record`` (a ``VersionedMixin`` row)
    when the row has been saved since. ``None`` means the caller is no form (an import, a job): no check.

    The row also changes its version when only its relationships change (sectors, roles), so that such a save
    too makes older forms stale."""
    if version is None:
        return
    if version != record.version:
        raise StaleEdit()
    if hasattr(record, "updated_at"):
        from crm.models import utcnow

        record.updated_at = utcnow()


class Unchecked(enum.Enum):
    """``UNCHECKED``: no form asks for a ``check_unchanged`` (an import, a job, a rule). ``None`` cannot say
    that: it is a value the check compares (an unassigned case)."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED


def check_unchanged(record: Any, attribute: str, opened: Any) -> None:
    """Refuse (``StaleEdit``) a save from a form opened when ``record.<attribute>`` was ``opened`` (a case's
    assignee, a status) now that it is something else: the check for a change to one value of a row that has no
    version, or whose version also counts saves that do not touch that value. ``UNCHECKED`` means no check.

    The value is read again under a row lock (PostgreSQL; SQLite lets one writer in at a time anyway): of two
    saves from forms opened at the same value, the second waits for the first's commit and is refused."""
    if opened is UNCHECKED:
        return
    from crm.extensions import db

    db.session.refresh(record, with_for_update=True)
    if getattr(record, attribute) != opened:
        raise StaleEdit()


def commit_action(action: Callable[[], Any]) -> Any:
    """Run ``action`` and commit. A concurrent save of a versioned row that won the race between this request's
    read and its write (SQLAlchemy's ``StaleDataError``) is the same refusal as an outdated form: ``StaleEdit``."""
    from sqlalchemy.orm.exc import StaleDataError

    from crm.extensions import db

    try:
        result = action()
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise StaleEdit() from None
    return result


ERROR_TITLES = {
    400: _l("Bad request"),
    403: _l("Access denied"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
    409: _l("Conflict"),
    413: _l("The upload is too large"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
    503: _l("Service unavailable"),
}


def field_error(form, exc: DomainError, *, default: str | None = None) -> None:
    """Show a refused operation's message next to its field, after undoing its flushes: the field the error
    names, else the form's ``default`` field (the service's ``password`` is a form's ``new_password``), else
    a flash."""
    from flask import flash

    from crm.extensions import db

    db.session.rollback()
    field = getattr(form, exc.field, None) if exc.field else None
    if field is None and default:
        field = getattr(form, default)
    if field is not None:
        field.errors = [*field.errors, exc.message] if isinstance(field.errors, list) else [exc.message]
    else:
        flash(exc.message, "danger")


@dataclass(frozen=True)
class Outcome:
    """What a view's service call came to: ``ok`` with the service's ``result``, or refused (rolled back);
    ``duplicate`` is the existing record a duplicate refusal names (members' forms link to it); ``stale`` says the
    record was saved by someone else since the form was opened (the view shows the form again with the current
    values, status 409)."""

    ok: bool
    result: Any = None
    duplicate: Any = None
    stale: bool = False

    @property
    def status(self) -> int:
        return StaleEdit.status_code if self.stale else 200


def attempt(action: Callable[[], Any]) -> Outcome:
    """Run ``action`` (one service call for a button or a form without field errors) and commit it.

    A ``DomainError`` is undone and flashed; ``PermissionDenied`` (403) and ``ServiceUnavailable`` (503) propagate
    to the error page.
    """
    from flask import flash

    from crm.extensions import db

    try:
        result = commit_action(action)
    except (PermissionDenied, ServiceUnavailable):
        raise
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
        return Outcome(ok=False, stale=isinstance(exc, StaleEdit))
    return Outcome(ok=True, result=result)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _render(status: int, description: str | None = None):
    from crm.extensions import db

    db.session.rollback()
    title = ERROR_TITLES.get(status, ERROR_TITLES[500])
    if _wants_json():
        return jsonify(error=str(title), description=description), status
    return render_template("errors/error.html", status=status, title=title, description=description), status


def _render_too_large():
    """413: the body is over ``MAX_CONTENT_LENGTH`` (refused from its Content-Length, before it is read), so
    nothing was saved; the page says what fits."""
    from crm.extensions import db

    db.session.rollback()
    config = current_app.config
    limits = {
        "request_mb": config["MAX_CONTENT_LENGTH"] // (1024 * 1024),
        "files": config["ATTACHMENT_MAX_FILES"],
        "file_mb": config["ATTACHMENT_MAX_BYTES"] // (1024 * 1024),
    }
    # Werkzeug also answers 413 for a form text field over MAX_FORM_MEMORY_SIZE, in a body within the cap.
    whole_body = (request.content_length or 0) > config["MAX_CONTENT_LENGTH"]
    title = ERROR_TITLES[413]
    if _wants_json():
        description = _("The request is larger than %(request_mb)s MB and was not saved.", **limits)
        return jsonify(error=str(title), description=description), 413
    return render_template("errors/413.html", status=413, title=title, whole_body=whole_body, **limits), 413


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def handle_too_large(exc: RequestEntityTooLarge):
        return _render_too_large()

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        description = exc.description if exc.code in (400, 429) else None
        return _render(exc.code or 500, description)

    @app.errorhandler(DomainError)
    def handle_domain(exc: DomainError):
        return _render(exc.status_code, exc.message)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if app.testing and app.config.get("PROPAGATE_EXCEPTIONS"):
            raise exc
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return _render(500)
