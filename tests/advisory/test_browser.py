"""The advisory journey in a real Chromium: a member opens a case in the portal, an adviser answers it,
the member reads the answer. axe-core (WCAG 2.1 AA) on every page, and no console errors (CSP)."""

from __future__ import annotations

import pytest

from tests.apps import ROOT
from tests.live_server import log_in, run_live_server, violations

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
MEMBER = "hanne.lunde@example.no"
ADVISER = "ingrid.solberg@etiskhandel.example"  # an administrator: part of the adviser team


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    # The demo (flask crm demo's load_demo) includes the members and the advisory cases.
    with run_live_server(tmp_path_factory.mktemp("advisory-live"), require_staff_mfa=False) as base:
        yield base


def _new_page(browser):
    context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def test_member_opens_a_case_and_an_adviser_answers_it(live_server, browser):
    from playwright.sync_api import expect

    context, page, errors = _new_page(browser)
    log_in(page, live_server, MEMBER)
    page.goto(live_server + "/portal/advisory/")
    expect(page.get_by_role("heading", name="Rådgivning")).to_be_visible()
    assert violations(page) == []
    page.get_by_role("link", name="Ny henvendelse").click()
    assert violations(page) == []
    page.get_by_label("Emne").fill("Hvordan prioriterer vi leverandører?")
    page.get_by_label("Beskrivelse").fill("Vi har 300 leverandører og trenger en måte å prioritere dem på.")
    page.get_by_label("Innkjøpspraksis").check()
    page.get_by_label("Trinn i OECDs aktsomhetsmodell").select_option("2")
    page.get_by_role("button", name="Send henvendelsen").click()
    expect(page.get_by_role("heading", name="Hvordan prioriterer vi leverandører?")).to_be_visible()
    expect(page.get_by_text("Takk. Vi har mottatt henvendelsen")).to_be_visible()
    assert violations(page) == []
    case_url = page.url
    case_id = case_url.rstrip("/").rsplit("/", 1)[-1]
    assert errors == []
    context.close()

    context, page, errors = _new_page(browser)
    log_in(page, live_server, ADVISER)
    page.goto(live_server + "/staff/advisory/")
    expect(page.get_by_role("heading", name="Rådgivningssaker")).to_be_visible()
    assert violations(page) == []
    page.get_by_role("link", name=f"#{case_id} Hvordan prioriterer vi leverandører?").click()
    assert violations(page) == []
    page.locator("#note-body").fill("Sjekk om de har risikoanalyse fra før.")
    page.get_by_role("button", name="Lagre notat").click()
    page.locator("#reply-body").fill("Start med en risikobasert prioritering etter land og bransje.")
    page.get_by_role("button", name="Send svar").click()
    expect(page.get_by_text("Svaret er sendt til medlemmet.")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "advisory-staff-case.png", full_page=True)
    for path in ("/staff/advisory/dashboard", "/staff/advisory/portfolio", "/staff/advisory/templates"):
        page.goto(live_server + path)
        assert violations(page) == [], path
    assert errors == []
    context.close()

    context, page, errors = _new_page(browser)
    log_in(page, live_server, MEMBER)
    page.goto(case_url)
    expect(page.get_by_text("Start med en risikobasert prioritering")).to_be_visible()
    expect(page.get_by_text("Sjekk om de har risikoanalyse")).to_have_count(0)
    page.screenshot(path=ARTIFACTS / "advisory-portal-case.png", full_page=True)
    assert errors == []
    context.close()


def test_choosing_a_reply_template_keeps_the_typed_draft(live_server, browser):
    """The template's text goes in at the cursor, without a reload: the draft stays, placeholders are filled."""
    from playwright.sync_api import expect

    context, page, errors = _new_page(browser)
    log_in(page, live_server, ADVISER)
    page.goto(live_server + "/staff/advisory/")
    page.locator("table a[href^='/staff/advisory/']").first.click()
    case_url = page.url
    reply = page.locator("#reply-body")
    reply.fill("Takk, dette ser vi på.")
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Kvittering og neste steg").click()
    text = reply.input_value()
    assert text.startswith("Takk, dette ser vi på.\n\nHei ")
    assert "Takk for henvendelsen fra " in text and "{organisation}" not in text and "{adviser}" not in text
    assert page.url == case_url and page.evaluate("window.notReloaded") is True
    expect(reply).to_be_focused()
    assert errors == []
    context.close()
