"""Signing a test client in without the login form (staff would otherwise need a TOTP code)."""

from __future__ import annotations

import time

from flask import current_app
from flask_login.utils import _create_identifier


def sign_in(client, user) -> None:
    """Give ``client`` the session a completed login leaves behind."""
    with current_app.test_request_context():
        identifier = _create_identifier()
    now = int(time.time())
    with client.session_transaction() as session:
        session.update({"_user_id": user.get_id(), "_fresh": True, "_id": identifier, "login_at": now, "seen_at": now})
        session.permanent = True


def csrf_token(client, url: str = "/") -> str:
    """The CSRF token of the client's session, read from a rendered page."""
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)
