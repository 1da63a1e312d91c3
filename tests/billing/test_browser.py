"""A finance user previews and starts a billing run in Chromium and watches the progress update live (htmx),
while a real worker process invoices through the local Stripe server. Fails on console errors (CSP) and on
serious or critical axe-core findings.

The app process runs on a database built by ``flask db upgrade``, so this also proves that the migrations
hold the billing tables.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from crm.billing.local_stripe import StripeServer
from crm.redis_setup import start_embedded_redis, stop_embedded_redis
from tests.apps import ROOT, app_process_env, flask_command, free_port
from tests.live_server import ARTIFACTS, run_checked, serious_accessibility_problems, wait_until_serving

pytestmark = pytest.mark.browser

FINANCE_EMAIL = "finans@etiskhandel.example"
PASSWORD = "grønn-lastebil-fjord-2026"

SEED = """
import sys
from datetime import date
from crm import create_app
from crm.auth.models import Role
from crm.auth.services import create_user
from crm.extensions import db
from crm.members.fees import seed_fee_schedules
from crm.members.models import Membership, MembershipStatus, Organisation, OrganisationKind
from crm.members.orgnr import generate_orgnr
from crm.members.services import category_for_kind

app = create_app()
with app.app_context():
    seed_fee_schedules(2026)
    create_user(email=sys.argv[1], full_name="Fia Finans", password=sys.argv[2], roles={Role.FINANCE})
    group = None
    for n in range(1, 6):
        organisation = Organisation(
            name=f"Bedrift {n} AS", orgnr=generate_orgnr(n, base=81_000_000), kind=OrganisationKind.COMPANY,
            invoice_email=f"faktura{n}@example.no", annual_turnover_nok=20_000_000 * n,
        )
        db.session.add(organisation)
        # Bedrift 2 joined in August and belongs to Bedrift 1's group: its invoice has three lines.
        organisation.parent = group if n == 2 else None
        organisation.membership = Membership(
            status=MembershipStatus.ACTIVE,
            category=category_for_kind(OrganisationKind.COMPANY),
            start_on=date(2026, 8, 1) if n == 2 else date(2024, 1, 1),
        )
        group = group or organisation
    db.session.commit()
"""


@pytest.fixture(scope="module")
def billing_app(tmp_path_factory):
    instance = tmp_path_factory.mktemp("billing-browser")
    redis_path = str(instance / "redis.db")
    stripe = StripeServer(api_key="sk_test_browser").start()
    env = app_process_env(
        instance,
        REDIS_URL=start_embedded_redis(redis_path),
        STRIPE_SECRET_KEY="sk_test_browser",
        STRIPE_WEBHOOK_SECRET="whsec_browser",
        STRIPE_API_BASE=stripe.url,
        STRIPE_MAX_RPS="200",
    )
    server = None
    log = open(instance / "server.log", "w")  # noqa: SIM115 - closed below
    try:
        run_checked(flask_command("db", "upgrade"), env)
        run_checked([sys.executable, "-c", SEED, FINANCE_EMAIL, PASSWORD], env)
        port = free_port()
        server = subprocess.Popen(
            flask_command("run", "--host", "127.0.0.1", "--port", str(port), "--no-reload", "--no-debugger"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base_url = f"http://127.0.0.1:{port}/"
        wait_until_serving(base_url, server)
        yield base_url, env, stripe
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        log.close()
        stripe.stop()
        stop_embedded_redis(redis_path, wait=False)


def test_finance_previews_starts_and_follows_a_billing_run(billing_app, page):
    base_url, env, stripe = billing_app
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(base_url + "auth/login")
    page.get_by_label("E-post").fill(FINANCE_EMAIL)
    page.get_by_label("Passord").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Logg inn").click()

    page.goto(base_url + "staff/billing/runs/new?year=2026")
    expect(page.get_by_role("heading", name="Fakturering 2026")).to_be_visible()
    expect(page.get_by_text("5 medlemskap blir fakturert")).to_be_visible()
    preview_total = re.search(
        r"til sammen (\d[\d\s]*\skr)", page.get_by_text("5 medlemskap blir fakturert").inner_text()
    )
    assert preview_total is not None
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "billing-run-preview.png", full_page=True)

    page.get_by_role("button", name="Start faktureringen").click()
    # Nothing is sent before finance confirms the count and the total the run will bill.
    expect(page.get_by_role("heading", name="Bekreft faktureringen 2026")).to_be_visible()
    total = page.locator("#confirm-summary")
    expect(total).to_have_text(f"5 fakturaer for 2026 blir sendt, til sammen {preview_total[1]}.")
    assert stripe.objects("invoice") == []
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "billing-run-confirm.png", full_page=True)
    page.get_by_role("button", name="Send 5 fakturaer").click()
    expect(page.locator('[data-count="remaining"]')).to_have_text("5")
    assert serious_accessibility_problems(page) == []

    worker = subprocess.Popen(
        flask_command("crm", "worker", "--burst", "--no-scheduler"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # No reload: htmx polls the progress fragment until nothing is left.
        expect(page.locator('[data-count="done"]')).to_have_text("5", timeout=30_000)
        expect(page.locator('[data-count="remaining"]')).to_have_text("0")
    finally:
        worker.wait(timeout=60)
    assert len(stripe.objects("invoice")) == 5
    page.screenshot(path=ARTIFACTS / "billing-run-done.png", full_page=True)

    page.get_by_role("link", name="Fakturaer 2026").click()
    expect(page.get_by_role("heading", name="Fakturaer")).to_be_visible()
    assert serious_accessibility_problems(page) == []
    # Sorted by customer from its column heading, then searched by organisation number as printed.
    page.get_by_role("link", name="Kunde").click()
    expect(page.locator("tbody tr").first).to_contain_text("Bedrift 1 AS")
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Kunde")
    page.get_by_label("Søk").fill("810 000 147")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("Bedrift 2 AS")
    page.screenshot(path=ARTIFACTS / "billing-invoices-searched.png", full_page=True)
    assert serious_accessibility_problems(page) == []
    page.locator("tbody tr", has_text="Bedrift 2 AS").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Annuller fakturaen")).to_be_visible()
    lines = page.locator("#invoice-lines tbody tr")
    expect(lines).to_have_count(3)  # the annual fee, the pro-rata reduction, the group discount
    expect(lines.nth(1)).to_contain_text("Innmeldt 01.08.2026: 50 % av årskontingenten")
    expect(lines.nth(2)).to_contain_text("Konsernrabatt 20 %")
    assert serious_accessibility_problems(page) == []
    page.screenshot(path=ARTIFACTS / "billing-invoice-lines.png", full_page=True)
    assert page.console_errors == []


START_RUN_IF_NONE = """
from sqlalchemy import select
from crm import create_app
from crm.auth.models import User
from crm.billing.models import BillingRun
from crm.billing.services import start_billing_run
from crm.extensions import db

