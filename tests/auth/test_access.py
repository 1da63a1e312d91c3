"""Every view declares who may use it, and members never reach a staff page.

Generic on purpose: it walks ``app.url_map``, so routes that later features add are covered too.
"""

from __future__ import annotations

import re

import pytest

from crm.auth.access import declared_access
from crm.auth.models import Role
from tests.factories import make_user
from tests.helpers import login


def _view_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]


def test_every_view_declares_access(app):
    undeclared = sorted(
        rule.rule for rule in _view_rules(app) if declared_access(app.view_functions[rule.endpoint]) is None
    )
    assert undeclared == [], f"views without an access declaration: {undeclared}"


def _filled(rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", "1", rule.rule)


def test_there_are_staff_routes_to_check(app):
    assert any(rule.rule.startswith("/staff") for rule in _view_rules(app))


def test_member_gets_403_on_every_staff_route(app, client, monkeypatch):
    member = make_user(roles={Role.MEMBER})
    login(client, member)
    # The CSRF check would answer a bare POST with 400 before the access check could say 403.
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    checked, wrong = 0, []
    for rule in _view_rules(app):
        if not rule.rule.startswith("/staff"):
            continue
        method = "GET" if "GET" in rule.methods else "POST"
        response = client.open(_filled(rule), method=method)
        checked += 1
        if response.status_code != 403:
            wrong.append(f"{method} {rule.rule} -> {response.status_code}")
    assert checked > 0
    assert wrong == []


@pytest.mark.parametrize("path", ["/staff/", "/staff/users/"])
def test_anonymous_is_sent_to_login_from_staff_pages(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_every_post_route_refuses_a_request_without_a_csrf_token(app, client):
    from tests.factories import make_member_user

    login(client, make_member_user(roles={Role.ADMIN, Role.MEMBER}))  # so that access checks do not answer first
    posts = [rule for rule in _view_rules(app) if "POST" in rule.methods]
    wrong = []
    for rule in posts:
        response = client.post(_filled(rule), data={"name": "x"})
        if response.status_code != 400:
            wrong.append(f"POST {rule.rule} -> {response.status_code}")
    assert len(posts) > 20
    assert wrong == []
