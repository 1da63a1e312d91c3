"""The member register on the demo data in a real Chromium at a laptop's 1280 px: what a coordinator and a
member's main contact see. Screenshots go to test-artifacts/members-demo-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.live_server import ARTIFACTS, log_in, run_live_server, serious_accessibility_problems, violations

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    with run_live_server(tmp_path_factory.mktemp("members-demo"), require_staff_mfa=False) as base:
        yield base


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"members-demo-{name}.png"), full_page=True)


def _overflows(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


def test_the_contacts_tab_fits_the_screen_and_names_open_the_edit_form(live_server, page):
    log_in(page, live_server, "thomas.lie@etiskhandel.example")
    page.goto(live_server + "/staff/members/?q=Fjordmat")
    page.get_by_role("link", name="Fjordmat AS").click()
    page.get_by_role("link", name="Kontaktpersoner").click()
    page.wait_for_load_state("load")
    _screenshot(page, "contacts")
    # Every column in view: at 1280 px the edit links used to sit behind a horizontal scroll.
    assert not _overflows(page)
    table = page.locator("main .table-responsive")
    assert table.evaluate("el => el.scrollWidth <= el.clientWidth")
    page.get_by_role("link", name="Per Johansen", exact=True).click()
    expect(page.locator("h1")).to_have_text("Rediger Per Johansen")
    assert serious_accessibility_problems(page) == []
    assert page.console_errors == []


def test_the_main_contact_edits_the_organisations_address_in_the_portal(live_server, page):
    log_in(page, live_server, "per.johansen@example.no")
    page.goto(live_server + "/portal/organisation/")
    page.locator("main").get_by_role("link", name="Rediger", exact=True).first.click()
    page.wait_for_load_state("load")
    _screenshot(page, "portal-profile")
    # The form used to show only its Save button.
    expect(page.get_by_label("Besøksadresse")).to_have_value("Industriveien 62")
    page.get_by_label("Besøksadresse").fill("Strandkaien 3")
    page.get_by_label("Standard bestillerreferanse").fill("PO-77")
    page.get_by_role("button", name="Lagre").click()
    page.wait_for_load_state("load")
    expect(page.locator("main")).to_contain_text("Strandkaien 3")
    assert not _overflows(page)
    assert serious_accessibility_problems(page) == []
    assert page.console_errors == []


def test_a_coordinator_reads_and_edits_the_fee_schedules(live_server, page):
    log_in(page, live_server, "thomas.lie@etiskhandel.example")
    page.goto(live_server + "/staff/members/")
    page.locator("main").get_by_role("link", name="Kontingentsatser").click()
    page.wait_for_load_state("load")
    expect(page.locator("h1")).to_have_text("Kontingentsatser 2026")
    municipality = page.locator("section", has=page.get_by_role("heading", name="Kommune", exact=True))
    expect(municipality).to_contain_text("Sats per innbygger1,18\u00a0kr")
    _screenshot(page, "fees")
    assert not _overflows(page)
    assert violations(page) == []

    # A turnover-step form (40 rows and blanks) passes too.
    page.get_by_role("link", name="Rediger kontingentsatsene for Bedrift").click()
    page.wait_for_load_state("load")
    expect(page.get_by_label("Trinn 7: kontingent (kr)")).to_have_value("12 000")
    assert violations(page) == []
    page.go_back()

    page.get_by_role("link", name="Rediger kontingentsatsene for Kommune").click()
    page.wait_for_load_state("load")
    expect(page.get_by_label("Sats per innbygger (kr)")).to_have_value("1,18")
    # A refusal first: the minimum above the maximum is shown on its field.
    page.get_by_label("Laveste kontingent (kr)").fill("120 000")
    page.get_by_role("button", name="Lagre").click()
    page.wait_for_load_state("load")
    expect(page.locator("#minimum-errors")).to_have_text(
        "Laveste kontingent kan ikke være høyere enn høyeste kontingent."
    )
    _screenshot(page, "fee-schedule-refused")
    assert violations(page) == []
    page.get_by_label("Laveste kontingent (kr)").fill("25 700")
    page.get_by_label("Sats per innbygger (kr)").fill("1,20")
    page.get_by_role("button", name="Lagre").click()
    page.wait_for_load_state("load")
    expect(page.locator("main")).to_contain_text("Kontingentsatsene for Kommune 2026 ble lagret.")
    expect(municipality).to_contain_text("Sats per innbygger1,20\u00a0kr")
    _screenshot(page, "fees-saved")
    assert violations(page) == []
    assert page.console_errors == []
