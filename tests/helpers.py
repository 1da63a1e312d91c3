"""Logging a test client in, and the CSRF token its forms need.

``login()`` is the way to log in: the real login form, and for staff the real second factor.
``sign_in()`` only writes the session a completed login leaves behind; use it where the login's own
effects would be in the way of what the test checks (the audit entries a login writes, in the
audit log viewer's tests).
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pyotp
from flask_login.utils import _create_identifier
from werkzeug.datastructures import MultiDict

from crm.auth.mfa import INTERVAL, VALID_WINDOW
from crm.extensions import db
from tests.factories import DEFAULT_PASSWORD

__all__ = ["DEFAULT_PASSWORD", "csrf_token", "delivered_link", "form_values", "login", "sign_in", "totp_code"]


def delivered_link(app, smtp_server, path: str) -> str:
    """Commit, run the send jobs and return the path of the newest link under ``path`` (``/auth/reset/``) that
    reached the test SMTP server. Security links exist only in the sent message, never in the outbox row."""
    from tests.conftest import run_jobs

    db.session.commit()
    run_jobs(app)
    for received in reversed(smtp_server.messages):
        text = received.part("text/plain") or ""
        match = re.search(rf"https?://[^/\s]+({re.escape(path)}[^\s\"<>]+)", text)
        if match:
            assert match.group(1) in (received.part("text/html") or ""), "the HTML part lacks the link"
            return match.group(1)
    raise AssertionError(f"no message with a {path} link reached the SMTP server")


def csrf_token(client) -> str:
    """A valid CSRF token for this client's session (every page carries one in the language form)."""
    page = client.get("/auth/forgot-password").text
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def totp_code(user) -> str:
    """A code from the user's authenticator that the server has not accepted yet."""
    current = int(time.time()) // INTERVAL
    counter, last = current, user.totp_last_counter
    if last is not None and current <= last:
        if last + 1 <= current + VALID_WINDOW:
            counter = last + 1
        else:
            # A third login within one time step: forget the spent step rather than wait 30 s.
            user.totp_last_counter = None
            db.session.flush()
    return pyotp.TOTP(user.totp_secret, interval=INTERVAL).generate_otp(counter)


def login(client, user, password: str = DEFAULT_PASSWORD):
    """Log ``user`` in through the real login form; staff also enrol (the first time) and enter a
    TOTP code. Asserts that it worked and returns the last response (a redirect)."""
    data = {"email": user.email, "password": password, "csrf_token": csrf_token(client)}
    response = client.post("/auth/login", data=data)
    assert response.status_code == 302, f"login failed with status {response.status_code}"
    location = response.headers["Location"]
    if location.startswith("/auth/mfa"):
        if location.startswith("/auth/mfa/enrol"):
            client.get(location)  # shows (and stores) the secret to scan
        db.session.refresh(user)
        response = client.post(location, data={"code": totp_code(user), "csrf_token": csrf_token(client)})
        assert response.status_code == 302, f"second factor failed with status {response.status_code}"
    with client.session_transaction() as sess:
        assert sess.get("_user_id"), "not logged in"
    return response


def sign_in(client, user) -> None:
    """Give ``client`` the session a completed login leaves behind, without logging in: no audit
    entries, no TOTP enrolment, no throttle counters. Prefer ``login()``.

    Commits, as a login does: an error page rolls the session back, and the user must still be
    there when the page is drawn."""
    db.session.commit()
    with client.application.test_request_context(environ_base=client.environ_base):
        identifier = _create_identifier()
    now = int(time.time())
    with client.session_transaction() as session:
        session.update({"_user_id": user.get_id(), "_fresh": True, "_id": identifier, "login_at": now, "seen_at": now})
        session.permanent = True


class _FormReader(HTMLParser):
    """The values a browser would send for the page's form that posts to ``action`` (None: to the page itself)."""

    def __init__(self, action: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.action, self.inside, self.done = action, False, False
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attr = dict(attrs)
        if tag == "form" and not self.done and (attr.get("method") or "").lower() == "post":
            self.inside = (attr.get("action") or None) == self.action
        if not self.inside:
            return
        name = attr.get("name")
        if tag == "input" and name and attr.get("type") not in ("submit", "button", "file"):
            if attr.get("type") in ("checkbox", "radio") and "checked" not in attr:
                return
            self.values.append((name, attr.get("value") or ("y" if attr.get("type") == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attr:
            self.values.append((self._select, attr.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside, self.done = False, True
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values.append((self._textarea, "".join(self._text).removeprefix("\n")))
            self._textarea = None


def form_values(html: str, action: str | None = None) -> MultiDict:
    """What the browser would post for the form on ``html`` that posts to ``action`` (None: the form posting to the
    page itself): a test opens a form, changes some values and sends it, hidden fields (CSRF, version, token)
    included."""
    reader = _FormReader(action)
    reader.feed(html)
    assert reader.values, "no form on the page"
    return MultiDict(reader.values)
