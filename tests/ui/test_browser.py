"""The layout in a real Chromium: WCAG 2.1 AA checks (axe-core), no CSP violations, htmx running
without eval, keyboard use. Runs against ``flask run`` on the demo data in a temporary instance."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from crm.demo import DEMO_LOGINS
from crm.redis_setup import start_embedded_redis, stop_embedded_redis

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    instance = tmp_path_factory.mktemp("live-instance")
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "CRM_ENV": "development",
        "CRM_INSTANCE_PATH": str(instance),
        "CRM_REQUIRE_STAFF_MFA": "0",
        "DATABASE_URL": f"sqlite:///{instance / 'live.sqlite'}",
        # One embedded Redis owned (and stopped) by the test: one started by a terminated server outlives it.
        "REDIS_URL": start_embedded_redis(str(instance / "redis.db")),
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
    stop_embedded_redis(str(instance / "redis.db"), wait=False)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
        yield browser
        browser.close()


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
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]]


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
        _login(page, live_server, email)
    for path in paths:
        page.goto(live_server + path)
        assert _violations(page) == [], path
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
    _login(page, live_server, "ingrid.solberg@etiskhandel.example")
    assert not page.is_visible(".sidebar")
    assert not page.is_visible("#mainnav a[href='/staff/audit/']")
    page.click(".navbar-toggler")
    page.wait_for_selector("#mainnav a[href='/staff/audit/']", state="visible")
    context.close()
