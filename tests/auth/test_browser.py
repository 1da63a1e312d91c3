"""Staff two-factor login in a real Chromium: enrol by scanning (reading) the QR page, log in with
a TOTP code, and pass the WCAG and CSP checks on the way. The server runs with MFA on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pyotp
import pytest

from crm.demo import DEMO_LOGINS
from tests.ui.test_browser import ROOT, _free_port, _violations, browser  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.browser

ADMIN = next(login for login in DEMO_LOGINS if login.email == "ingrid.solberg@etiskhandel.example")


@pytest.fixture(scope="module")
def mfa_server(tmp_path_factory):
    instance = tmp_path_factory.mktemp("mfa-instance")
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "CRM_ENV": "development",
        "CRM_INSTANCE_PATH": str(instance),
        "CRM_REQUIRE_STAFF_MFA": "1",
        "DATABASE_URL": f"sqlite:///{instance / 'live.sqlite'}",
        "REDIS_URL": "",
    }
    env.pop("FLASK_DEBUG", None)
    setup = (
        "from crm import create_app\nfrom crm.demo import load_demo\nfrom crm.extensions import db\n"
        "with create_app().app_context():\n    db.create_all()\n    load_demo()\n    db.session.commit()\n"
    )
    subprocess.run([sys.executable, "-c", setup], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
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


def _password_step(page, base):
    page.goto(base + "/auth/login")
    page.fill("#email", ADMIN.email)
    page.fill("#password", ADMIN.password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def test_staff_enrol_by_qr_code_and_log_in_with_a_code(mfa_server, browser):  # noqa: F811
    context = browser.new_context(locale="nb-NO")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    _password_step(page, mfa_server)
    assert page.url.endswith("/auth/mfa/enrol")
    assert page.locator("figure.qr-code svg").is_visible()
    assert _violations(page) == []
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
    _password_step(page, mfa_server)
    assert page.url.endswith("/auth/mfa")
    assert _violations(page) == []
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
