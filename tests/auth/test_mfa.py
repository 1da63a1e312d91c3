"""Staff two-factor login: services directly, then the login flow through the views."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth import mfa
from crm.auth.models import Role
from crm.errors import DomainError
from crm.extensions import db
from tests.factories import make_staff, make_user
from tests.helpers import DEFAULT_PASSWORD, csrf_token, login, totp_code


def _actions(user=None) -> list[str]:
    stmt = select(AuditEntry.action).order_by(AuditEntry.id)
    if user is not None:
        stmt = stmt.where(AuditEntry.target_type == "users", AuditEntry.target_id == str(user.id))
    return list(db.session.scalars(stmt))


def _enrolled_staff(*roles: Role, **overrides):
    user = make_staff(*roles, **overrides)
    mfa.begin_enrolment(user)
    user.totp_confirmed_at = user.created_at
    db.session.flush()
    return user


def _code(user, now: float, offset: int = 0) -> str:
    return pyotp.TOTP(user.totp_secret).generate_otp(int(now) // 30 + offset)


# --- services ---------------------------------------------------------------------------------


def test_begin_enrolment_keeps_the_unconfirmed_secret():
    user = make_staff()
    secret = mfa.begin_enrolment(user)
    assert len(secret) == 32
    assert mfa.begin_enrolment(user) == secret
    assert not mfa.is_enrolled(user)


def test_confirm_enrolment_needs_a_valid_code():
    user = make_staff()
    mfa.begin_enrolment(user)
    now = time.time()
    assert mfa.confirm_enrolment(user, "000000" if _code(user, now) != "000000" else "111111", now=now) is False
    assert not mfa.is_enrolled(user)
    assert mfa.confirm_enrolment(user, _code(user, now), now=now) is True
    assert mfa.is_enrolled(user)
    assert _actions(user)[-2:] == ["auth.mfa.failed", "auth.mfa.enrolled"]


def test_a_code_is_accepted_once():
    user = _enrolled_staff()
    now = time.time()
    code = _code(user, now)
    assert mfa.verify_code(user, code, now=now) is True
    assert mfa.verify_code(user, code, now=now) is False
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.mfa.failed")).one()
    assert entry.details == {"reason": "reused"}


def test_an_older_code_is_refused_after_a_newer_one():
    user = _enrolled_staff()
    now = time.time()
    assert mfa.verify_code(user, _code(user, now), now=now) is True
    assert mfa.verify_code(user, _code(user, now, -1), now=now) is False


def test_neighbouring_time_steps_are_accepted_but_not_further():
    user = _enrolled_staff()
    now = time.time()
    assert mfa.verify_code(user, _code(user, now, 2), now=now) is False
    assert mfa.verify_code(user, _code(user, now, -1), now=now) is True
    assert mfa.verify_code(user, _code(user, now, 1), now=now) is True


@pytest.mark.parametrize("code", ["", "12345", "abcdef", "1234567"])
def test_malformed_codes_are_refused(code):
    user = _enrolled_staff()
    assert mfa.verify_code(user, code) is False


def test_qr_code_is_inline_svg_without_styles():
    user = make_staff(email="qr@example.no")
    mfa.begin_enrolment(user)
    svg = str(mfa.qr_code_svg(user))
    assert svg.startswith("<svg")
    assert "style" not in svg
    assert "<script" not in svg
    assert "qr%40example.no" in mfa.provisioning_uri(user) or "qr@example.no" in mfa.provisioning_uri(user)


def test_reset_mfa_forgets_the_secret_and_ends_sessions():
    admin = make_staff(Role.ADMIN)
    user = _enrolled_staff()
    version = user.session_version
    mfa.reset_mfa(user, actor=admin)
    assert (user.totp_secret, user.totp_confirmed_at, user.totp_last_counter) == (None, None, None)
    assert user.session_version == version + 1
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.user.mfa_reset")).one()
    assert entry.actor_id == admin.id


def test_members_do_not_need_mfa_and_staff_do(app, monkeypatch):
    assert mfa.mfa_required(make_staff(Role.FINANCE))
    assert not mfa.mfa_required(make_user(roles={Role.MEMBER}))
    monkeypatch.setitem(app.config, "CRM_REQUIRE_STAFF_MFA", False)
    assert not mfa.mfa_required(make_staff(Role.ADMIN))


def test_only_development_may_turn_mfa_off():
    import os
    import subprocess
    import sys

    code = (
        "from crm.config import DevelopmentConfig as D, ProductionConfig as P, TestingConfig as T;"
        "print(D.CRM_REQUIRE_STAFF_MFA, P.CRM_REQUIRE_STAFF_MFA, T.CRM_REQUIRE_STAFF_MFA)"
    )
    env = os.environ | {"CRM_REQUIRE_STAFF_MFA": "false"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "True"]


# --- views ------------------------------------------------------------------------------------


def _post_password(client, user, password=DEFAULT_PASSWORD):
    return client.post(
        "/auth/login", data={"email": user.email, "password": password, "csrf_token": csrf_token(client)}
    )


def _logged_in(client) -> bool:
    with client.session_transaction() as sess:
        return bool(sess.get("_user_id"))


@pytest.mark.parametrize("role", [Role.ADMIN, Role.ADVISER, Role.COORDINATOR, Role.FINANCE])
def test_staff_are_not_logged_in_after_the_password_alone(client, role):
    user = make_staff(role)
    response = _post_password(client, user)
    assert response.headers["Location"] == "/auth/mfa/enrol"
    assert not _logged_in(client)
    assert client.get("/staff/").status_code == 302


def test_enrolled_staff_go_to_the_code_page(client):
    user = _enrolled_staff()
    response = _post_password(client, user)
    assert response.headers["Location"] == "/auth/mfa"
    page = client.get("/auth/mfa")
    assert "Tofaktorinnlogging" in page.text


def test_enrolment_page_shows_qr_and_secret_and_confirms(client):
    user = make_staff()
    _post_password(client, user)
    page = client.get("/auth/mfa/enrol")
    assert page.status_code == 200
    assert "<svg" in page.text
    db.session.refresh(user)
    assert user.totp_secret in page.text
    response = client.post("/auth/mfa/enrol", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"
    assert _logged_in(client)
    assert mfa.is_enrolled(user)
    assert _actions(user)[-2:] == ["auth.mfa.enrolled", "auth.login.succeeded"]
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login.succeeded")).one().details == {
        "method": "password+totp-enrolment"
    }


def test_wrong_code_is_refused_and_audit_logged(client):
    user = _enrolled_staff()
    _post_password(client, user)
    wrong = "000000" if totp_code(user) != "000000" else "111111"
    response = client.post("/auth/mfa", data={"code": wrong, "csrf_token": csrf_token(client)})
    assert response.status_code == 200
    assert "Koden er feil eller allerede brukt" in response.text
    assert not _logged_in(client)
    assert _actions(user)[-1] == "auth.mfa.failed"


def test_a_used_code_cannot_log_in_again(client, app):
    user = _enrolled_staff()
    _post_password(client, user)
    db.session.refresh(user)
    code = totp_code(user)
    assert client.post("/auth/mfa", data={"code": code, "csrf_token": csrf_token(client)}).status_code == 302
    with app.test_client() as other:
        _post_password(other, user)
        response = other.post("/auth/mfa", data={"code": code, "csrf_token": csrf_token(other)})
        assert response.status_code == 200
        assert not _logged_in(other)


def test_wrong_codes_are_throttled(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "MFA_LIMIT_PER_ACCOUNT", "2 per minute")
    user = _enrolled_staff()
    _post_password(client, user)
    wrong = "000000" if totp_code(user) != "000000" else "111111"
    for _ in range(2):
        assert client.post("/auth/mfa", data={"code": wrong, "csrf_token": csrf_token(client)}).status_code == 200
    response = client.post("/auth/mfa", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert "For mange forsøk" in response.text
    assert not _logged_in(client)


def test_pending_login_expires(client, app, monkeypatch):
    user = _enrolled_staff()
    _post_password(client, user)
    monkeypatch.setitem(app.config, "MFA_PENDING_SECONDS", -1)
    response = client.get("/auth/mfa")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"


def test_code_page_without_password_step_goes_to_login(client):
    assert client.get("/auth/mfa").headers["Location"] == "/auth/login"
    assert client.get("/auth/mfa/enrol").headers["Location"] == "/auth/login"


def test_members_log_in_without_a_second_factor(client):
    member = make_user(roles={Role.MEMBER})
    response = _post_password(client, member)
    assert response.headers["Location"] == "/portal/"
    assert _logged_in(client)


def test_mfa_can_be_turned_off_in_development(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_REQUIRE_STAFF_MFA", False)
    response = _post_password(client, make_staff())
    assert response.headers["Location"] == "/staff/"
    assert _logged_in(client)


def test_login_helper_logs_staff_in_repeatedly(app):
    user = make_staff(Role.ADMIN)
    for _ in range(3):
        with app.test_client() as client:
            login(client, user)
            assert client.get("/staff/").status_code == 200


def test_enrolled_users_cannot_enrol_again():
    user = _enrolled_staff()
    with pytest.raises(DomainError):
        mfa.begin_enrolment(user)
    with pytest.raises(DomainError):
        mfa.confirm_enrolment(user, "123456")


def test_enrolment_page_is_throttled_too_and_keeps_the_qr_code(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "MFA_LIMIT_PER_ACCOUNT", "1 per minute")
    user = make_staff()
    _post_password(client, user)
    client.get("/auth/mfa/enrol")
    db.session.refresh(user)
    wrong = "000000" if totp_code(user) != "000000" else "111111"
    assert client.post("/auth/mfa/enrol", data={"code": wrong, "csrf_token": csrf_token(client)}).status_code == 200
    response = client.post("/auth/mfa/enrol", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert "<svg" in response.text
    assert not mfa.is_enrolled(user)
    assert 'style="' not in response.text


# --- lockout after repeated wrong codes -----------------------------------------------------------


def _wrong_code(user, now: float) -> str:
    return "000000" if _code(user, now) != "000000" else "111111"


def _fail(user, times: int, now: float) -> None:
    for _ in range(times):
        assert mfa.verify_code(user, _wrong_code(user, now), now=now) is False


def _lock_mails() -> list:
    from crm.mail.models import OutboxMessage

    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "auth_mfa_locked")).all()


def test_repeated_wrong_codes_lock_the_second_factor_with_an_email_and_an_audit_entry(app):
    from datetime import UTC, datetime, timedelta

    user = _enrolled_staff(full_name="Sara Sikker", email="sara@etiskhandel.example")
    now = time.time()
    after = app.config["MFA_LOCKOUT_AFTER"]
    _fail(user, after - 1, now)
    assert mfa.locked_until(user) is None and _lock_mails() == []
    _fail(user, 1, now)
    expected = datetime.fromtimestamp(now, UTC) + timedelta(minutes=15)
    assert mfa.locked_until(user, now=datetime.fromtimestamp(now, UTC)) == expected
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.mfa.locked")).one()
    assert (entry.actor_id, entry.target_id) == (None, str(user.id))
    assert entry.details == {"locked_minutes": 15, "lockouts_in_a_row": 1}
    [mail] = _lock_mails()
    assert mail.to_address == "sara@etiskhandel.example"
    assert mail.subject == "Tofaktorinnloggingen din er låst"
    assert "Hei Sara Sikker," in mail.body_text and "Glemt passordet?" in mail.body_text
    assert "låst til" in mail.body_html

    # While locked, not even the right code is checked: the time step stays unspent.
    with pytest.raises(mfa.SecondFactorLocked, match="Tofaktorinnloggingen er låst"):
        mfa.verify_code(user, _code(user, now), now=now)
    assert user.totp_last_counter is None


def test_each_lockout_in_a_row_waits_longer_and_the_longest_repeats(app):
    from datetime import UTC, datetime

    user = _enrolled_staff()
    now = time.time()
    waits = []
    for _ in range(5):
        _fail(user, app.config["MFA_LOCKOUT_AFTER"], now)
        until = mfa.locked_until(user, now=datetime.fromtimestamp(now, UTC))
        waits.append(round((until.timestamp() - now) / 60))
        now = until.timestamp() + 1  # the lock has ended: the next wrong codes count again
    assert waits == [15, 60, 240, 1440, 1440]
    assert len(_lock_mails()) == 5


def test_a_right_code_starts_the_count_again(app):
    user = _enrolled_staff()
    now = time.time()
    after = app.config["MFA_LOCKOUT_AFTER"]
    _fail(user, after - 1, now)
    assert mfa.verify_code(user, _code(user, now), now=now) is True
    _fail(user, after - 1, now)
    assert mfa.locked_until(user) is None
    assert user.mfa_failed_attempts == after - 1


def test_the_lock_email_is_in_the_users_language():
    user = _enrolled_staff(locale="en")
    mfa.lock_second_factor(user)
    [mail] = _lock_mails()
    assert mail.subject == "Your two-factor login is locked"
    assert "Forgot your password?" in mail.body_text


def test_an_administrator_lifts_the_lock_and_it_is_audited():
    admin = make_staff(Role.ADMIN)
    user = _enrolled_staff()
    with pytest.raises(DomainError):
        mfa.unlock_second_factor(user, actor=admin)
    mfa.lock_second_factor(user)
    mfa.unlock_second_factor(user, actor=admin)
    assert mfa.locked_until(user) is None
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.user.mfa_unlocked")).one()
    assert entry.actor_id == admin.id
    assert user.mfa_lockouts == 1, "the next lockout in a row still waits longer, until a right code"


def test_the_code_page_locks_and_then_refuses_even_the_right_code(client, app, monkeypatch, smtp_server):
    from tests.conftest import run_jobs

    monkeypatch.setitem(app.config, "MFA_LOCKOUT_AFTER", 2)
    user = _enrolled_staff()
    db.session.commit()
    _post_password(client, user)
    wrong = "000000" if totp_code(user) != "000000" else "111111"
    assert client.post("/auth/mfa", data={"code": wrong, "csrf_token": csrf_token(client)}).status_code == 200
    response = client.post("/auth/mfa", data={"code": wrong, "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert "Tofaktorinnloggingen er låst etter for mange feil koder" in response.text
    assert "Vi har sendt deg en e-post om det" in response.text
    response = client.post("/auth/mfa", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert not _logged_in(client)
    assert client.get("/auth/mfa").status_code == 429
    assert _actions(user)[-2:] == ["auth.mfa.failed", "auth.mfa.locked"]
    run_jobs(app)
    [sent] = smtp_server.messages
    assert sent.rcpt_tos == (user.email,)
    assert sent.subject == "Tofaktorinnloggingen din er låst"


def test_the_enrolment_page_counts_towards_the_lock_too(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "MFA_LOCKOUT_AFTER", 1)
    user = make_staff()
    db.session.commit()
    _post_password(client, user)
    client.get("/auth/mfa/enrol")
    db.session.refresh(user)
    wrong = "000000" if totp_code(user) != "000000" else "111111"
    response = client.post("/auth/mfa/enrol", data={"code": wrong, "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    page = client.get("/auth/mfa/enrol")
    assert page.status_code == 429 and "<svg" not in page.text
    assert not mfa.is_enrolled(user)


def test_an_administrator_lifts_the_lock_on_the_user_page(app, client, monkeypatch):
    user = _enrolled_staff(full_name="Lars Låst")
    mfa.lock_second_factor(user)
    admin = make_staff(Role.ADMIN)
    db.session.commit()
    with app.test_client() as admin_client:
        login(admin_client, admin)
        page = admin_client.get(f"/staff/users/{user.id}").text
        assert "Låst etter for mange feil koder, til" in page
        assert 'data-confirm="Oppheve tofaktorlåsen til Lars Låst?' in page
        url = f"/staff/users/{user.id}/unlock-mfa"
        assert admin_client.post(url).status_code == 400  # no CSRF token
        assert mfa.locked_until(user) is not None
        response = admin_client.post(url, data={"csrf_token": csrf_token(admin_client)}, follow_redirects=True)
        assert "Låsen er opphevet" in response.text
        assert "Opphev tofaktorlåsen" not in response.text
    db.session.refresh(user)
    assert mfa.locked_until(user) is None
    assert _actions(user)[-1] == "auth.user.mfa_unlocked"
    login(client, user)  # the right code works again


@pytest.mark.parametrize("role", [Role.ADVISER, Role.COORDINATOR, Role.FINANCE])
def test_only_administrators_lift_a_lock(client, role):
    user = _enrolled_staff()
    mfa.lock_second_factor(user)
    staff = make_staff(role)
    db.session.commit()
    login(client, staff)
    response = client.post(f"/staff/users/{user.id}/unlock-mfa", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 403
    assert mfa.locked_until(user) is not None
