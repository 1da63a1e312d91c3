"""Periodic jobs: remind assignees before a case's deadline, once per case, deadline kind and due time;
sweep attachment files left without a row (a crash between writing the file and the commit)."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from crm.advisory import notifications
from crm.advisory.models import OPEN_STATUSES, Case, CaseAttachment, CaseReminder
from crm.extensions import db
from crm.jobs import periodic
from crm.models import utcnow
from crm.storage import storage

logger = logging.getLogger(__name__)

REMIND_BEFORE = timedelta(hours=2)


def send_deadline_reminders(now: datetime | None = None) -> int:
    """Queue a reminder for each assigned open case whose current deadline falls within
    ``REMIND_BEFORE`` (or has just passed unnoticed). Returns how many were queued. Safe to run twice:
    a reminder row per case, kind and due time is written with the email."""
    now = now or utcnow()
    horizon = now + REMIND_BEFORE
    cases = db.session.scalars(
        select(Case)
        .where(
            Case.status.in_(OPEN_STATUSES),
            Case.assignee_id.is_not(None),
            Case.paused_at.is_(None),
            or_(Case.first_response_due_at <= horizon, Case.resolution_due_at <= horizon),
        )
        .options(selectinload(Case.assignee), selectinload(Case.organisation))
    ).all()
    due = []
    for case in cases:
        kind = "first_response" if case.first_responded_at is None else "resolution"
        at = case.next_due_at
        if at is not None and at <= horizon:
            due.append((case, kind, at))
    if not due:
        return 0
    sent = {
        (row.case_id, row.kind, row.due_at)
        for row in db.session.scalars(select(CaseReminder).where(CaseReminder.case_id.in_([c.id for c, _k, _a in due])))
    }
    queued = 0
    for case, kind, at in due:
        if (case.id, kind, at) in sent:
            continue
        db.session.add(CaseReminder(case_id=case.id, kind=kind, due_at=at, sent_at=now))
        notifications.deadline_reminder(case, kind, at)
        queued += 1
    db.session.flush()
    logger.info("advisory reminders queued=%s", queued)
    return queued


@periodic(timedelta(minutes=10), name="advisory.deadline_reminders")
def deadline_reminders_job() -> None:
    send_deadline_reminders()
    db.session.commit()


ORPHAN_AGE = timedelta(hours=1)
STORED_NAME = re.compile(r"[0-9a-f]{32}")


def sweep_orphan_files(now: datetime | None = None) -> int:
    """Delete stored files that no attachment row names and that are older than ``ORPHAN_AGE`` (younger
    ones may belong to an upload whose transaction is still open). Only keys shaped like our generated
    names are touched. Returns how many were deleted."""
    now = now or utcnow()
    cutoff = now - ORPHAN_AGE
    store = storage()
    candidates = [key for key, written_at in store.list_keys() if STORED_NAME.fullmatch(key) and written_at < cutoff]
    if not candidates:
        return 0
    known: set[str] = set()
    for start in range(0, len(candidates), 500):  # bounded IN lists
        batch = candidates[start : start + 500]
        known.update(
            db.session.scalars(select(CaseAttachment.stored_name).where(CaseAttachment.stored_name.in_(batch)))
        )
    removed = 0
    for key in candidates:
        if key not in known:
            store.delete(key)
            removed += 1
            logger.warning("advisory orphan file removed name=%s", key)
    logger.info("advisory orphan sweep removed=%s", removed)
    return removed


@periodic(timedelta(hours=1), name="advisory.sweep_orphan_files")
def sweep_orphan_files_job() -> None:
    sweep_orphan_files()
