"""The members journey in a real Chromium: a member of the public applies through /apply, and a coordinator
takes the application through board review to an active membership.

The app runs as its own process (development configuration, migrated SQLite database, embedded Redis,
staff MFA off as development allows). The Brønnøysund register is pointed at a closed port, so the
applicant types the organisation's details by hand after the lookup says the register is unavailable.
Fails on console errors (CSP violations show up there) and on serious or critical axe-core findings.
Screenshots go to test-artifacts/members-*.png.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from crm.redis_setup import start_embedded_redis, stop_embedded_redis
from tests.apps import ROOT, app_process_env, flask_command, free_port
from tests.live_server import ARTIFACTS, run_checked, serious_accessibility_problems, wait_until_serving
from tests.smtp_server import SMTPTestServer

pytestmark = pytest.mark.browser

COORDINATOR_EMAIL = "thea.koordinator@etiskhandel.example"
COORDINATOR_PASSWORD = "Styremote-i-mars-2026"
ORGNR = "974760673"

# The invitation's link exists only in the email as sent (the outbox row holds none): send the row to a
# test SMTP server, as the worker would, and read the link from what arrived.
SEND_INVITATION = """
from sqlalchemy import select
from crm import create_app
from crm.extensions import db
from crm.mail.jobs import send_outbox_message
from crm.mail.models import OutboxMessage

with create_app().app_context():
    invitation = OutboxMessage.template == "members_portal_invitation"
    send_outbox_message(db.session.scalar(select(OutboxMessage.id).where(invitation)))
"""
KARI_PASSWORD = "Kakao-uten-barnearbeid-2026"

SEED_COORDINATOR = """
import sys
from crm import create_app
from crm.auth.models import Role
from crm.auth.services import create_user
from crm.extensions import db

with create_app().app_context():
    create_user(email=sys.argv[1], full_name="Thea Koordinator", password=sys.argv[2], roles={Role.COORDINATOR})
    db.session.commit()
