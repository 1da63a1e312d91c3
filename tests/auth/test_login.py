"""Login throttling, audit of logins, sessions that really end, timeouts and cookie flags."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth import services
from crm.auth.models import Role
from crm.extensions import db
from tests.factories import make_member_user, make_staff, make_user
from tests.helpers import DEFAULT_PASSWORD, csrf_token, login, totp_code

WRONG = "feil-passord-helt-sikkert"


def _post_login(client, email, password, ip="127.0.0.1"):
    return client.post(
        "/auth/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        environ_base={"REMOTE_ADDR": ip},
    )


def _audit_count(action=None) -> int:
    stmt = select(func.count(AuditEntry.id))
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return db.session.scalar(stmt)


def _logged_in(client) -> bool:
    with client.session_transaction() as sess:
        return bool(sess.get("_user_id"))


# --- audit ------------------------------------------------------------------------------------


def test_failed_and_successful_logins_are_audit_logged(client):
    member = make_user(roles={Role.MEMBER})
    assert _post_login(client, member.email, WRONG).status_code == 200
    assert _post_login(client, "nobody@example.no", WRONG).status_code == 200
    assert _post_login(client, member.email, DEFAULT_PASSWORD).status_code == 302
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["auth.login.failed", "auth.login.failed", "auth.login.succeeded"]


def test_wrong_password_shows_a_message(client):
    member = make_user()
    response = _post_login(client, member.email, WRONG)
    assert "Feil e-post eller passord." in response.text
    assert not _logged_in(client)


# --- throttling -------------------------------------------------------------------------------


def test_account_is_throttled_after_failures_and_opens_after_the_cool_down(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "3 per 2 seconds")
    member = make_user(email="kari@example.no")
    for n in range(3):
        assert _post_login(client, "Kari@Example.NO", WRONG).status_code == 200  # one account, however spelt
        if n == 0:
            window_started = time.monotonic()  # the first failure is counted as its response goes out
    before = _audit_count()
    response = _post_login(client, member.email, DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert "For mange innloggingsforsøk. Prøv igjen om 1 minutt." in response.text
    assert not _logged_in(client)
    assert _audit_count() == before  # the attempt was not even checked
    time.sleep(max(0.0, 2.1 - (time.monotonic() - window_started)))
    response = _post_login(client, member.email, DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert _logged_in(client)


def test_account_limit_counts_failures_from_every_ip(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "3 per minute")
    member = make_user()
    for n in range(3):
        _post_login(client, member.email, WRONG, ip=f"10.0.0.{n + 1}")
    assert _post_login(client, member.email, DEFAULT_PASSWORD, ip="10.0.0.9").status_code == 429


def test_ip_is_throttled_across_accounts(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "3 per minute")
    member = make_user()
    for n in range(3):
        _post_login(client, f"guess{n}@example.no", WRONG, ip="10.1.1.1")
    assert _post_login(client, member.email, DEFAULT_PASSWORD, ip="10.1.1.1").status_code == 429
    # Another address is not affected.
    assert _post_login(client, member.email, DEFAULT_PASSWORD, ip="10.1.1.2").status_code == 302


def test_successful_logins_do_not_count(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "2 per minute")
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "2 per minute")
    member = make_user()
    for _ in range(4):
        with app.test_client() as client:
            assert _post_login(client, member.email, DEFAULT_PASSWORD).status_code == 302


def test_login_page_links_to_password_reset(client):
    assert "Glemt passordet?" in client.get("/auth/login").text


# --- sessions end for real --------------------------------------------------------------------


def _session_cookie(client) -> str:
    return client.get_cookie("crm_session", domain="crm.test").value


def _client_with_cookie(app, value):
    client = app.test_client()
    client.set_cookie("crm_session", value, domain="crm.test")
    return client


def test_logout_invalidates_a_copied_session_cookie(app, client):
    member = make_member_user()
    login(client, member)
    copied = _session_cookie(client)
    assert _client_with_cookie(app, copied).get("/portal/").status_code == 200
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    response = _client_with_cookie(app, copied).get("/portal/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_password_change_ends_other_sessions_but_keeps_this_one(app, client):
    member = make_member_user()
    login(client, member)
    with app.test_client() as other:
        login(other, member)
        copied = _session_cookie(other)
    new_password = "ny-blå-sykkel-i-regnet-42"
    response = client.post(
        "/account/password",
        data={
            "current_password": DEFAULT_PASSWORD,
            "new_password": new_password,
            "confirm": new_password,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302
    assert _client_with_cookie(app, copied).get("/portal/").status_code == 302
    assert client.get("/portal/").status_code == 200


def test_disabling_a_user_ends_their_sessions(app, client):
    member = make_user()
    admin = make_staff(Role.ADMIN)
    login(client, member)
    copied = _session_cookie(client)
    with app.test_client() as admin_client:
        login(admin_client, admin)
        response = admin_client.post(f"/staff/users/{member.id}/disable", data={"csrf_token": csrf_token(admin_client)})
        assert response.status_code == 302
    assert member.is_enabled is False
    assert _client_with_cookie(app, copied).get("/portal/").status_code == 302


def test_disabled_user_cannot_log_in(client):
    member = make_user(is_enabled=False)
    assert _post_login(client, member.email, DEFAULT_PASSWORD).status_code == 200
    assert not _logged_in(client)


def test_session_version_in_the_login_id():
    member = make_user()
    session_id = member.get_id()
    assert services.load_user_from_session_id(session_id) is member
    services.end_all_sessions(member)
    assert services.load_user_from_session_id(session_id) is None
    assert services.load_user_from_session_id("garbage") is None


# --- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("login_age", "idle_for"),
    [
        pytest.param(60, 3601, id="idle"),
        pytest.param(12 * 3600 + 1, 10, id="absolute"),
    ],
)
def test_sessions_time_out(client, login_age, idle_for):
    member = make_user()
    login(client, member)
    now = int(time.time())
    with client.session_transaction() as sess:
        sess["login_at"] = now - login_age
        sess["seen_at"] = now - idle_for
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    assert "utløpt" in client.get(response.headers["Location"]).text
    assert not _logged_in(client)


def test_activity_keeps_the_session_alive(client):
    member = make_member_user()
    login(client, member)
    now = int(time.time())
    with client.session_transaction() as sess:
        sess["login_at"] = now - 3 * 3600
        sess["seen_at"] = now - 3500
    assert client.get("/portal/").status_code == 200
    with client.session_transaction() as sess:
        assert sess["seen_at"] >= now


# --- cookie flags -----------------------------------------------------------------------------


def _login_set_cookie(client, user) -> str:
    response = _post_login(client, user.email, DEFAULT_PASSWORD)
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("crm_session="))


def test_session_cookie_is_httponly_and_samesite_lax(client):
    header = _login_set_cookie(client, make_user())
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header


def test_session_cookie_is_secure_when_configured(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    header = _login_set_cookie(client, make_user())
    assert "; Secure" in header
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header


def test_cookies_are_secure_outside_development():
    from crm.config import Config, ProductionConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert Config.SESSION_COOKIE_HTTPONLY is True
    assert Config.SESSION_COOKIE_SAMESITE == "Lax"


@pytest.mark.parametrize("staff", [False, True])
def test_login_returns_to_the_page_asked_for(client, staff):
    user = make_staff(Role.ADMIN) if staff else make_user()
    target = "/staff/users/" if staff else "/account"
    response = client.get(target)
    login_url = response.headers["Location"]
    assert login_url.startswith("/auth/login?next=")
    page = client.get(login_url)
    assert 'name="next" type="hidden" value="' + target + '"' in page.text
    data = {"email": user.email, "password": DEFAULT_PASSWORD, "next": target, "csrf_token": csrf_token(client)}
    response = client.post("/auth/login", data=data)
    if staff:
        mfa_page = response.headers["Location"]
        client.get(mfa_page)
        db.session.refresh(user)
        response = client.post(mfa_page, data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert response.headers["Location"] == target


def test_login_ignores_offsite_next(client):
    member = make_user()
    client.get("/auth/login?next=//evil.example/")
    response = client.post(
        "/auth/login",
        data={
            "email": member.email,
            "password": DEFAULT_PASSWORD,
            "next": "//evil.example/",
            "csrf_token": csrf_token(client),
        },
    )
    assert response.headers["Location"] == "/portal/"


def test_a_password_reset_reopens_a_throttled_account(client, app, monkeypatch):
    from crm.auth import reset

    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "2 per hour")
    member = make_user()
    for _ in range(2):
        _post_login(client, member.email, WRONG, ip="10.9.9.9")
    assert _post_login(client, member.email, DEFAULT_PASSWORD).status_code == 429
    new_password = "mandag-morgen-med-kaffe-og-snø"
    link = "/auth/reset/" + reset.make_password_token(member, reset.RESET)
    data = {"new_password": new_password, "confirm": new_password, "csrf_token": csrf_token(client)}
    assert client.post(link, data=data).status_code == 302
    assert _post_login(client, member.email, new_password).status_code == 302
    assert _logged_in(client)


def test_the_throttling_message_says_how_long_to_wait(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "2 per 15 minutes")
    member = make_user(email="lars@example.no")
    for _ in range(2):
        _post_login(client, member.email, WRONG)
    response = _post_login(client, member.email, DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert "For mange innloggingsforsøk. Prøv igjen om 15 minutter." in response.text
