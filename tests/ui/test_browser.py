"""The layout in a real Chromium: WCAG 2.1 AA checks (axe-core), no CSP violations, htmx running
without eval, keyboard use. Runs against ``flask run`` on the demo data in a temporary instance."""

from __future__ import annotations

import re

import pytest

from tests.live_server import log_in, run_live_server, violations

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_instance(tmp_path_factory):
    return tmp_path_factory.mktemp("live-instance")


@pytest.fixture(scope="module")
def live_server(live_instance):
    with run_live_server(live_instance, require_staff_mfa=False) as base:
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


PHONE = 390
# Every element a member can click that is shown, with its box: none may reach past the screen's edge.
_OFF_SCREEN_CONTROLS = """(width) => [
  ...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')
].filter(e => e.offsetParent !== null && !e.closest('.visually-hidden, .visually-hidden-focusable'))
  .map(e => [e.getBoundingClientRect(), (e.innerText || e.name || e.id || e.tagName).trim().slice(0, 40)])
  .filter(([box]) => box.width > 1 && (box.left < -1 || box.right > width + 1))
  .map(([box, name]) => `${name} @ ${Math.round(box.left)}..${Math.round(box.right)}`)"""


def _on_screen(locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE


def _give_the_member_an_open_invoice(instance, email: str) -> None:
    """The demo never talks to Stripe, so its invoices have no payment page; give the member's one, opened."""
    import sqlite3

    with sqlite3.connect(instance / "live.sqlite") as connection:
        connection.execute(
            "UPDATE invoices SET status = 'open', paid_ore = 0, paid_at = NULL,"
            " hosted_invoice_url = 'https://invoice.stripe.com/i/demo', invoice_pdf = 'https://pay.stripe.com/demo.pdf'"
            " WHERE organisation_id IN (SELECT c.organisation_id FROM contacts c JOIN users u ON u.id = c.user_id"
            " WHERE u.email = ?) AND number IS NOT NULL",
            (email,),
        )


def test_every_portal_page_fits_a_phone_with_its_main_actions_on_screen(live_server, live_instance, browser):
    """390 px: no page scrolls sideways, no table hides its amount, status, Pay button, colleague actions or
    case links beyond the edge of the screen."""
    from tests.live_server import ARTIFACTS

    _give_the_member_an_open_invoice(live_instance, "hanne.lunde@example.no")

    context = browser.new_context(locale="nb-NO", viewport={"width": PHONE, "height": 844})
    page = context.new_page()
    log_in(page, live_server, "hanne.lunde@example.no")
    page.goto(live_server + "/portal/organisation/")
    colleague_edit = page.locator("a[href^='/portal/organisation/contacts/'][href$='/edit']").first
    colleague_edit = colleague_edit.get_attribute("href")
    page.goto(live_server + "/portal/advisory/")
    case = page.locator("a[href^='/portal/advisory/']").filter(has_text="#").first.get_attribute("href")
    paths = ["/portal/", "/portal/organisation/", "/portal/organisation/edit", "/portal/organisation/contacts/new"]
    paths += [colleague_edit, "/portal/invoices/", "/portal/advisory/", "/portal/advisory/new", case, "/account"]
    ARTIFACTS.mkdir(exist_ok=True)
    problems = {}
    for path in paths:
        page.goto(live_server + path)
        name = path.strip("/").replace("/", "-") or "portal"
        page.screenshot(path=ARTIFACTS / f"phone-{name}.png", full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        off_screen = page.evaluate(_OFF_SCREEN_CONTROLS, PHONE)
        # On a phone a member's table is stacked, not cut: no frame scrolls sideways either.
        cut = page.evaluate(
            "[...document.querySelectorAll('.table-responsive, .table-wrap')]"
            ".filter(e => e.scrollWidth > e.clientWidth).length"
        )
        if width > PHONE or off_screen or cut:
            problems[path] = (width, off_screen, f"{cut} tables cut")

    def check_on_screen(what: str, locator) -> None:
        if locator.count() == 0 or not all(_on_screen(locator.nth(i)) for i in range(locator.count())):
            problems[what] = f"{locator.count()} found, not all on screen"

    page.goto(live_server + "/portal/invoices/")
    # An open invoice's "Betal", or an overdue one's "Forfalt – betal nå": either way the way to pay.
    check_on_screen("Pay", page.get_by_role("link", name=re.compile("^(Betal|Forfalt – betal nå) ")))
    check_on_screen("amount", page.locator("[data-label='Beløp']"))
    check_on_screen("status", page.locator("[data-label='Status']"))
    page.goto(live_server + "/portal/organisation/")
    check_on_screen("edit colleague", page.get_by_role("link", name="Rediger").filter(has_text=" "))
    check_on_screen("mark as left", page.get_by_role("button", name="Marker som sluttet"))
    page.goto(live_server + "/portal/advisory/")
    check_on_screen("case links", page.locator("a[href^='/portal/advisory/']").filter(has_text="#"))
    context.close()
    assert not problems, "\n".join(f"{path}: {problem}" for path, problem in problems.items())
