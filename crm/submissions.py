"""Create forms that are safe to send twice: a double click, a browser retry, two tabs sending one form.

Every create form carries a one-time token (``OnceForm``); ``create_once`` records it under a unique constraint
with the record its first submission created, so a second submission with the same token finds that record
instead of creating another one (or tripping over a unique constraint: a 500).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from flask_babel import gettext as _
from sqlalchemy import String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from crm.errors import Conflict
from crm.extensions import db
from crm.jobs import periodic
from crm.models import UTCDateTime, utcnow

logger = logging.getLogger(__name__)

Record = TypeVar("Record")

# How long a sent form's token is kept. A form is sent again within seconds (a double click, a browser retry, a
# second tab), and a signed-in page's CSRF token lives no longer than the session (12 hours by default).
SUBMISSION_KEEP = timedelta(days=2)


class FormSubmission(db.Model):
    """One sent create form: its token and the record it created (``record_type`` is the table name)."""

    __tablename__ = "form_submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


def new_submission_token() -> str:
    return secrets.token_urlsafe(24)


class AlreadySubmitted(Conflict):
    """The form was sent before, and what it created is gone (deleted since) or of another kind."""


def create_once(token: str | None, model: type[Record], create: Callable[[], Record]) -> Record:
    """Run ``create`` (a service call returning the new ``model`` row) once per ``token``: a second call with the
    same token returns the row the first one created, also when both arrive at once (the second waits for the
    first's commit at the unique token, then reads its row). ``None`` (no form: an import, a test) always creates.

    Raises what ``create`` raises (the token is then not kept, so the form can be sent again after a fix), and
    ``AlreadySubmitted`` when the first submission's record no longer exists.
    """
    if not token:
        return create()
    existing = _submitted(token, model)
    if existing is not None:
        return existing
    submission = FormSubmission(token=token, record_type=model.__tablename__)
    try:
        with db.session.begin_nested():
            db.session.add(submission)
    except IntegrityError:
        # A concurrent submission of the same form holds the token; it has committed by now.
        existing = _submitted(token, model)
        if existing is None:
            raise AlreadySubmitted(_("This form was already sent.")) from None
        return existing
    record = create()
    db.session.flush()
    submission.record_id = record.id  # type: ignore[attr-defined]
    db.session.flush()
    return record


def _submitted(token: str, model: type[Record]) -> Record | None:
    submission = db.session.scalar(select(FormSubmission).where(FormSubmission.token == token))
    if submission is None:
        return None
    record = db.session.get(model, submission.record_id) if submission.record_id is not None else None
    if record is None or submission.record_type != model.__tablename__:  # type: ignore[attr-defined]
        raise AlreadySubmitted(_("This form was already sent."))
    return record


def delete_old_submissions(now: datetime | None = None) -> int:
    """Delete the tokens of forms sent more than ``SUBMISSION_KEEP`` ago (the records they made stay); return
    how many were deleted."""
    cutoff = (now or utcnow()) - SUBMISSION_KEEP
    deleted = db.session.execute(delete(FormSubmission).where(FormSubmission.created_at < cutoff)).rowcount
    logger.info("deleted %s form submissions sent before %s", deleted, cutoff.isoformat())
    return deleted


@periodic(timedelta(hours=6), name="kernel.delete_old_form_submissions")
def delete_old_submissions_job() -> None:
    delete_old_submissions()
    db.session.commit()
