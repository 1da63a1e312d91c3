"""``make run`` with no Stripe key, as a newcomer meets it: a billing run completes through the local Stripe server,
the pages say "test mode", finance voids one of the run's invoices and credits another at the local Stripe server
(and voids one of the demo's own invoices, which Stripe never had, here), and a member pays on the hosted invoice
page, whose webhook marks the invoice paid.

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

    # Two of the run's invoices (not the member's, who pays below) are corrected by the worker's billing job at
    # the local Stripe server; the invoice page reloads itself (htmx) once the job is done.
    page.goto(f"{base}/staff/billing/invoices?year={YEAR}&status=open")
    others = page.locator("tbody tr", has_not_text=MEMBER.organisation).locator("td:first-child > a:first-child")
    void_href, credit_href = others.nth(0).get_attribute("href"), others.nth(1).get_attribute("href")
    status = page.locator("main .badge").first
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))

    page.goto(base + void_href)
    page.locator("#void-reason").fill("Feil mottaker")
    page.get_by_role("button", name="Annuller fakturaen").click()
    # The job may finish before the page is drawn (then its reload drops the "being voided" message): the history
    # shows that the request was recorded first and the job voided it at Stripe after.
    expect(status).to_have_text("Annullert", timeout=60_000)
    expect(page.locator("main")).to_contain_text("Annullering bestilt")
    expect(page.get_by_role("heading", name="Lag ny faktura")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "make-run-voided.png", full_page=True)

    page.goto(base + credit_href)
    page.locator("#credit-amount").fill("1000")
    page.locator("#credit-reason").fill("Avtalt rabatt")
    page.get_by_role("button", name="Utsted kreditnota").click()
    issued = page.locator("#credit-notes li:not(.credit-pending):not(.credit-failed)")
    expect(issued).to_contain_text("1 000 kr – Avtalt rabatt", timeout=60_000)
    expect(status).to_have_text("Åpen")
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "make-run-credited.png", full_page=True)

    # The demo's own invoices never reached Stripe: voiding one is done here, at once.
    page.goto(f"{base}/staff/billing/invoices?year=2026&status=open")
    page.locator("tbody tr td:first-child > a:first-child").first.click()
    expect(page.locator("#never-at-stripe")).to_be_visible()
    expect(page.get_by_text("Ferdigstilt her, uten Stripe")).to_be_visible()
    page.locator("#void-reason").fill("Dobbeltfakturert")
    page.get_by_role("button", name="Annuller fakturaen").click()
    expect(page.get_by_text("Fakturaen er annullert, uten Stripe: Stripe har aldri hatt den.")).to_be_visible()
    expect(status).to_have_text("Annullert")
    page.screenshot(path=ARTIFACTS / "make-run-demo-voided.png", full_page=True)
    assert len(asked) == 2 and " i Stripe? " in asked[0] and " i Stripe? " not in asked[1], asked
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
