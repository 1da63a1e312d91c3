"""Staff two-factor login in a real Chromium: enrol by scanning (reading) the QR page, log in with
a TOTP code, and pass the WCAG and CSP checks on the way. The server runs with MFA on."""

from __future__ import annotations

import time

import pyotp
import pytest

from crm.demo import DEMO_LOGINS
from tests.live_server import log_in, run_live_server, violations

pytestmark = pytest.mark.browser

ADMIN = next(login for login in DEMO_LOGINS if login.email == "ingrid.solberg@etiskhandel.example")


@pytest.fixture(scope="module")
def mfa_server(tmp_path_factory):
    with run_live_server(tmp_path_factory.mktemp("mfa-instance"), require_staff_mfa=True) as base:
        yield base


def test_staff_enrol_by_qr_code_and_log_in_with_a_code(mfa_server, browser):
    context = browser.new_context(locale="nb-NO")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    log_in(page, mfa_server, ADMIN.email)
    assert page.url.endswith("/auth/mfa/enrol")
    assert page.locator("figure.qr-code svg").is_visible()
    assert violations(page) == []
    secret = page.locator("code.totp-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    first_code = totp.generate_otp(step)
    page.fill("#code", first_code)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith("/staff/")

    # Log out and in again: now the code page; the code just used is refused, the next one works.
    page.click("form[action='/auth/logout'] button")
    page.wait_for_load_state()
    log_in(page, mfa_server, ADMIN.email)
    assert page.url.endswith("/auth/mfa")
    assert violations(page) == []
    page.fill("#code", first_code)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith("/auth/mfa")
    assert page.locator(".invalid-feedback").is_visible()
    page.fill("#code", totp.generate_otp(step + 1))  # within the accepted window of one step
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith("/staff/")
    context.close()
    assert [p for p in problems if "Failed to load resource" not in p] == []
