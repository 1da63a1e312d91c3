"""``make run`` with no Stripe key, as a newcomer meets it: a billing run completes through the local Stripe server,
the pages say "test mode", and a member pays on the hosted invoice page, whose webhook marks the invoice paid.

One ``python -m crm.devserver`` (embedded Redis, web server, worker, local Stripe) on the demo data, in Chromium.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from crm.demo import DEMO_LOGINS
from tests.apps import app_process_env, flask_command
from tests.live_server import ARTIFACTS, log_in, run_checked, serious_accessibility_problems
from tests.test_devserver import DevServer

pytestmark = pytest.mark.browser


MEMBER = next(login for login in DEMO_LOGINS if login.organisation == "Nordlys Tekstil AS")
YEAR = 2027  # the demo has invoiced every billable member for 2026


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    instance = tmp_path_factory.mktemp("make-run")
    server = DevServer(instance)
    try:
        server.wait_for("=" * 72 + "\n\n")
        redis_url = next(line.split(" at ", 1)[1].strip() for line in server.lines if "embedded Redis at" in line)
        env = app_process_env(instance, REDIS_URL=redis_url)
        run_checked(flask_command("crm", "fees", "copy-year", "--from", "2026", "--to", str(YEAR), "--index", "0"), env)
        yield server
    finally:
        server.stop()


def test_a_billing_run_completes_and_a_member_pays_in_test_mode(make_run, page):
    base = make_run.url.rstrip("/")
    ARTIFACTS.mkdir(exist_ok=True)
    log_in(page, base, "marte.eriksen@etiskhandel.example")
    page.goto(f"{base}/staff/billing/runs/new?year={YEAR}")
    expect(page.locator(".stripe-test-mode")).to_have_text("Stripe-testmodus")
    page.get_by_role("button", name="Start faktureringen").click()
    expect(page.locator("#confirm-summary")).to_contain_text("blir sendt, til sammen")
    page.get_by_role("button", name=re.compile(r"^Send \d+ faktura")).click()
    expect(page.locator('[data-count="remaining"]')).to_have_text("0", timeout=150_000)
    expect(page.locator('[data-count="failed"]')).to_have_text("0")
    assert int(page.locator('[data-count="done"]').inner_text()) > 0
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "make-run-billing-run.png", full_page=True)
    page.get_by_role("button", name="Logg ut").click()
    expect(page.get_by_role("button", name="Logg ut")).to_have_count(0)

    log_in(page, base, MEMBER.email)
    expect(page.get_by_role("button", name="Logg ut")).to_be_visible()
    page.goto(f"{base}/portal/invoices/")
    expect(page.locator("main .stripe-test-mode")).to_be_visible()
    row = page.locator("tbody tr", has=page.locator("td:nth-child(2)", has_text=str(YEAR)))
    row.get_by_role("link", name="Betal").click()
    expect(page.locator(".test-mode")).to_contain_text("TESTMODUS")
    page.screenshot(path=ARTIFACTS / "make-run-hosted-invoice.png", full_page=True)
    page.get_by_role("button", name="Betal (testmodus)").click()
    expect(page.locator("#status")).to_have_text("Betalt")

    # The local server posts invoice.paid to /stripe/webhook; the worker applies it.
    deadline = time.monotonic() + 60
    while True:
        page.goto(f"{base}/portal/invoices/")
        if "Betalt" in row.inner_text():
            break
        assert time.monotonic() < deadline, row.inner_text()
        time.sleep(1)
    page.screenshot(path=ARTIFACTS / "make-run-paid.png", full_page=True)
    assert page.console_errors == []
