"""A member logs in through the real login page in Chromium and reaches the portal.

The app runs as its own process (development configuration, a temporary instance folder with
its own SQLite file and embedded Redis) after ``flask db upgrade``, so this also proves that
the migrations build a working database. Fails on console errors (CSP violations show up
there) and on serious or critical axe-core findings.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from crm.redis_setup import start_embedded_redis, stop_embedded_redis
from tests.apps import ROOT, app_process_env, flask_command, free_port
from tests.live_server import ARTIFACTS, run_checked, serious_accessibility_problems, wait_until_serving

pytestmark = pytest.mark.browser

MEMBER_EMAIL = "kari.nordmann@medlem.example.no"
MEMBER_NAME = "Kari Nordmann"
MEMBER_PASSWORD = "grønn-lastebil-fjord-2026"

SEED_MEMBER = """
import sys
from crm import create_app
from crm.auth.models import Role
from crm.auth.services import create_user
from crm.extensions import db

from crm.members.models import Contact, ContactRole, ContactRoleAssignment, Membership, MembershipStatus
from crm.members.models import Organisation, OrganisationKind
from crm.members.services import category_for_kind

app = create_app()
with app.app_context():
    user = create_user(email=sys.argv[1], full_name=sys.argv[2], password=sys.argv[3], roles={Role.MEMBER})
    # The portal is open to people at member organisations with a current membership.
    organisation = Organisation(name="Fjordmat AS", orgnr="974760673", kind=OrganisationKind.COMPANY)
    organisation.membership = Membership(
        status=MembershipStatus.ACTIVE, category=category_for_kind(OrganisationKind.COMPANY)
    )
    main = ContactRoleAssignment(role=ContactRole.MAIN_CONTACT)
    contact = Contact(organisation=organisation, name=sys.argv[2], email=sys.argv[1], user=user, role_links=[main])
    db.session.add(contact)
    db.session.commit()
"""


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The real app in its own process, with a migrated database and one member user."""
    instance = tmp_path_factory.mktemp("browser-instance")
    redis_path = str(instance / "redis.db")
    env = app_process_env(instance, REDIS_URL=start_embedded_redis(redis_path))
    server = None
    try:
        run_checked(flask_command("db", "upgrade"), env)
        run_checked([sys.executable, "-c", SEED_MEMBER, MEMBER_EMAIL, MEMBER_NAME, MEMBER_PASSWORD], env)
        port = free_port()
        server = subprocess.Popen(
            flask_command("run", "--host", "127.0.0.1", "--port", str(port), "--no-reload", "--no-debugger"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}/"
        wait_until_serving(base_url, server)
        yield base_url
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        stop_embedded_redis(redis_path, wait=False)


def test_member_logs_in_through_the_login_page_and_reaches_the_portal(live_app, page):
    ARTIFACTS.mkdir(exist_ok=True)

    # The portal sends a visitor to the login page, and back after logging in.
    page.goto(live_app + "portal/")
    expect(page).to_have_url(f"{live_app}auth/login?next=%2Fportal%2F")
    expect(page.get_by_role("heading", name="Logg inn")).to_be_visible()
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "login.png", full_page=True)

    page.get_by_label("E-post").fill(MEMBER_EMAIL)
    page.get_by_label("Passord").fill(MEMBER_PASSWORD)
    page.locator("main").get_by_role("button", name="Logg inn").click()

    expect(page).to_have_url(live_app + "portal/")
    expect(page.get_by_role("heading", name="Medlemsportal")).to_be_visible()
    expect(page.get_by_text(f"Velkommen, {MEMBER_NAME}.")).to_be_visible()
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "portal.png", full_page=True)

    assert page.console_errors == []


def test_wrong_password_shows_the_message_and_stays_on_the_login_page(live_app, page):
    page.goto(live_app + "auth/login")
    page.get_by_label("E-post").fill(MEMBER_EMAIL)
    page.get_by_label("Passord").fill("not-the-password-at-all")
    page.locator("main").get_by_role("button", name="Logg inn").click()

    expect(page.get_by_role("status")).to_contain_text("Feil e-post eller passord.")
    expect(page).to_have_url(live_app + "auth/login")
    assert page.console_errors == []
