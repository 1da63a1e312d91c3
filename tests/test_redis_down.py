"""Redis down for real (a refused connection): login and the public application keep working, with local rate
limits; what they wrote is picked up by the sweepers within a minute of Redis's return; a billing run is refused
with 503 and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.billing.models import BillingRun, StripeEvent
from crm.extensions import db
from crm.jobs import PERIODIC_JOBS, get_queue
from crm.mail.models import OutboxMessage, OutboxStatus
from crm.members.models import Organisation
from crm.models import utcnow
from tests.billing.conftest import YEAR, deliver, make_billable
from tests.conftest import run_jobs
from tests.factories import make_staff, make_user
from tests.helpers import DEFAULT_PASSWORD, csrf_token, login
from tests.members.test_application import form_data

A_MINUTE = timedelta(seconds=60)


@pytest.fixture
def categories():
    from crm.members.fees import seed_fee_schedules
    from crm.members.services import ensure_categories, today

    seed_fee_schedules(today().year)
    categories = ensure_categories()
    db.session.commit()
    return categories


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_staff_log_in_with_their_second_factor_while_redis_is_down(app, redis_down):
    user = make_staff(Role.ADVISER)
    db.session.commit()
    with redis_down(), app.test_client() as client:
        login(client, user)  # password, enrolment and code: every step answers
        assert client.get("/staff/").status_code == 200


def test_login_limits_count_locally_while_redis_is_down(app, client, redis_down, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "2 per minute")
    user = make_user(roles={Role.MEMBER})
    db.session.commit()
    wrong = {"email": user.email, "password": "not the password at all"}
    with redis_down():
        for _ in range(2):
            assert client.post("/auth/login", data=wrong | {"csrf_token": csrf_token(client)}).status_code == 200
        right = {"email": user.email, "password": DEFAULT_PASSWORD, "csrf_token": csrf_token(client)}
        response = client.post("/auth/login", data=right)
        assert response.status_code == 429
        assert "For mange innloggingsforsøk" in response.text


def test_a_password_reset_works_while_redis_is_down(app, client, redis_down):
    from crm.auth import reset

    user = make_user(email="per@example.no")
    db.session.commit()
    new_password = "a brand new long passphrase 42"
    with redis_down():
        data = {"email": user.email, "csrf_token": csrf_token(client)}
        assert client.post("/auth/forgot-password", data=data).status_code == 302
    link = reset.password_link(user, reset.RESET).removeprefix(app.config["BASE_URL"])
    form = {"new_password": new_password, "confirm": new_password, "csrf_token": csrf_token(client)}
    with redis_down():  # a fresh outage: the first request to meet it is the one that clears the login throttle
        response = client.post(link, data=form)
        assert response.status_code == 302, "the new password is saved; the login throttle is cleared later"
    assert _count(OutboxMessage) == 1


def test_an_application_sent_while_redis_is_down_is_stored_and_mailed_within_a_minute_of_its_return(
    app, client, categories, redis_down, smtp_server
):
    from crm.mail.jobs import sweep_outbox
    from crm.mail.services import LOST_JOB_GRACE

    data = form_data(client, categories, submit="1")
    with redis_down():
        response = client.post("/apply/", data=data)
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/apply/thanks")
    assert _count(Organisation) == 1
    rows = db.session.scalars(select(OutboxMessage)).all()
    assert [row.status for row in rows] == [OutboxStatus.QUEUED] * 2
    assert get_queue("emails").count == 0, "nothing reached the queue"

    # Redis is back. The sweeper runs every SWEEP_EVERY and takes rows older than the grace: within a minute.
    sweeper = PERIODIC_JOBS["mail.sweep_outbox"]
    assert LOST_JOB_GRACE + sweeper.every <= A_MINUTE
    assert sorted(sweep_outbox(now=utcnow() + LOST_JOB_GRACE + timedelta(seconds=1))) == sorted(r.id for r in rows)
    run_jobs(app)
    assert len(smtp_server.messages) == 2


@pytest.mark.parametrize(
    ("locale", "message"),
    [
        ("nb", "Bakgrunnsjobbene er ikke tilgjengelige akkurat nå"),
        ("en", "Background jobs are unavailable at the moment"),
    ],
)
def test_a_billing_run_is_refused_with_503_while_redis_is_down_and_nothing_is_written(
    app, client, redis_down, locale, message
):
    make_billable()
    user = make_staff(Role.FINANCE, locale=locale)
    db.session.commit()
    login(client, user)
    audit_before = _count(AuditEntry)
    from crm.billing.services import preview_billing_run, summarise_preview

    summary = summarise_preview(preview_billing_run(YEAR))  # what the confirmation page would carry
    confirmed = {"year": YEAR, "count": summary.count, "total_ore": summary.gross_ore}
    with redis_down():
        response = client.post("/staff/billing/runs", data={**confirmed, "csrf_token": csrf_token(client)})
    assert response.status_code == 503
    assert message in response.text
    assert _count(BillingRun) == 0
    assert _count(AuditEntry) == audit_before


def test_a_stripe_event_received_while_redis_is_down_is_processed_within_a_minute_of_its_return(
    app, client, redis_down
):
    from crm.billing.jobs import LOST_JOB_GRACE, requeue_lost_jobs

    event = {"id": "evt_redis_down", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    with redis_down():
        assert deliver(client, event).status_code == 200
    row = db.session.scalar(select(StripeEvent))
    assert row.processed_at is None

    sweeper = PERIODIC_JOBS["billing.requeue_lost_jobs"]
    assert LOST_JOB_GRACE + sweeper.every <= A_MINUTE
    assert requeue_lost_jobs(now=utcnow() + LOST_JOB_GRACE + timedelta(seconds=1))["events"] == [row.id]
    run_jobs(app)
    db.session.refresh(row)
    assert row.processed_at is not None


@pytest.fixture
def silent_redis():
    """The URL of a local TCP server that accepts connections (the kernel completes them) but never reads or
    answers: a Redis that hangs rather than refuses."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()  # the connections it never accepted are reset, so nothing is left waiting on it


@pytest.fixture
def deadline():
    """``deadline(seconds)``: fail the test (rather than hang the suite) if it is still running after ``seconds``."""
    import signal

    class StillWaiting(BaseException):  # not an Exception: no error handler on the way may swallow it
        pass

    def expired(signum, frame):
        raise StillWaiting("still waiting for Redis")

    previous = signal.signal(signal.SIGALRM, expired)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_login_works_within_seconds_while_redis_accepts_connections_but_never_answers(
    app, redis_down, silent_redis, deadline
):
    import time

    user = make_staff(Role.ADVISER)
    db.session.commit()
    with redis_down(silent_redis), app.test_client() as client:
        deadline(20)
        started = time.monotonic()
        login(client, user)  # password, enrolment and code; the limiter counts in memory meanwhile
        assert client.get("/staff/").status_code == 200
        elapsed = time.monotonic() - started
    assert elapsed < 15, f"login took {elapsed:.1f} s"  # 6 s here: each hanging call gives up after 2 s
