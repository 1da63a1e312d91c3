"""Benchmark: an annual billing run of N memberships (default 2,000) against the local Stripe test server.

Builds its own data (a temporary SQLite file, or ``BENCH_DATABASE_URL`` for PostgreSQL, which several
workers need), starts ``crm/billing/local_stripe.py``, starts the run, and lets ``--workers`` real worker
processes (``flask crm worker --burst``) invoice it while they share the ``STRIPE_MAX_RPS`` budget through
Redis. Prints invoices per second, Stripe calls per invoice (target at most 5) and how close the run came to
the configured request rate (target 90 %).

    .venv/bin/python bench/billing_run.py                      # 2,000 at 20 requests/s: about 7 minutes
    .venv/bin/python bench/billing_run.py --memberships 300 --rps 50
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1/bench .venv/bin/python bench/billing_run.py --workers 4 --rps 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memberships", type=int, default=2000)
    parser.add_argument("--rps", type=float, default=20.0, help="STRIPE_MAX_RPS (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (use PostgreSQL for more than 1)")
    parser.add_argument("--year", type=int, default=2026)
    args = parser.parse_args()

    assert "crm" not in sys.modules, "crm.config must first be imported after the environment is set"
    instance = tempfile.mkdtemp(prefix="crm-bench-billing-")
    from crm.billing.local_stripe import StripeServer

    stripe = StripeServer(api_key="sk_test_bench").start()
    redis_path = os.path.join(instance, "redis.db")
    # Without BENCH_REDIS_URL every process joins the embedded Redis of the shared instance folder.
    redis_url = os.environ.get("BENCH_REDIS_URL") or ""
    env = {
        "CRM_ENV": "development",
        "CRM_INSTANCE_PATH": instance,
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{instance}/bench.sqlite",
        "REDIS_URL": redis_url,
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "STRIPE_API_BASE": stripe.url,
        "STRIPE_MAX_RPS": str(args.rps),
        "MAIL_SUPPRESS_SEND": "1",
        "FLASK_APP": str(ROOT / "wsgi.py"),
    }
    os.environ.update(env)  # before crm.config is imported: it reads the environment once
    from crm.redis_setup import stop_embedded_redis

    try:
        run_id = prepare(args.memberships, args.year)
        print(f"{args.memberships} memberships queued; {args.workers} worker(s) at STRIPE_MAX_RPS={args.rps:g}")
        started = time.monotonic()
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "flask", "crm", "worker", "--burst", "--no-scheduler", "--queues", "billing"],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(instance, f"worker-{n}.log"), "w"),  # noqa: SIM115 - closed at exit
            )
            for n in range(args.workers)
        ]
        for worker in workers:
            worker.wait()
        elapsed = time.monotonic() - started
        print(f"worker logs: {instance}/worker-*.log")
        report(run_id, stripe, elapsed, args)
    finally:
        stripe.stop()
        stop_embedded_redis(redis_path, wait=False)


def prepare(count: int, year: int) -> int:
    from crm import create_app
    from crm.auth.models import Role
    from crm.auth.services import create_user
    from crm.billing.services import start_billing_run
    from crm.extensions import db
    from crm.members.fees import seed_fee_schedules
    from crm.members.models import Membership, MembershipStatus, Organisation, OrganisationKind
    from crm.members.orgnr import generate_orgnr
    from crm.members.services import category_for_kind

    app = create_app()
    with app.app_context():
        db.create_all()
        seed_fee_schedules(year)
        category = category_for_kind(OrganisationKind.COMPANY)
        group = None
        for n in range(1, count + 1):
            organisation = Organisation(
                name=f"Benkbedrift {n} AS",
                orgnr=generate_orgnr(n, base=82_000_000),
                kind=OrganisationKind.COMPANY,
                invoice_email=f"faktura{n}@bench.example",
                annual_turnover_nok=1_000_000 * (n % 500 + 1),
            )
            # Invoices of one to three lines: every third member joined this year (pro rata), every fifth is in
            # the first member's group (group discount).
            organisation.parent = group if n % 5 == 0 else None
            organisation.membership = Membership(
                status=MembershipStatus.ACTIVE,
                category=category,
                start_on=date(year, 8, 1) if n % 3 == 0 else date(year - 1, 1, 1),
            )
            db.session.add(organisation)
            group = group or organisation
        actor = create_user(
            email="bench@etiskhandel.example", full_name="Bench", password="benk-benk-benk-2026", roles={Role.FINANCE}
        )
        db.session.commit()
        run = start_billing_run(year, actor=actor)
        db.session.commit()
        return run.id


def report(run_id: int, stripe, elapsed: float, args) -> None:
    from crm import create_app
    from crm.billing.models import BillingRun, RunItemStatus
    from crm.billing.services import run_progress
    from crm.extensions import db

    app = create_app()
    with app.app_context():
        counts = run_progress(db.session.get(BillingRun, run_id))
    done, failed = counts[RunItemStatus.DONE], counts[RunItemStatus.FAILED]
    calls = stripe.total_requests()
    times = sorted(stripe.request_times)
    busy = (times[-1] - times[0]) if len(times) > 1 else elapsed
    rate = calls / busy if busy else 0.0
    print(f"invoices done: {done}, failed: {failed}, at Stripe: {len(stripe.objects('invoice'))}")
    print(f"elapsed: {elapsed:.1f} s (Stripe busy {busy:.1f} s)")
    print(f"invoices per second: {done / elapsed:.2f}")
    lines = sum(len(invoice["lines"]["data"]) for invoice in stripe.objects("invoice"))
    print(f"invoice lines at Stripe: {lines} ({lines / max(done, 1):.2f} per invoice)")
    print(f"Stripe calls per invoice: {calls / max(done, 1):.2f} (target <= 5)")
    print(f"request rate: {rate:.2f}/s of STRIPE_MAX_RPS {args.rps:g} = {100 * rate / args.rps:.0f} % (target >= 90 %)")


if __name__ == "__main__":
    main()
