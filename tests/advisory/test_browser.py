"""The advisory journey in a real Chromium: a member opens a case in the portal, an adviser answers it,
the member reads the answer. axe-core (WCAG 2.1 AA) on every page, and no console errors (CSP)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from crm.demo import DEMO_LOGINS
from crm.redis_setup import start_embedded_redis, stop_embedded_redis
from tests.apps import ROOT, free_port

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}
MEMBER = "hanne.lunde@example.no"
ADVISER = "ingrid.solberg@etiskhandel.example"  # an administrator: part of the adviser team
SETUP = """
from crm import create_app
from crm.advisory.demo import load_advisory_demo
from crm.demo import load_demo
from crm.extensions import db
from crm.members.demo import load_members_demo

with create_app().app_context():
    db.create_all()
    load_demo()
    load_members_demo()
    load_advisory_demo()
    db.session.commit()
"""


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    instance = tmp_path_factory.mktemp("advisory-live")
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "CRM_ENV": "development",
        "CRM_INSTANCE_PATH": str(instance),
        "CRM_REQUIRE_STAFF_MFA": "0",
        "DATABASE_URL": f"sqlite:///{instance / 'live.sqlite'}",
        "REDIS_URL": start_embedded_redis(str(instance / "redis.db")),
    }
    env.pop("FLASK_DEBUG", None)
    subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    log = (instance / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "run", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the live server did not start: " + (instance / "server.log").read_text())
            time.sleep(0.2)
    yield base
    server.terminate()
    server.wait(timeout=10)
    log.close()
    stop_embedded_redis(str(instance / "redis.db"), wait=False)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
        yield browser
        browser.close()


def _context(browser):
    context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def _login(page, base: str, email: str) -> None:
    password = next(login.password for login in DEMO_LOGINS if login.email == email)
    page.goto(base + "/auth/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def _violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options=AXE_OPTIONS)
    return [
        f"{v['id']}: {v['help']} " + "; ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in results.response["violations"]
    ]


def test_member_opens_a_case_and_an_adviser_answers_it(live_server, browser):
    from playwright.sync_api import expect

    context, page, errors = _context(browser)
    _login(page, live_server, MEMBER)
    page.goto(live_server + "/portal/advisory/")
    expect(page.get_by_role("heading", name="Rådgivning")).to_be_visible()
    assert _violations(page) == []
    page.get_by_role("link", name="Ny henvendelse").click()
    assert _violations(page) == []
    page.get_by_label("Emne").fill("Hvordan prioriterer vi leverandører?")
    page.get_by_label("Beskrivelse").fill("Vi har 300 leverandører og trenger en måte å prioritere dem på.")
    page.get_by_label("Innkjøpspraksis").check()
    page.get_by_label("Trinn i OECDs aktsomhetsmodell").select_option("2")
    page.get_by_role("button", name="Send henvendelsen").click()
    expect(page.get_by_role("heading", name="Hvordan prioriterer vi leverandører?")).to_be_visible()
    expect(page.get_by_text("Takk. Vi har mottatt henvendelsen")).to_be_visible()
    assert _violations(page) == []
    case_url = page.url
    case_id = case_url.rstrip("/").rsplit("/", 1)[-1]
    assert errors == []
    context.close()

    context, page, errors = _context(browser)
    _login(page, live_server, ADVISER)
    page.goto(live_server + "/staff/advisory/")
    expect(page.get_by_role("heading", name="Rådgivningssaker")).to_be_visible()
    assert _violations(page) == []
    page.get_by_role("link", name=f"#{case_id} Hvordan prioriterer vi leverandører?").click()
    assert _violations(page) == []
    page.locator("#note-body").fill("Sjekk om de har risikoanalyse fra før.")
    page.get_by_role("button", name="Lagre notat").click()
    page.locator("#reply-body").fill("Start med en risikobasert prioritering etter land og bransje.")
    page.get_by_role("button", name="Send svar").click()
    expect(page.get_by_text("Svaret er sendt til medlemmet.")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "advisory-staff-case.png", full_page=True)
    for path in ("/staff/advisory/dashboard", "/staff/advisory/portfolio", "/staff/advisory/templates"):
        page.goto(live_server + path)
        assert _violations(page) == [], path
    assert errors == []
    context.close()

    context, page, errors = _context(browser)
    _login(page, live_server, MEMBER)
    page.goto(case_url)
    expect(page.get_by_text("Start med en risikobasert prioritering")).to_be_visible()
    expect(page.get_by_text("Sjekk om de har risikoanalyse")).to_have_count(0)
    page.screenshot(path=ARTIFACTS / "advisory-portal-case.png", full_page=True)
    assert errors == []
    context.close()
