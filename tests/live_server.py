"""Driving the app in a real Chromium (Playwright): a live ``flask run`` server on the demo data,
logging in through the login page, and the axe-core accessibility checks; helpers for journeys that
start their own app process (``run_checked``, ``wait_until_serving``). The ``browser`` and ``page``
fixtures are in ``tests/conftest.py``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crm.demo import DEMO_LOGINS
from crm.redis_setup import start_embedded_redis, stop_embedded_redis

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of the browser journeys
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def run_live_server(instance: Path, *, require_staff_mfa: bool) -> Iterator[str]:
    """``flask run`` in development on a fresh SQLite database in ``instance`` with the demo loaded;
    yields its base URL."""
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "CRM_ENV": "development",
        "CRM_INSTANCE_PATH": str(instance),
        "CRM_REQUIRE_STAFF_MFA": "1" if require_staff_mfa else "0",
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
    port = free_port()
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
    try:
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        stop_embedded_redis(str(instance / "redis.db"))


def log_in(page, base: str, email: str) -> None:
    """The password step of the login page, as a demo user."""
    password = next(login.password for login in DEMO_LOGINS if login.email == email)
    page.goto(base + "/auth/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def violations(page) -> list[str]:
    """What axe-core finds against WCAG 2.1 AA (and its best practices) on the page, once it has loaded."""
    from axe_playwright_python.sync_playwright import Axe

    # A click returns when the next page's navigation has committed, before its stylesheets are in;
    # axe would then judge contrast on the browser's default colours (seen once in CI).
    page.wait_for_load_state("load")
    results = Axe().run(page, options=AXE_OPTIONS)
    return [
        f"{v['id']}: {v['help']} — " + "; ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in results.response["violations"]
    ]


def serious_accessibility_problems(page) -> list[str]:
    """The serious and critical axe-core findings on the page (with up to five offending elements each)."""
    from axe_playwright_python.sync_playwright import Axe

    page.wait_for_load_state("load")
    results = Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["target"][0] if node["target"] else "?" for node in violation["nodes"][:5])
        for violation in results.response["violations"]
        if violation["impact"] in {"critical", "serious"}
    ]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def run_checked(command: list[str], env: dict[str, str]) -> None:
    """Run a command in the repository root with ``env``; fail the test with its output when it fails."""
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command[:4])} failed:\n{result.stdout}\n{result.stderr}"


def wait_until_serving(url: str, server: subprocess.Popen) -> None:
    """Wait until the app process answers ``url + "healthz"`` (``url`` ends with a slash)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"The app exited with status {server.returncode} while starting")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"The app did not answer on {url}")
