"""The audit log is append-only: entries are added, never changed or deleted through the application."""

import pytest
from sqlalchemy import delete, select, update

from crm.audit.models import AuditEntry, AuditLogIsAppendOnly
from crm.audit.services import record_audit
from crm.extensions import db
from tests.factories import make_user


def test_record_audit_appends_an_entry_with_actor_target_and_details():
    actor = make_user(email="revisor@example.no")
    target = make_user()
    entry = record_audit("auth.user.disabled", actor=actor, target=target, details={"reason": "sluttet"})
    stored = db.session.scalars(select(AuditEntry).where(AuditEntry.id == entry.id)).one()
    assert (stored.actor_id, stored.actor_label) == (actor.id, "revisor@example.no")
    assert (stored.target_type, stored.target_id) == ("users", str(target.id))
    assert stored.details == {"reason": "sluttet"} and stored.at is not None


def test_an_entry_cannot_be_changed():
    entry = record_audit("auth.login.succeeded", actor=make_user())
    entry.action = "auth.login.failed"
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()


def test_an_entry_cannot_be_deleted():
    entry = record_audit("auth.login.succeeded", actor=make_user())
    db.session.delete(entry)
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        lambda: update(AuditEntry).values(action="auth.login.failed"),
        lambda: delete(AuditEntry),
        lambda: delete(AuditEntry).where(AuditEntry.action == "auth.login.succeeded"),
    ],
)
def test_bulk_updates_and_deletes_are_refused_and_change_nothing(statement):
    entry = record_audit("auth.login.succeeded", actor=make_user())
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.execute(statement())
    db.session.expire_all()
    assert db.session.get(AuditEntry, entry.id).action == "auth.login.succeeded"