"""


@pytest.fixture(scope="module")
def members_app(tmp_path_factory):
    instance = tmp_path_factory.mktemp("members-browser")
    redis_path = str(instance / "redis.db")
    env = app_process_env(
        instance,
        REDIS_URL=start_embedded_redis(redis_path),
        BRREG_API_URL=f"http://127.0.0.1:{free_port()}/enhetsregisteret/api/enheter",  # nothing listens
    )
    server = None
    try:
        run_checked(flask_command("db", "upgrade"), env)
        run_checked(flask_command("crm", "fees", "seed", "--year", str(date.today().year)), env)
        run_checked([sys.executable, "-c", SEED_COORDINATOR, COORDINATOR_EMAIL, COORDINATOR_PASSWORD], env)
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
        yield base_url, env
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        stop_embedded_redis(redis_path, wait=False)


def _checked(tab: Page, name: str) -> None:
    """Screenshot, and no serious accessibility problems on this page."""
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"members-{name}.png"), full_page=True)
    assert serious_accessibility_problems(tab) == [], name


def test_the_public_applies_and_a_coordinator_makes_them_a_member(members_app, page):
    base, env = members_app

    # The front page leads the public to the application form.
    page.goto(base)
    page.get_by_role("link", name="Søk om medlemskap").click()
    expect(page.get_by_role("heading", level=1, name="Søk om medlemskap")).to_be_visible()
    page.set_default_timeout(10_000)

    # The register cannot be reached: the form says so and keeps the number.
    page.get_by_label("Organisasjonsnummer").first.fill("974 760 673")
    page.get_by_role("button", name="Fyll inn fra registeret").click()
    expect(page.locator(".alert-warning")).to_be_visible()
    _checked(page, "apply-register-unavailable")

    form = page.locator("form[method=post]")
    form.get_by_label("Organisasjonsnummer").fill(ORGNR)
    form.get_by_label("Virksomhetens navn").fill("Fjordmat AS")
    form.get_by_label("Medlemskategori").select_option(label="Bedrift")
    form.get_by_label("Årsomsetning (kr)").fill("25000000")
    form.get_by_label("Ansatte", exact=True).fill("40")
    form.get_by_label("Postnummer", exact=True).fill("5003")
    form.get_by_label("Poststed", exact=True).fill("Bergen")
    form.get_by_label("Ditt navn").fill("Kari Nordmann")
    form.get_by_label("Din e-post på jobb").fill("kari@fjordmat.example")
    form.get_by_label("Fakturakontaktens navn").fill("Ola Faktura")
    form.get_by_label("Fakturakontaktens e-post").fill("faktura@fjordmat.example")
    form.get_by_label("Vi godtar prinsipperklæringen", exact=False).check()
    form.get_by_role("button", name="Vis kontingenten").click()

    fee = page.locator(".card[role=status]")
    expect(fee).to_contain_text("Kontingenten deres")
    expect(fee).to_contain_text("kr")
    _checked(page, "apply-fee")
    page.get_by_role("button", name="Send søknad").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.url.endswith("/apply/thanks")
    _checked(page, "apply-thanks")

    # A coordinator logs in (development: no second factor) and finds the application.
    page.goto(base + "auth/login")
    page.fill("#email", COORDINATOR_EMAIL)
    page.fill("#password", COORDINATOR_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto(base + "staff/members/?status=applied")
    row = page.get_by_role("row").filter(has_text="Fjordmat AS")
    expect(row).to_contain_text("974 760 673")
    _checked(page, "staff-list")
    row.get_by_role("link", name="Fjordmat AS").click()
    expect(page.get_by_role("heading", level=1, name="Fjordmat AS")).to_be_visible()
    _checked(page, "staff-organisation")

    for status, label in (("board_review", "Til styrebehandling"), ("active", "Aktiv")):
        page.get_by_role("tab", name="Medlemskap").or_(page.get_by_role("link", name="Medlemskap")).first.click()
        page.get_by_role("link", name="Endre status").click()
        page.get_by_label("Ny status").select_option(status)
        page.get_by_label("Begrunnelse").fill("Styremøte 5. mars")
        if status == "board_review":
            _checked(page, "staff-status-form")
        page.get_by_role("button", name="Endre status").click()
        expect(page.locator(".alert-success").first).to_contain_text(f"Medlemskapet er nå: {label}.")

    expect(page.locator(".alert-info").first).to_contain_text("invitasjon til portalen er sendt på e-post til Kari")
    _checked(page, "staff-active")
    page.get_by_role("button", name="Logg ut").click()

    # The main contact opens the invitation from the email, chooses a password and sees the portal.
    smtp = SMTPTestServer()
    smtp.start()
    try:
        mail_env = {**env, "MAIL_SERVER": smtp.host, "MAIL_PORT": str(smtp.port), "MAIL_SUPPRESS_SEND": "0"}
        subprocess.run([sys.executable, "-c", SEND_INVITATION], cwd=ROOT, env=mail_env, check=True)
    finally:
        smtp.stop()
    [received] = smtp.to("kari@fjordmat.example")
    link = re.search(r"/auth/invitation/\S+", received.part("text/plain")).group(0)
    page.goto(base + link.lstrip("/"))
    page.get_by_label("Nytt passord", exact=True).fill(KARI_PASSWORD)
    page.get_by_label("Gjenta", exact=False).fill(KARI_PASSWORD)
    _checked(page, "portal-invitation")
    page.get_by_role("button", name="Lagre passord").click()
    page.fill("#email", "kari@fjordmat.example")
    page.fill("#password", KARI_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto(base + "portal/organisation/")
    expect(page.get_by_role("heading", level=1, name="Fjordmat AS")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Ola Faktura")
    _checked(page, "portal-organisation")
    page.get_by_role("link", name="Inviter en kollega").click()
    page.get_by_label("Navn", exact=True).fill("Nina Innkjøper")
    page.get_by_label("E-post (jobb)").fill("nina@fjordmat.example")
    page.get_by_label("Innkjøper", exact=False).check()
    _checked(page, "portal-invite")
    page.get_by_role("button", name="Send invitasjon").click()
    expect(page.locator(".alert-success")).to_contain_text("Nina Innkjøper er lagt til")
    expect(page.locator("main table")).to_contain_text("nina@fjordmat.example")
    assert page.console_errors == []
