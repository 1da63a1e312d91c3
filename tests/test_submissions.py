"""The housekeeping of create forms' one-time tokens: old ones are deleted by a periodic job, young ones kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from crm.extensions import db
from crm.jobs import PERIODIC_JOBS
from crm.models import utcnow
from crm.submissions import SUBMISSION_KEEP, FormSubmission, delete_old_submissions, delete_old_submissions_job


def test_submissions_older_than_two_days_are_deleted_and_younger_ones_kept():
    now = utcnow()
    for token, age in (("old", SUBMISSION_KEEP + timedelta(minutes=1)), ("young", timedelta(hours=1))):
        db.session.add(FormSubmission(token=token, record_type="contacts", record_id=1, created_at=now - age))
    db.session.commit()

    assert delete_old_submissions(now=now) == 1
    assert db.session.scalars(select(FormSubmission.token)).all() == ["young"]
    assert timedelta(days=2) == SUBMISSION_KEEP


def test_the_worker_runs_the_deletion_periodically():
    job = PERIODIC_JOBS["kernel.delete_old_form_submissions"]
    assert job.func is delete_old_submissions_job and job.every <= timedelta(days=1)
    db.session.add(FormSubmission(token="old", record_type="contacts", created_at=utcnow() - timedelta(days=3)))
    db.session.commit()
    delete_old_submissions_job()
    assert db.session.scalars(select(FormSubmission)).all() == []
