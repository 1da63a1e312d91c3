"""View-test helpers. ``login`` sets the session the way the login view does; switch it to the shared
``login(client, user)`` helper (with MFA) when that lands."""

from __future__ import annotations

import time

from flask import g

from crm.extensions import db


def login(client, user) -> None:
    # Commit what the test built so far (a savepoint inside the test's transaction): error pages roll
    # the session back, which would otherwise discard the test's data.
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
        # As after a real login: a permanent session keeps Flask-Login's "strong" protection from
        # discarding a session that has no identifier of this test client yet.
        session.permanent = True
        session["login_at"] = session["seen_at"] = int(time.time())
    # Requests share the test's app context, so Flask-Login's cached user in ``g`` must go too.
    g.pop("_login_user", None)
