from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth.models import STAFF_ROLES, Role, User
from crm.auth.passwords import password_problem, verify_password
from crm.auth.services import find_user_by_email
from crm.demo import DEMO_LOGINS, format_logins, load_demo
from crm.extensions import db


def _counts() -> tuple[int, int]:
    return db.session.scalar(select(func.count(User.id))), db.session.scalar(select(func.count(AuditEntry.id)))


def test_every_demo_password_passes_the_policy():
    for login in DEMO_LOGINS:
        assert password_problem(login.password, email=login.email) is None, login.email
        assert login.password.isascii()  # typeable on any keyboard


def test_the_demo_covers_every_role_a_multi_role_user_and_members():
    roles = [set(login.roles) for login in DEMO_LOGINS]
    assert set().union(*roles) == set(Role)
    assert sum(1 for r in roles if r == {Role.ADVISER}) >= 3
    assert any(len(r & STAFF_ROLES) > 1 for r in roles)
    assert sum(1 for r in roles if r == {Role.MEMBER}) >= 2
    emails = [login.email for login in DEMO_LOGINS]
    assert len(set(emails)) == len(emails)
    assert all(email.endswith((".example", "@example.no")) for email in emails)


def test_loading_the_demo_twice_changes_nothing_and_the_accounts_work(app):
    result = load_demo()
    assert len(result.created) == len(DEMO_LOGINS)
    db.session.commit()
    before = _counts()
    hashes = {u.email: u.password_hash for u in db.session.scalars(select(User))}
    again = load_demo()
    db.session.commit()
    assert again.created == []
    assert len(again.existing) == len(DEMO_LOGINS)
    assert _counts() == before
    assert {u.email: u.password_hash for u in db.session.scalars(select(User))} == hashes

    # The accounts work: roles as listed and the printed password.
    login = next(lg for lg in DEMO_LOGINS if len(lg.roles) > 1)
    user = find_user_by_email(login.email)
    assert user.roles == frozenset(login.roles)
    assert verify_password(user.password_hash, login.password)


def test_the_cli_loads_idempotently_and_prints_the_logins(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["crm", "demo"])
    assert first.exit_code == 0, first.output
    assert f"{len(DEMO_LOGINS)} accounts created" in first.output
    before = _counts()
    second = runner.invoke(args=["crm", "demo"])
    assert second.exit_code == 0, second.output
    assert "0 accounts created" in second.output
    assert _counts() == before
    for login in DEMO_LOGINS:
        assert login.email in second.output and login.password in second.output


def test_print_logins_only_prints(app):
    before = _counts()
    result = app.test_cli_runner().invoke(args=["crm", "demo", "--print-logins"])
    assert result.exit_code == 0
    assert result.output.strip() == format_logins()
    assert _counts() == before
    lines = result.output.splitlines()
    assert lines[0].split() == ["Email", "Password", "Roles"]
    assert "ingrid.solberg@etiskhandel.example" in result.output


def test_the_demo_refuses_production(app, monkeypatch):
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    before = _counts()
    result = app.test_cli_runner().invoke(args=["crm", "demo"])
    assert result.exit_code != 0
    assert "production" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _counts() == before