app = create_app()
with app.app_context():
    if db.session.scalar(select(BillingRun.id)) is None:
        start_billing_run(2026, actor=db.session.scalar(select(User)))
        db.session.commit()
"""


def test_the_same_event_delivered_at_once_by_two_connections_is_stored_and_paid_once(billing_app):
    """A real race, unlike the in-process webhook tests: two HTTP requests in the threaded server at once,
    then a third; one stored event, one payment, one receipt."""
    import json
    import sqlite3
    import threading
    import urllib.error
    import urllib.request
    from pathlib import Path

    from tests.billing.conftest import sign

    base_url, env, stripe = billing_app
    run_checked([sys.executable, "-c", START_RUN_IF_NONE], env)
    run_checked(flask_command("crm", "worker", "--burst", "--no-scheduler"), env)
    paid = stripe.pay(stripe.objects("invoice")[0]["id"])
    [event] = [e for e in stripe.events("invoice.paid") if e["data"]["object"]["id"] == paid["id"]]
    body = json.dumps(event).encode()

    def post() -> int:
        request = urllib.request.Request(
            base_url + "stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body, secret="whsec_browser"), "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(post())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses.append(post())
    run_checked(flask_command("crm", "worker", "--burst", "--no-scheduler"), env)

    # The app here runs on SQLite, where the second writer may find the database locked and answer 500;
    # Stripe redelivers any non-2xx answer, so that is safe. On PostgreSQL the unique constraint decides.
    assert 200 in statuses[:2] and all(status == 200 or status >= 500 for status in statuses[:2])
    assert statuses[2] == 200
    database = sqlite3.connect(Path(env["CRM_INSTANCE_PATH"]) / "crm.sqlite")
    try:
        stored = database.execute("SELECT count(*) FROM stripe_events WHERE stripe_event_id = ?", (event["id"],))
        assert stored.fetchone()[0] == 1
        status = database.execute("SELECT status FROM invoices WHERE stripe_invoice_id = ?", (paid["id"],))
        assert status.fetchone()[0] == "paid"
        receipts = database.execute("SELECT count(*) FROM outbox_messages WHERE template = 'billing_receipt'")
        assert receipts.fetchone()[0] == 1
    finally:
        database.close()
