"""The layout in a real Chromium: WCAG 2.1 AA checks (axe-core), no CSP violations, htmx running
without eval, keyboard use. Runs against ``flask run`` on the demo data in a temporary instance."""

from __future__ import annotations

import pytest

from tests.live_server import log_in, run_live_server, violations

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    with run_live_server(tmp_path_factory.mktemp("live-instance"), require_staff_mfa=False) as base:
        yield base


@pytest.mark.parametrize(
    ("email", "paths"),
    [
        (None, ["/", "/auth/login", "/no-such-page", "/auth/forgot-password", "/auth/reset/not-a-token"]),
        (
            "ingrid.solberg@etiskhandel.example",
            [
                "/staff/",
                "/staff/audit/",
                "/staff/audit/?date_from=2026-06-02&date_to=2026-06-01",
                "/no-such-page",
                "/account",
                "/staff/users/",
                "/staff/users/new",
                "/staff/users/1",
                "/staff/mail/",
                "/staff/mail/people/2",
                "/staff/mail/messages/1",
            ],
        ),
        ("hanne.lunde@example.no", ["/portal/", "/staff/", "/account"]),
    ],
)
def test_pages_pass_wcag_checks_without_csp_violations(live_server, browser, email, paths):
    context = browser.new_context(locale="nb-NO")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    if email:
        log_in(page, live_server, email)
    for path in paths:
        page.goto(live_server + path)
        assert violations(page) == [], path
        assert page.evaluate("typeof htmx") == "object", path
        assert page.evaluate("htmx.config.allowEval") is False
    context.close()
    # The expected 403/404 statuses log "Failed to load resource"; anything else is a real problem.
    assert [p for p in problems if "Failed to load resource" not in p] == []


def test_the_skip_link_is_the_first_tab_stop_and_focus_is_visible(live_server, browser):
    page = browser.new_page()
    page.goto(live_server + "/auth/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.close()


def test_the_language_switch_works_in_the_browser(live_server, browser):
    page = browser.new_page()
    page.goto(live_server + "/auth/login")
    assert page.get_attribute("html", "lang") == "nb"
    page.click("button[lang=en]")
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "en"
    assert page.url.endswith("/auth/login")
    assert page.inner_text("h1") == "Log in"
    page.close()


def test_staff_navigation_collapses_on_a_phone(live_server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    log_in(page, live_server, "ingrid.solberg@etiskhandel.example")
    assert not page.is_visible(".sidebar")
    assert not page.is_visible("#mainnav a[href='/staff/audit/']")
    page.click(".navbar-toggler")
    page.wait_for_selector("#mainnav a[href='/staff/audit/']", state="visible")
    context.close()


def test_staff_tables_fit_a_laptop_screen_without_sideways_scrolling(live_server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, live_server, "ingrid.solberg@etiskhandel.example")
    overflowing = {}
    paths = ["/staff/members/", "/staff/users/", "/staff/audit/", "/staff/advisory/", "/staff/billing/invoices"]
    paths += ["/staff/mail/", "/staff/members/fees", "/staff/members/1?tab=contacts", "/staff/advisory/1"]
    for path in paths:
        page.goto(live_server + path)
        widths = page.evaluate(
            "() => [document.documentElement, ...document.querySelectorAll('.table-responsive, .table-wrap')]"
            ".map(e => [e.scrollWidth, e.clientWidth])"
        )
        overflowing.update({path: w for w in widths if w[0] > w[1]})
    context.close()
    assert overflowing == {}


def test_staff_pages_fit_a_phone_and_only_tables_scroll_sideways(live_server, browser):
    """A wide table scrolls inside its frame; nothing (not even a visually hidden header) widens the page."""
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    log_in(page, live_server, "ingrid.solberg@etiskhandel.example")
    paths = ["/staff/", "/staff/members/", "/staff/users/", "/staff/users/1", "/staff/mail/", "/staff/mail/people/2"]
    paths += ["/staff/mail/messages/1", "/staff/audit/", "/account"]
    too_wide = {}
    for path in paths:
        page.goto(live_server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            too_wide[path] = width
    context.close()
    assert too_wide == {}


def test_a_stored_email_is_shown_with_its_own_line_breaks(live_server, browser):
    page = browser.new_page()
    log_in(page, live_server, "ingrid.solberg@etiskhandel.example")
    page.goto(live_server + "/staff/mail/messages/1")
    shown = page.inner_text("main pre")  # innerText follows CSS: collapsed whitespace loses the line breaks
    assert shown.startswith("Hei ") and "\n\n" in shown
    page.close()


def test_field_errors_on_the_page_background_meet_the_contrast_minimum(live_server, page):
    """Forms that sit on the grey surface, not on a white panel, show their errors in a red dark enough."""
    page.goto(live_server + "/apply/")
    page.locator("main form[method=post] [type=submit]").last.click()
    page.wait_for_load_state()
    assert page.locator(".invalid-feedback").count() >= 2
    assert violations(page) == []
    log_in(page, live_server, "ingrid.solberg@etiskhandel.example")
    page.goto(live_server + "/staff/members/new")
    page.locator("main form[method=post] [type=submit]").last.click()
    page.wait_for_load_state()
    assert page.locator(".invalid-feedback").count() >= 1
    assert violations(page) == []


def test_destructive_actions_ask_first_and_cancelling_changes_nothing(live_server, page):
    """Forms with data-confirm (static/js/app.js) ask before they submit: here, disabling a user."""
    log_in(page, live_server, "ingrid.solberg@etiskhandel.example")
    page.goto(live_server + "/staff/users/")
    page.get_by_role("link", name="Marte Eriksen").click()
    user_page = page.url
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.get_by_role("button", name="Deaktiver og logg ut overalt").click()
    assert asked == [
        "Deaktivere Marte Eriksen? Brukeren logges ut overalt og kan ikke logge inn før kontoen aktiveres igjen."
    ]
    assert page.url == user_page
    assert page.get_by_role("button", name="Deaktiver og logg ut overalt").is_visible()  # still enabled

    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.get_by_role("button", name="Deaktiver og logg ut overalt").click()
    page.wait_for_load_state()
    assert len(asked) == 2
    assert page.get_by_role("button", name="Aktiver").is_visible()
    assert page.console_errors == []
